from __future__ import annotations

import math

import pytest

from models_gpu import JudgeSpec, PairVerdict, RankingVerdict, load_judge


def pair(a: str, b: str) -> dict:
    return {
        "prompt": "What is 2+2?",
        "responses": [{"model": "x", "text": a}, {"model": "y", "text": b}],
    }


ANSWERS = [
    ("4", "5"),
    ("The answer is 4.", "Paris is the capital of France."),
    ("4" * 3, "The quick brown fox"),
]


def _check_antisymmetric(judge) -> None:
    forward = judge.judge([pair(a, b) for a, b in ANSWERS], aspects=["overall", "helpfulness"])
    backward = judge.judge([pair(b, a) for a, b in ANSWERS])
    for f, b in zip(forward, backward, strict=True):
        assert f.ok and b.ok, (f.error, b.error)
        assert list(f.verdicts) == ["overall"]  # aspect-blind: first aspect only
        v, w = f.verdicts["overall"], b.verdicts["overall"]
        assert isinstance(v, PairVerdict) and 0 <= v.p_a <= 1 and v.p_tie == 0
        assert v.p_a + v.p_b == pytest.approx(1.0)
        assert v.p_a == pytest.approx(w.p_b, abs=1e-5) and v.strength == -w.strength
        assert v.swap_disagreement == 0


def test_reward_model_probabilities_are_valid_and_antisymmetric_under_swap(tiny_reward_model):
    judge = load_judge(JudgeSpec(backend="reward_model", model=tiny_reward_model, batch_size=4))
    assert judge.aspect_aware is False
    _check_antisymmetric(judge)


def test_reward_model_batches_agree_with_single_items(tiny_reward_model):
    items = [pair(a, b) for a, b in ANSWERS]
    batched = load_judge(
        JudgeSpec(backend="reward_model", model=tiny_reward_model, batch_size=8)
    ).judge(items)
    single = load_judge(
        JudgeSpec(backend="reward_model", model=tiny_reward_model, batch_size=1)
    ).judge(items)
    for x, y in zip(batched, single, strict=True):
        assert x.verdicts["overall"].p_a == pytest.approx(y.verdicts["overall"].p_a, abs=1e-5)


def test_density_ratio_probabilities_are_valid_and_antisymmetric_under_swap(
    tiny_chat_lm, tiny_weak_lm
):
    spec = JudgeSpec(
        backend="density_ratio",
        model=tiny_chat_lm,
        weak_model=tiny_weak_lm,
        batch_size=4,
        options={"temperature": 5.0},
    )
    _check_antisymmetric(load_judge(spec))


def test_density_ratio_of_a_model_against_itself_is_exactly_even(tiny_chat_lm):
    spec = JudgeSpec(backend="density_ratio", model=tiny_chat_lm, weak_model=tiny_chat_lm)
    [result] = load_judge(spec).judge([pair("4", "The quick brown fox")])
    assert result.verdicts["overall"].p_a == pytest.approx(0.5)


def test_density_ratio_batches_agree_with_single_items(tiny_chat_lm, tiny_weak_lm):
    items = [pair(a, b) for a, b in ANSWERS]
    spec = dict(
        backend="density_ratio",
        model=tiny_chat_lm,
        weak_model=tiny_weak_lm,
        options={"length_normalize": True},
    )
    batched = load_judge(JudgeSpec(**spec, batch_size=8)).judge(items)
    single = load_judge(JudgeSpec(**spec, batch_size=1)).judge(items)
    for x, y in zip(batched, single, strict=True):
        assert x.verdicts["overall"].p_a == pytest.approx(y.verdicts["overall"].p_a, abs=1e-5)


def test_k_responses_are_ranked_by_reward_with_softmax_confidence(tiny_reward_model):
    judge = load_judge(JudgeSpec(backend="reward_model", model=tiny_reward_model))
    [result] = judge.judge(
        [{"prompt": "Say", "responses": ["4", "5", "The quick brown fox", "Paris"]}]
    )
    verdict = result.verdicts["overall"]
    assert isinstance(verdict, RankingVerdict) and verdict.method == "reward"
    assert sorted(verdict.ranks) == [1, 2, 3, 4]
    assert verdict.scores[verdict.ranks.index(1)] == max(verdict.scores)
    assert 0 <= verdict.confidence <= 1 and all(math.isfinite(s) for s in verdict.scores)
