from __future__ import annotations

import pytest

from models_gpu import JudgeSpec, load_judge
from models_gpu.tagging import DIMENSIONS, tag_items


def test_every_item_gets_one_option_per_dimension_with_its_probability(tiny_lm: str) -> None:
    judge = load_judge(JudgeSpec(model=tiny_lm, batch_size=4))
    items = [
        {"id": 7, "prompt": "What is 2+2?", "responses": ["4", "5"]},
        {
            "id": 8,
            "prompt": [{"role": "user", "content": "Paris is the capital of France."}],
            "responses": ["a", "b"],
        },
    ]
    results = tag_items(judge, items)
    assert [r.item_id for r in results] == [7, 8]
    for r in results:
        assert r.ok and set(r.tags) == set(DIMENSIONS)
        for dim, value in r.tags.items():
            assert value in DIMENSIONS[dim][1]
            assert (
                1 / len(DIMENSIONS[dim][1]) <= r.probabilities[dim] <= 1.0
            )  # the most likely option


def test_a_bad_item_is_reported_and_the_rest_are_tagged(tiny_lm: str) -> None:
    judge = load_judge(JudgeSpec(model=tiny_lm))
    results = tag_items(
        judge,
        [{"id": 1, "prompt": "fine", "responses": ["a", "b"]}, {"id": 2}],
        dimensions=["safety"],
    )
    assert results[0].ok and list(results[0].tags) == ["safety"]
    assert not results[1].ok and results[1].tags == {}


def test_tagging_is_the_same_batched_or_one_at_a_time(tiny_lm: str) -> None:
    items = [
        {"id": i, "prompt": "The quick brown fox " * (i + 1), "responses": ["a", "b"]}
        for i in range(5)
    ]
    batched = tag_items(
        load_judge(JudgeSpec(model=tiny_lm, batch_size=5)), items, dimensions=["subject"]
    )
    single = [
        tag_items(load_judge(JudgeSpec(model=tiny_lm, batch_size=1)), [it], dimensions=["subject"])[
            0
        ]
        for it in items
    ]
    for b, s in zip(batched, single, strict=True):
        assert b.tags == s.tags
        assert b.probabilities["subject"] == pytest.approx(s.probabilities["subject"], abs=1e-3)


def test_an_unknown_dimension_is_named(tiny_lm: str) -> None:
    with pytest.raises(ValueError, match="zodiac"):
        tag_items(load_judge(JudgeSpec(model=tiny_lm)), [], dimensions=["zodiac"])
