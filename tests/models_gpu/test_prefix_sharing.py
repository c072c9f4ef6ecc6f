"""Prefix sharing must change the cost, never the numbers: every test compares it with the
padded-batch path (already checked against plain one-at-a-time forwards in test_llm_judge)."""

from __future__ import annotations

import pytest
import torch

from models_gpu import JudgeSpec, RankingVerdict, load_judge
from models_gpu.llm_judge import LLMJudge
from models_gpu.prefix_sharing import PrefixSharingScorer, common_prefix_length, trie_size

LONG = "The quick brown fox jumps over the lazy dog. "

ITEMS = [
    {"id": 1, "prompt": "What is 2+2?", "responses": ["4", "5"]},
    # Same prompt as item 1 with another pair: shares the user request across items.
    {"id": 2, "prompt": "What is 2+2?", "responses": ["4", "The answer is 4."]},
    {"id": 3, "prompt": "Tell me about foxes. " * 3, "responses": [LONG * 4, "A fox is quick."]},
    # Identical responses: both orders are the very same token sequence.
    {"id": 4, "prompt": "Paris?", "responses": ["Paris is the capital of France."] * 2},
    {"id": 5, "prompt": "Rank", "responses": ["alpha-response", "beta-response", "gamma-response"]},
]
ASPECTS = ["overall", "harmlessness"]


def judges(model: str, **spec) -> tuple[LLMJudge, LLMJudge]:
    padded = load_judge(JudgeSpec(model=model, options={"prefix_sharing": False}, **spec))
    shared = load_judge(JudgeSpec(model=model, options={"prefix_sharing": True}, **spec))
    return padded, shared


def assert_same_verdicts(expected, actual) -> None:
    assert [r.ok for r in actual] == [r.ok for r in expected]
    for want, got in zip(expected, actual, strict=True):
        assert got.n_tokens == want.n_tokens and got.truncated == want.truncated
        for aspect, verdict in want.verdicts.items():
            other = got.verdicts[aspect]
            if isinstance(verdict, RankingVerdict):
                assert other.ranks == verdict.ranks
                assert other.scores == pytest.approx(verdict.scores, abs=1e-4)
                continue
            for order in ("order_ab", "order_ba"):
                a, b = getattr(verdict, order), getattr(other, order)
                assert (b.p_first, b.p_second, b.p_tie) == pytest.approx(
                    (a.p_first, a.p_second, a.p_tie), abs=1e-5
                )
                assert b.verdict_mass == pytest.approx(a.verdict_mass, rel=1e-4)


def test_common_prefix_and_trie_size_count_shared_tokens_once():
    assert common_prefix_length([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix_length([], [1]) == 0
    # 1 2 3 | 1 2 4 | 1 2 4 (a duplicate still computes its last token) | 7
    assert trie_size([[1, 2, 4], [7], [1, 2, 3], [1, 2, 4]]) == 3 + 1 + 1 + 1


@pytest.mark.parametrize("fixture", ["tiny_lm", "tiny_chat_lm"])
def test_prefix_sharing_gives_the_numbers_of_the_padded_batches(fixture, request):
    padded, shared = judges(request.getfixturevalue(fixture), batch_size=4)
    assert_same_verdicts(padded.judge(ITEMS, aspects=ASPECTS), shared.judge(ITEMS, aspects=ASPECTS))


def test_listwise_prefix_sharing_gives_the_numbers_of_the_padded_batches(tiny_chat_lm):
    padded, shared = judges(tiny_chat_lm, backend="llm_listwise")
    assert_same_verdicts(padded.judge(ITEMS), shared.judge(ITEMS))


def test_the_cache_kept_between_calls_changes_nothing_and_saves_the_header(tiny_chat_lm):
    padded, shared = judges(tiny_chat_lm)
    scorer = shared._scorer
    scorer.reset()
    first_calls = [shared.judge([item]) for item in ITEMS[:3]]
    computed_first = scorer.computed_tokens
    again = [shared.judge([item]) for item in ITEMS[:3]]
    for item, one, two in zip(ITEMS, first_calls, again, strict=False):
        want = padded.judge([item])
        assert_same_verdicts(want, one)
        assert_same_verdicts(want, two)
    # The second round starts every call from the kept header, never from token 0.
    assert scorer.computed_tokens - computed_first < computed_first


def test_shared_prefixes_are_computed_once(tiny_chat_lm):
    _, shared = judges(tiny_chat_lm)
    scorer = shared._scorer
    scorer.reset()
    before = scorer.computed_tokens
    sequences, results = _judge_capturing_sequences(shared, ITEMS[:3])
    assert len(sequences) == 6  # both orders of three items
    assert scorer.computed_tokens - before == trie_size(sequences)
    assert scorer.computed_tokens - before < 0.7 * sum(r.n_tokens for r in results)


def _judge_capturing_sequences(judge: LLMJudge, items: list[dict]) -> tuple[list, list]:
    """The token sequences judge.judge scores for `items`, and its results."""
    captured: list[list[int]] = []
    original = judge.score_sequences

    def spy(sequences, token_sets):
        captured.extend(sequences)
        return original(sequences, token_sets)

    judge.score_sequences = spy  # type: ignore[method-assign]
    try:
        results = judge.judge(items)
    finally:
        del judge.score_sequences
    return captured, results


def test_out_of_memory_on_one_sequence_fails_only_its_item(tiny_lm, monkeypatch):
    _, shared = judges(tiny_lm)
    model = shared.loaded.model
    original = model.forward

    def flaky(*args, **kwargs):
        if kwargs["position_ids"][0, -1] > 300:
            raise torch.OutOfMemoryError("out of memory. Tried to allocate 2 GiB")
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "forward", flaky)
    results = shared.judge([ITEMS[0], {"prompt": "Tell me. " * 40, "responses": [LONG * 20] * 2}])
    assert results[0].ok
    assert not results[1].ok and "out of memory on one sequence" in results[1].error
    monkeypatch.undo()
    # The cache was dropped after the failure, so later calls are still exact.
    padded, _ = judges(tiny_lm)
    assert_same_verdicts(padded.judge(ITEMS[:2]), shared.judge(ITEMS[:2]))


def test_an_empty_sequence_fails_alone(tiny_lm):
    scorer = PrefixSharingScorer(
        load_judge(JudgeSpec(model=tiny_lm)).loaded.model, torch.device("cpu")
    )
    first, empty = scorer.run([[1, 5, 7], []], lambda logits: logits.shape)
    assert first == (len(load_judge(JudgeSpec(model=tiny_lm)).loaded.tokenizer),)
    assert isinstance(empty, ValueError)
