from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from models_gpu import (
    JudgeOOMError,
    JudgeSpec,
    PairVerdict,
    RankingVerdict,
    TemplateError,
    load_judge,
)
from models_gpu.llm_judge import LLMJudge, label_token_sets
from models_gpu.loading import LoadedModel
from models_gpu.results import OrderProbs, combine_orders

LONG = "The quick brown fox jumps over the lazy dog. "


def pair(prompt: str, a: str, b: str, item_id: object = None) -> dict:
    return {
        "id": item_id,
        "prompt": prompt,
        "responses": [{"model": "m1", "text": a}, {"model": "m2", "text": b}],
    }


ITEMS = [
    pair("What is 2+2?", "4", "5", "short"),
    pair("What is the capital of France?", "Paris is the capital of France.", "Berlin.", "mid"),
    pair("Tell me about foxes. " * 3, LONG * 4, "A fox is quick.", "long"),
]


def test_combining_orders_averages_a_as_first_and_a_as_second():
    ab = OrderProbs(p_first=0.9, p_second=0.1, p_tie=0.0, verdict_mass=1.0)
    ba = OrderProbs(p_first=0.7, p_second=0.3, p_tie=0.0, verdict_mass=1.0)  # A shown second: 0.3
    verdict = combine_orders("overall", ab, ba, allow_ties=False)
    assert verdict.p_a == pytest.approx(0.6) and verdict.p_b == pytest.approx(0.4)
    assert verdict.swap_disagreement == pytest.approx(0.6)
    assert verdict.margin == pytest.approx(0.2)
    assert verdict.strength == 1
    assert verdict.confidence == pytest.approx(0.2 * 0.4)


def test_swapping_the_responses_flips_the_combined_verdict_exactly():
    ab = OrderProbs(0.8, 0.15, 0.05, 1.0)
    ba = OrderProbs(0.3, 0.6, 0.1, 1.0)
    forward, backward = (
        combine_orders("o", ab, ba, allow_ties=True),
        combine_orders("o", ba, ab, allow_ties=True),
    )
    assert forward.p_a == pytest.approx(backward.p_b) and forward.p_tie == pytest.approx(
        backward.p_tie
    )
    assert forward.strength == -backward.strength


class PositionBiasedLM(torch.nn.Module):
    """A fake judge that answers from the decoded prompt: "A" with 0.9 when alpha is shown
    first, and "A" with 0.7 when beta is shown first (so alpha, shown second, gets 0.3)."""

    def __init__(self, tokenizer, labels):
        super().__init__()
        self.tokenizer = tokenizer
        self.config = SimpleNamespace(max_position_embeddings=4096)
        self.label_ids = [ids[0] for ids in label_token_sets(tokenizer, labels)]

    def forward(self, input_ids, attention_mask, **_):
        logits = torch.full((input_ids.shape[0], 1, len(self.tokenizer)), -1e4)
        for row in range(input_ids.shape[0]):
            text = self.tokenizer.decode(input_ids[row][attention_mask[row].bool()])
            p_first = 0.9 if text.index("alpha-response") < text.index("beta-response") else 0.7
            logits[row, 0, self.label_ids[0]] = torch.tensor(p_first).log()
            logits[row, 0, self.label_ids[1]] = torch.tensor(1 - p_first).log()
        return SimpleNamespace(logits=logits)


def test_both_orders_are_judged_and_combined_into_the_item_verdict(tokenizer):
    loaded = LoadedModel(
        PositionBiasedLM(tokenizer, ["A", "B"]),
        tokenizer,
        torch.device("cpu"),
        torch.float32,
        "fake",
    )
    # The fake reads whole prompts, so it needs the padded-batch path (no KV cache).
    judge = LLMJudge(JudgeSpec(model="fake", options={"prefix_sharing": False}), loaded)
    [result] = judge.judge([pair("Which?", "alpha-response", "beta-response")], allow_ties=False)
    verdict = result.verdicts["overall"]
    assert verdict.order_ab.p_first == pytest.approx(0.9, abs=1e-4)
    assert verdict.order_ba.p_second == pytest.approx(0.3, abs=1e-4)
    assert verdict.p_a == pytest.approx(0.6, abs=1e-4)
    assert verdict.swap_disagreement == pytest.approx(0.6, abs=1e-4)


def test_probabilities_are_valid_for_a_random_model(tiny_lm):
    results = load_judge(JudgeSpec(model=tiny_lm, batch_size=4)).judge(
        ITEMS, aspects=["overall", "harmlessness"]
    )
    for result in results:
        assert result.ok, result.error
        assert set(result.verdicts) == {"overall", "harmlessness"}
        for verdict in result.verdicts.values():
            assert isinstance(verdict, PairVerdict)
            assert verdict.p_a + verdict.p_b + verdict.p_tie <= 1 + 1e-6
            assert min(verdict.p_a, verdict.p_b, verdict.p_tie) >= 0
            assert 0 < verdict.order_ab.verdict_mass <= 1 and 0 <= verdict.confidence <= 1
            assert verdict.strength in (-2, -1, 0, 1, 2)
            assert verdict.value == {"strength": verdict.strength}


def test_batching_gives_the_same_numbers_as_one_item_at_a_time(tiny_lm):
    """THE padding test: items of different lengths share left-padded batches."""
    padded = {"prefix_sharing": False}
    batched = load_judge(JudgeSpec(model=tiny_lm, batch_size=8, options=padded)).judge(ITEMS)
    single = load_judge(JudgeSpec(model=tiny_lm, batch_size=1, options=padded))
    assert len({r.n_tokens for r in batched}) == len(ITEMS)  # lengths differ, so rows were padded
    for item, together in zip(ITEMS, batched, strict=True):
        [alone] = single.judge([item])
        a, b = together.verdicts["overall"], alone.verdicts["overall"]
        for field in ("p_a", "p_b", "p_tie", "swap_disagreement"):
            assert getattr(a, field) == pytest.approx(getattr(b, field), abs=1e-5), field
        assert a.order_ab.verdict_mass == pytest.approx(b.order_ab.verdict_mass, rel=1e-4)


@pytest.mark.parametrize("prefix_sharing", [False, True])
def test_the_judged_probability_equals_a_plain_unpadded_forward(tiny_lm, prefix_sharing):
    judge = load_judge(
        JudgeSpec(model=tiny_lm, batch_size=8, options={"prefix_sharing": prefix_sharing})
    )
    [result, *_] = judge.judge(ITEMS, allow_ties=False)
    tokenizer, model = judge.loaded.tokenizer, judge.loaded.model
    ids = judge.encode_prompt(
        *judge.template().fill(
            {
                "prompt": "What is 2+2?",
                "response_a": "4",
                "response_b": "5",
                "aspect": "overall",
                "verdict_options": '"A" if Response A is better or "B" if Response B is better',
            }
        )
    )
    with torch.inference_mode():
        probs = model(torch.tensor([ids])).logits[0, -1].softmax(-1)
    sets = label_token_sets(tokenizer, ["A", "B"])
    p_a, p_b = (float(probs[s].sum()) for s in sets)
    assert result.verdicts["overall"].order_ab.p_first == pytest.approx(p_a / (p_a + p_b), abs=1e-5)


def test_long_items_are_truncated_flagged_and_still_judged(tiny_lm):
    judge = load_judge(JudgeSpec(model=tiny_lm, max_length=400))
    short, long = judge.judge([pair("Hi", "a", "b"), pair("Tell me. " * 50, LONG * 60, LONG * 5)])
    assert not short.truncated and long.truncated and long.ok
    assert long.n_tokens <= 2 * 400


def test_a_template_missing_a_placeholder_raises_before_any_work(tiny_lm):
    judge = load_judge(JudgeSpec(model=tiny_lm))
    with pytest.raises(TemplateError, match=r"\{aspect\}"):
        judge.judge(ITEMS, template="{prompt} {response_a} {response_b}")


def test_one_bad_item_does_not_sink_the_batch(tiny_lm):
    items = [
        ITEMS[0],
        {"prompt": 42, "responses": ["a", "b"]},
        {"prompt": "x", "responses": ["one"]},
        ITEMS[1],
    ]
    results = load_judge(JudgeSpec(model=tiny_lm)).judge(items)
    assert [r.ok for r in results] == [True, False, False, True]
    assert "prompt" in results[1].error and "at least 2" in results[2].error
    assert [r.item_id for r in results] == ["short", None, None, "mid"]


def test_an_item_that_cannot_fit_fails_alone_with_a_clear_message(tiny_lm):
    judge = load_judge(JudgeSpec(model=tiny_lm, max_length=64))
    results = judge.judge([pair("Hi", "a", "b")])
    assert not results[0].ok and "max_length=64" in results[0].error


def test_out_of_memory_splits_the_batch_then_fails_single_items_clearly(tiny_lm, monkeypatch):
    judge = LLMJudge(
        JudgeSpec(model=tiny_lm, batch_size=8, options={"prefix_sharing": False}),
        load_judge(JudgeSpec(model=tiny_lm)).loaded,
    )
    original = judge.label_probabilities
    calls = []

    def flaky(sequences, token_sets):
        calls.append(len(sequences))
        if len(sequences) > 2 or max(len(s) for s in sequences) > 400:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return original(sequences, token_sets)

    monkeypatch.setattr(judge, "label_probabilities", flaky)
    results = judge.judge([*ITEMS[:2], pair("Tell me. " * 40, LONG * 20, LONG * 20)])
    assert calls[0] == 6 and results[0].ok and results[1].ok
    assert not results[2].ok and "out of memory on one sequence" in results[2].error
    assert issubclass(JudgeOOMError, RuntimeError)


def test_three_responses_are_ranked_from_all_ordered_pairs(tiny_lm):
    item = {"prompt": "Rank", "responses": ["alpha-response", "beta-response", "gamma-response"]}
    [result] = load_judge(JudgeSpec(model=tiny_lm)).judge([item])
    verdict = result.verdicts["overall"]
    assert isinstance(verdict, RankingVerdict) and verdict.method == "bradley_terry"
    assert sorted(verdict.ranks) == [1, 2, 3] and 0 <= verdict.confidence <= 1
    best = verdict.ranks.index(1)
    assert verdict.scores[best] == max(verdict.scores)
    for i in range(3):
        for j in range(3):
            if i != j:
                assert verdict.pair_probs[i][j] + verdict.pair_probs[j][i] == pytest.approx(1.0)


def test_listwise_judges_rotate_positions_and_rank(tiny_lm):
    judge = load_judge(JudgeSpec(model=tiny_lm, backend="llm_listwise"))
    three = {"prompt": "Rank", "responses": ["alpha-response", "beta-response", "gamma-response"]}
    ranked, paired = judge.judge([three, ITEMS[0]])
    assert ranked.verdicts["overall"].method == "listwise_rotated"
    assert sorted(ranked.verdicts["overall"].ranks) == [1, 2, 3]
    verdict = paired.verdicts["overall"]
    assert isinstance(verdict, PairVerdict) and verdict.p_tie == 0
    assert verdict.p_a + verdict.p_b == pytest.approx(1.0)


def test_chat_templates_and_chat_prompts_are_used(tiny_chat_lm):
    judge = load_judge(JudgeSpec(model=tiny_chat_lm))
    chat = [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "Why?"},
        {"role": "user", "content": "Just say it."},
    ]
    [result] = judge.judge([{"prompt": chat, "responses": ["4", "5"]}])
    assert result.ok
    text = judge.loaded.tokenizer.decode(judge.encode_prompt("hello", "Verdict: Response"))
    assert text.startswith("<s>user\nhello</s>") and text.endswith(
        "<s>assistant\nVerdict: Response"
    )


def test_results_serialise_to_json(tiny_lm):
    import json

    [result] = load_judge(JudgeSpec(model=tiny_lm)).judge([ITEMS[0]])
    data = json.loads(json.dumps(result.to_json()))
    assert data["item_id"] == "short" and data["verdicts"]["overall"]["kind"] == "pairwise"
    assert data["verdicts"]["overall"]["order_ab"]["p_first"] >= 0
