"""annotate.verdicts: validation per task type, and every verdict as pairwise preferences."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotate import verdicts
from annotate.verdicts import Preference, VerdictError


@pytest.mark.parametrize("strength", [-2, -1, 0, 1, 2])
def test_pairwise_accepts_the_five_strengths(strength: int) -> None:
    assert verdicts.validate(
        "pairwise", {"strength": strength, "extra": 1}, k=2, allow_ties=True
    ) == {"strength": strength}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"strength": 3}, "strength: must be one of -2, -1, 0, 1, 2, got 3"),
        ({"strength": True}, "strength: must be one of"),
        ({"strength": "1"}, "strength: must be one of"),
        ({}, "strength: must be one of -2, -1, 0, 1, 2, got None"),
        ([1], "verdict must be an object, got list"),
    ],
)
def test_pairwise_rejects_anything_else_naming_the_field(value: Any, message: str) -> None:
    with pytest.raises(VerdictError, match=message.replace("(", r"\(")):
        verdicts.validate("pairwise", value, k=2, allow_ties=True)


def test_a_tie_is_refused_where_ties_are_not_allowed() -> None:
    with pytest.raises(VerdictError, match="strength: this project does not allow ties"):
        verdicts.validate("pairwise", {"strength": 0}, k=2, allow_ties=False)


def test_ranking_accepts_ties_and_scores() -> None:
    clean = verdicts.validate(
        "ranking", {"ranks": [1, 1, 3, 2], "scores": [1, 1, 0, "0.5"]}, k=4, allow_ties=True
    )
    assert clean == {"ranks": [1, 1, 3, 2], "scores": [1.0, 1.0, 0.0, 0.5]}


@pytest.mark.parametrize(
    ("value", "allow_ties", "message"),
    [
        ({"ranks": [1, 2]}, True, "ranks: must list one rank for each of the 3 responses"),
        ({"ranks": [1, 2, 4]}, True, "ranks: each rank must be a whole number from 1 to 3"),
        ({"ranks": [1, True, 3]}, True, "ranks: each rank must be a whole number"),
        ({"ranks": [2, 2, 3]}, True, "ranks: the best response must have rank 1"),
        ({"ranks": [1, 1, 3]}, False, "ranks: must be a permutation of 1..K"),
        ({"ranks": [1, 2, 3], "scores": [1]}, True, "scores: must list one score for each"),
    ],
)
def test_ranking_rejects_bad_ranks_naming_the_field(
    value: dict, allow_ties: bool, message: str
) -> None:
    with pytest.raises(VerdictError, match=message.replace(".", r"\.")):
        verdicts.validate("ranking", value, k=3, allow_ties=allow_ties)


def test_kwise_accepts_distinct_best_and_worst() -> None:
    assert verdicts.validate("kwise", {"best": 3, "worst": 0}, k=4, allow_ties=True) == {
        "best": 3,
        "worst": 0,
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"best": 4, "worst": 0}, "best: must be a response index from 0 to 3, got 4"),
        ({"best": 0}, "worst: must be a response index from 0 to 3, got None"),
        ({"best": False, "worst": 1}, "best: must be a response index"),
        ({"best": 2, "worst": 2}, "worst: must differ from best"),
    ],
)
def test_kwise_rejects_bad_indices_naming_the_field(value: dict, message: str) -> None:
    with pytest.raises(VerdictError, match=message):
        verdicts.validate("kwise", value, k=4, allow_ties=True)


def test_an_unknown_task_type_is_named() -> None:
    with pytest.raises(VerdictError, match="task type 'likert' is not one of"):
        verdicts.validate("likert", {}, k=2, allow_ties=True)
    with pytest.raises(VerdictError, match="task type 'likert'"):
        verdicts.to_preferences("likert", {}, k=2)


@pytest.mark.parametrize(
    ("strength", "expected"),
    [
        (2, [Preference(0, 1, 2)]),
        (1, [Preference(0, 1, 1)]),
        (0, [Preference(0, 1, 0)]),
        (-1, [Preference(1, 0, 1)]),
        (-2, [Preference(1, 0, 2)]),
    ],
)
def test_pairwise_verdicts_become_one_preference(strength: int, expected: list) -> None:
    assert verdicts.to_preferences("pairwise", {"strength": strength}, k=2) == expected
    assert expected[0].is_tie == (strength == 0)


def test_a_ranking_gives_every_pair_with_strength_2_for_gaps_of_two_or_more() -> None:
    prefs = verdicts.to_preferences("ranking", {"ranks": [2, 1, 4, 2]}, k=4)
    assert prefs == [
        Preference(1, 0, 1),  # rank 1 over rank 2
        Preference(0, 2, 2),  # rank 2 over rank 4: gap 2
        Preference(0, 3, 0),  # equal ranks: a tie
        Preference(1, 2, 2),
        Preference(1, 3, 1),
        Preference(3, 2, 2),
    ]
    assert len(prefs) == 4 * 3 // 2


def test_best_worst_says_nothing_about_two_middle_responses() -> None:
    prefs = verdicts.to_preferences("kwise", {"best": 2, "worst": 0}, k=4)
    assert prefs == [
        Preference(2, 0, 2),
        Preference(2, 1, 1),
        Preference(2, 3, 1),
        Preference(1, 0, 1),
        Preference(3, 0, 1),
    ]
    assert not any({p.winner, p.loser} == {1, 3} for p in prefs)


@pytest.mark.parametrize(
    ("p_a", "p_tie", "allow_ties", "expected"),
    [
        (0.95, 0.0, True, 2),
        (0.8, 0.0, True, 2),
        (0.6, 0.0, True, 1),
        (0.5, 0.0, True, 0),
        (0.5, 0.0, False, 1),
        (0.3, 0.0, True, -1),
        (0.05, 0.0, True, -2),
        (0.3, 0.4, True, 0),  # the tie token is the single most likely outcome
        (0.2, 0.4, False, -1),  # ties off: the tie mass is ignored; B has 2/3 of the rest
    ],
)
def test_pairwise_from_probability_maps_onto_the_scale(
    p_a: float, p_tie: float, allow_ties: bool, expected: int
) -> None:
    assert verdicts.pairwise_from_probability(p_a, p_tie, allow_ties=allow_ties) == expected


@given(p=st.floats(min_value=0.0, max_value=1.0, allow_nan=False))
def test_pairwise_from_probability_flips_sign_exactly_when_a_and_b_swap(p: float) -> None:
    forward = verdicts.pairwise_from_probability(p, allow_ties=True)
    swapped = verdicts.pairwise_from_probability(1.0 - p, allow_ties=True)
    assert forward == -swapped


@given(a=st.integers(0, 64), t=st.integers(0, 64))
def test_swapping_flips_the_sign_with_a_tie_probability_too(a: int, t: int) -> None:
    # Probabilities on a 1/64 grid, so 1 - p_a - p_tie is exact and a swap is an exact swap.
    p_a, p_tie = a / 64, min(t, 64 - a) / 64
    p_b = 1.0 - p_a - p_tie
    for allow_ties in (True, False):
        forward = verdicts.pairwise_from_probability(p_a, p_tie, allow_ties=allow_ties)
        swapped = verdicts.pairwise_from_probability(p_b, p_tie, allow_ties=allow_ties)
        if allow_ties or p_a != p_b:
            assert forward == -swapped
        else:
            assert forward == swapped == 1  # no tie allowed: an exact split leans to A by rule


def test_verdicts_are_described_in_words_for_each_task_type() -> None:
    from annotate.verdicts import describe

    assert describe("pairwise", {"strength": -1}) == "B is slightly better"
    assert (
        describe("pairwise", {"strength": 2}, scale_labels=["a≫b", "a>b", "=", "b>a", "b≫a"])
        == "a≫b"
    )
    assert describe("ranking", {"ranks": [2, 1, 3, 2]}) == "B > A = D > C"
    assert describe("kwise", {"best": 3, "worst": 0}) == "best D, worst A"
    assert describe("pairwise", {"nonsense": 1}) == "{'nonsense': 1}"  # never breaks a page
