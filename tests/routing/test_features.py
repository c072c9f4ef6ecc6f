from __future__ import annotations

import math
import re
import sys

import numpy as np
import pytest

from routing.features import (
    UNKNOWN,
    JudgeVerdicts,
    as_text,
    bin_edges,
    bin_indicators,
    combine_judges,
    combine_votes,
    encode_tags,
    estimate_judge_weights,
    judge_features,
    lexical_features,
    make_pool_features,
    rationale_features,
)
from routing.pool import build_pool


def fake_embedder(texts: list[str]) -> np.ndarray:
    """Deterministic bag-of-letters embedding: no model, same shape contract as MiniLM."""
    out = np.zeros((len(texts), 26))
    for i, t in enumerate(texts):
        for ch in t.lower():
            if "a" <= ch <= "z":
                out[i, ord(ch) - 97] += 1
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms == 0, 1, norms)


def test_as_text_turns_nan_none_and_booleans_into_text():
    assert as_text(float("nan")) == ""
    assert as_text(None) == ""
    assert as_text(True) == "True"
    assert as_text("x") == "x"


def test_lexical_features_measure_lengths_and_overlap():
    names, values, diff = lexical_features(
        ["say hi", float("nan")], ["hi there friend", "same words"], ["hi", "same words"]
    )
    row = dict(zip(names, values[0], strict=True))
    assert row["shorter_len"] == pytest.approx(math.log1p(1))
    assert row["longer_len"] == pytest.approx(math.log1p(3))
    assert row["token_overlap"] == pytest.approx(1 / 3)
    assert values[1, names.index("token_overlap")] == 1.0
    assert diff is None
    assert "embedding_similarity" not in names


def test_lexical_features_use_an_injected_embedder():
    names, values, diff = lexical_features(
        ["p", "p"], ["abc", "abc"], ["abc", "xyz"], embedder=fake_embedder
    )
    sim = values[:, names.index("embedding_similarity")]
    assert sim[0] == pytest.approx(1.0)
    assert sim[1] == pytest.approx(0.0)
    assert diff.shape == (2, 26)
    assert np.allclose(diff[0], 0.0)


def one_coin_judge(name: str, truth: np.ndarray, accuracy: float, rng) -> JudgeVerdicts:
    """A judge right with probability ``accuracy``, else one of the two other classes."""
    wrong = (truth + rng.integers(1, 3, len(truth))) % 3
    return JudgeVerdicts.from_labels(
        name, np.where(rng.random(len(truth)) < accuracy, truth, wrong)
    )


def test_estimate_judge_weights_recovers_which_judges_are_accurate_without_labels():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 20_000)
    accuracies = [0.9, 0.75, 0.6]
    judges = [one_coin_judge(f"j{i}", truth, a, rng) for i, a in enumerate(accuracies)]
    weights = estimate_judge_weights(judges)
    # The weight is log(2p / (1 - p)); read each judge's accuracy back from it.
    recovered = np.exp(weights) / (2 + np.exp(weights))
    assert recovered == pytest.approx(accuracies, abs=0.02)


def test_estimate_judge_weights_uses_every_triple_with_four_judges():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, 20_000)
    judges = [one_coin_judge(f"j{i}", truth, a, rng) for i, a in enumerate([0.85, 0.8, 0.7, 0.5])]
    weights = estimate_judge_weights(judges)
    assert list(np.argsort(-weights)) == [0, 1, 2, 3]
    assert weights[3] == pytest.approx(math.log(2 * 0.5 / 0.5), abs=0.15)


def test_estimate_judge_weights_skips_a_triple_whose_judges_share_too_few_items():
    """Judges c and d never judged the same item: every triple holding both is skipped, and
    each judge's accuracy comes from the triples that remain."""
    rng = np.random.default_rng(6)
    truth = rng.integers(0, 3, 20_000)
    judges = [
        one_coin_judge(n, truth, a, rng)
        for n, a in zip("abcd", [0.85, 0.8, 0.75, 0.7], strict=True)
    ]
    half = np.arange(len(truth)) < len(truth) // 2
    for k, keep in ((2, half), (3, ~half)):
        judges[k] = JudgeVerdicts(judges[k].name, np.where(keep[:, None], judges[k].probs, np.nan))
    weights = estimate_judge_weights(judges)
    assert weights is not None
    recovered = np.exp(weights) / (2 + np.exp(weights))
    assert recovered == pytest.approx([0.85, 0.8, 0.75, 0.7], abs=0.03)


def test_estimate_judge_weights_leaves_two_judges_equal():
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 3, 1000)
    judges = [one_coin_judge("a", truth, 0.9, rng), one_coin_judge("b", truth, 0.6, rng)]
    assert estimate_judge_weights(judges) is None


def test_estimate_judge_weights_gives_up_on_a_judge_no_better_than_chance():
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 3, 5000)
    noise = JudgeVerdicts.from_labels("noise", rng.integers(0, 3, 5000))
    judges = [one_coin_judge("a", truth, 0.9, rng), one_coin_judge("b", truth, 0.8, rng), noise]
    assert estimate_judge_weights(judges) is None


def test_estimate_judge_weights_needs_items_that_judges_share():
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 3, 100)
    judges = [one_coin_judge(n, truth, 0.8, rng) for n in "abc"]
    half = np.where(np.arange(100) < 80, UNKNOWN, truth)  # 20 usable verdicts
    judges[2] = JudgeVerdicts.from_labels("c", half)
    assert estimate_judge_weights(judges) is None
    assert estimate_judge_weights(judges, min_shared=10) is not None


def test_build_pool_weighs_a_panel_of_three_by_agreement_and_records_the_weights():
    rng = np.random.default_rng(5)
    n = 3000
    truth = rng.integers(0, 3, n)
    judges = [one_coin_judge(f"j{i}", truth, a, rng) for i, a in enumerate([0.9, 0.7, 0.55])]
    texts = ["x"] * n
    auto = build_pool(prompts=texts, responses_a=texts, responses_b=texts, judges=judges)
    equal = build_pool(
        prompts=texts, responses_a=texts, responses_b=texts, judges=judges, judge_weights=None
    )
    assert auto.ai.weights is not None
    assert auto.ai.weights[0] > auto.ai.weights[1] > auto.ai.weights[2]
    assert equal.ai.weights is None
    # Weighted, the strong judge outvotes the two weaker ones when they agree against it less
    # often than it is right; equal weights follow the majority.
    assert (auto.ai.label == truth).mean() > (equal.ai.label == truth).mean()
    with pytest.raises(ValueError, match="judge_weights"):
        build_pool(
            prompts=texts, responses_a=texts, responses_b=texts, judges=judges, judge_weights="x"
        )


def test_combine_votes_lets_a_heavy_judge_outvote_two_light_ones():
    strong = JudgeVerdicts.from_labels("strong", [1, 1, 1, UNKNOWN, UNKNOWN])
    light1 = JudgeVerdicts.from_labels("l1", [2, 1, 2, 2, UNKNOWN])
    light2 = JudgeVerdicts.from_labels("l2", [2, 1, 0, 0, UNKNOWN])
    ai = combine_votes([strong, light1, light2], [3.0, 1.0, 1.0])
    assert ai.label.tolist() == [1, 1, 1, 2, UNKNOWN]
    # exp(3) against exp(2) for B and exp(0) for a tie
    assert ai.probs[0] == pytest.approx(np.array([1, np.e**3, np.e**2]) / (1 + np.e**3 + np.e**2))
    # Two light judges that agree against the heavy one leave more doubt than two that split.
    assert ai.confidence[1] > ai.confidence[2] > ai.confidence[0]
    assert ai.confidence[4] == 0.0
    assert ai.weights.tolist() == [3.0, 1.0, 1.0]


def test_combine_votes_breaks_an_exact_tie_with_the_primary_judge():
    a = JudgeVerdicts.from_labels("a", [1])
    b = JudgeVerdicts.from_labels("b", [2])
    c = JudgeVerdicts.from_labels("c", [UNKNOWN])
    assert combine_votes([a, b, c], [1.0, 1.0, 1.0], primary=0).label.tolist() == [1]
    assert combine_votes([a, b, c], [1.0, 1.0, 1.0], primary=1).label.tolist() == [2]


@pytest.mark.parametrize("combine", [combine_judges, combine_votes])
def test_judge_weights_that_do_not_fit_the_panel_are_refused_by_name(combine) -> None:
    judges = [JudgeVerdicts.from_labels(n, [1, 2]) for n in "ab"]
    with pytest.raises(ValueError, match="3 judge weights for 2 judges"):
        combine(judges, weights=[1.0, 1.0, 1.0])
    for bad in ([1.0, float("nan")], [1.0, -1.0], [0.0, 0.0]):
        with pytest.raises(ValueError, match="finite, non-negative and not all zero"):
            combine(judges, weights=bad)


def test_combine_judges_breaks_a_split_panel_with_the_primary_judge():
    gpt = JudgeVerdicts.from_labels("gpt", [1, 2, UNKNOWN, UNKNOWN])
    pl = JudgeVerdicts.from_labels("pl", [2, 2, 0, UNKNOWN])
    ai = combine_judges([gpt, pl], primary=0)
    assert ai.label.tolist() == [1, 2, 0, UNKNOWN]
    assert ai.confidence[1] == pytest.approx(1.0)
    assert ai.confidence[0] == pytest.approx(0.5)
    # A failed judge counts as uniform, so a lone survivor is less sure than a unanimous panel.
    assert ai.confidence[2] == pytest.approx((1 + 1 / 3) / 2)
    assert ai.confidence[3] == 0.0
    assert combine_judges([gpt, pl], primary=1).label[0] == 2


def test_balanced_probabilities_average_both_presentation_orders():
    judge = JudgeVerdicts(
        "j",
        np.array([[0.0, 0.8, 0.2], [0.1, 0.9, 0.0]]),
        np.array([[0.0, 0.2, 0.8], [np.nan, np.nan, np.nan]]),
    )
    assert np.allclose(judge.balanced(), [[0.0, 0.5, 0.5], [0.1, 0.9, 0.0]])


def test_a_judge_that_flips_on_every_item_adds_no_swap_disagreement():
    always_first = np.array([[0.0, 0.9, 0.1]] * 4)
    flips = JudgeVerdicts("position", always_first, always_first[:, [0, 2, 1]])
    names, values = judge_features([flips], combine_judges([flips]))
    assert values[:, names.index("swap_disagreement")].tolist() == [0.0] * 4


def test_swap_disagreement_is_scaled_by_how_often_the_judge_keeps_its_verdict():
    ab = np.array([[0.0, 1.0, 0.0]] * 4)
    ba = ab.copy()
    ba[0] = [0.0, 0.0, 1.0]  # flips on one item of four
    judge = JudgeVerdicts("j", ab, ba)
    names, values = judge_features([judge], combine_judges([judge]))
    assert values[:, names.index("swap_disagreement")].tolist() == [0.75, 0.0, 0.0, 0.0]


def test_judge_features_report_panel_and_swap_disagreement():
    a = JudgeVerdicts(
        "a", np.array([[0, 1, 0], [0, 1, 0]], float), np.array([[0, 0, 1], [0, 1, 0]], float)
    )
    b = JudgeVerdicts.from_labels("b", [1, 2])
    ai = combine_judges([a, b])
    names, values = judge_features([a, b], ai)
    col = dict(zip(names, values.T, strict=True))
    # Judge a flips on item 0, one of its two items: its full flip counts half.
    assert col["swap_disagreement"].tolist() == pytest.approx([0.5, 0.0])
    assert col["panel_disagreement"].tolist() == pytest.approx([0.0, 0.5])
    assert col["judge:b:p_b"].tolist() == [0.0, 1.0]


def test_encode_tags_makes_sorted_one_hot_columns_and_leaves_untagged_rows_empty():
    names, values = encode_tags(
        {"safety": ["low", None, "high"], "expertise": ["expert", "basic", ""]}, 3
    )
    assert names == ["expertise=basic", "expertise=expert", "safety=high", "safety=low"]
    assert values.tolist() == [[0, 1, 0, 1], [1, 0, 0, 0], [0, 0, 1, 0]]


def test_encode_tags_rejects_a_column_of_the_wrong_length():
    with pytest.raises(ValueError, match="safety"):
        encode_tags({"safety": ["low"]}, 2)


def test_bins_are_fixed_on_the_whole_pool_not_on_a_subset():
    values = np.arange(9, dtype=float)[:, None]
    names, bins = bin_indicators(["x"], values, bin_edges(values))
    assert names == ["x=low", "x=mid", "x=high"]
    assert bins.sum(axis=0).tolist() == [3, 3, 3]
    # The three largest items stay "high" when looked at on their own.
    assert bins[6:, 2].all()


def test_make_pool_features_builds_the_binary_tag_view_for_hyper():
    pf = make_pool_features(
        ["x"], np.arange(6.0)[:, None], categorical={"subject": ["m"] * 3 + ["b"] * 3}
    )
    assert pf.tag_names == ["x=low", "x=mid", "x=high", "subject=b", "subject=m"]
    assert pf.tags.dtype == bool and pf.tags.shape == (6, 5)
    names, matrix = pf.model_matrix()
    assert names == ["x", "subject=b", "subject=m"] and matrix.shape == (6, 3)


def test_build_pool_accepts_an_empty_pool():
    pool = build_pool(
        prompts=[], responses_a=[], responses_b=[], judges=[JudgeVerdicts.from_labels("j", [])]
    )
    assert len(pool) == 0


def test_build_pool_adds_the_panel_vote_pattern_as_a_category():
    pool = build_pool(
        prompts=["p", "q"],
        responses_a=["a", "b"],
        responses_b=["c", "d"],
        judges=[
            JudgeVerdicts.from_labels("g", [0, UNKNOWN]),
            JudgeVerdicts.from_labels("p", [0, 2]),
        ],
        tags={"safety": ["low", "high"]},
    )
    assert "panel_votes=tie|tie" in pool.features.categorical_names
    assert "panel_votes=-|b" in pool.features.categorical_names
    assert "safety=high" in pool.features.tag_names


@pytest.mark.slow
def test_minilm_embedder_loads_offline_and_returns_unit_vectors():
    from routing.features import minilm_embedder

    emb = minilm_embedder()(["a cat sat", "a cat sat", "quarterly revenue"])
    assert emb.shape == (3, 384)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    assert emb[0] @ emb[1] > 0.99 > emb[0] @ emb[2]


# --- The fast token path gives the numbers the regex gave -----------------------------------------

_WORD = re.compile(r"\w+", re.UNICODE)


def _regex_lexical(prompts, responses_a, responses_b) -> np.ndarray:
    """lexical_features' columns as the code computed them before the fast path (regex only)."""
    p, a, b = ([as_text(t) for t in texts] for texts in (prompts, responses_a, responses_b))
    tok = [[set(_WORD.findall(t.lower())) for t in texts] for texts in (p, a, b)]
    length = [np.array([len(_WORD.findall(t)) for t in texts], dtype=float) for texts in (p, a, b)]
    len_p, len_a, len_b = length
    inter = np.array([len(x & y) for x, y in zip(tok[1], tok[2], strict=True)], dtype=float)
    union = np.array([len(x | y) for x, y in zip(tok[1], tok[2], strict=True)], dtype=float)
    echo_a = np.array([len(q & r) / max(len(q), 1) for q, r in zip(tok[0], tok[1], strict=True)])
    echo_b = np.array([len(q & r) / max(len(q), 1) for q, r in zip(tok[0], tok[2], strict=True)])
    return np.column_stack(
        [
            np.log1p(len_p),
            np.log1p(np.minimum(len_a, len_b)),
            np.log1p(np.maximum(len_a, len_b)),
            np.log1p(np.abs(len_a - len_b)),
            np.log1p(len_a) - np.log1p(len_b),
            np.where(union > 0, inter / np.maximum(union, 1), 1.0),
            np.abs(echo_a - echo_b),
            ((len_a == 0) | (len_b == 0)).astype(float),
        ]
    )


_TEXTS = [
    "",
    "   ",
    "Hello, World! hello world_2 x2 3.14 don't e-mail",
    "Café naïve STRASSE Straße résumé — “quoted” ‘text’",
    "数据 模型 разбор ОТВЕТА δοκιμή ΣΊΣΥΦΟΣ 😀👍🏽 x²",
    "İstanbul İİ iİi KELVIN \u212a sign Å \u212b angstrom ǅ titlecase ẞ",
    "tab\tnew\nline\r\nvertical\x0bform\x0cfeed\x1cfile sep __init__ CamelCase",
    "Ⅻ roman Ⅰ numerals ① circled ٣ arabic-indic ½ fraction",
    "system: You are helpful.\nuser: Write a haiku about routing.",
    "A" * 500 + " b" * 300,
]


def test_fast_tokens_give_the_regex_numbers_on_varied_texts():
    rng = np.random.default_rng(0)
    pool = [*_TEXTS, None, float("nan"), True, 3.5]
    n = 400
    picks = [[pool[k] for k in rng.integers(0, len(pool), n)] for _ in range(3)]
    # Mixed items: ASCII words glued to non-ASCII ones, so sets of both kinds of text meet.
    picks[1][:50] = [f"{_TEXTS[2]} {_TEXTS[k % len(_TEXTS)]}" for k in range(50)]
    names, values, _ = lexical_features(*picks)
    assert names[:8] == [
        "prompt_len",
        "shorter_len",
        "longer_len",
        "len_diff",
        "len_a_minus_b",
        "token_overlap",
        "prompt_echo_gap",
        "empty_response",
    ]
    assert np.array_equal(values, _regex_lexical(*picks))


def test_fast_tokens_give_the_regex_numbers_on_chat_prompts():
    # A chat prompt reaches the features as its turns' contents joined by newlines.
    chat = [
        {"role": "system", "content": "Tu es utile. Réponds en français."},
        {"role": "user", "content": "İyi misin? Explain __slots__ vs dict, briefly!"},
    ]
    prompts = ["\n".join([*(turn["content"] for turn in chat), t]) for t in _TEXTS]
    a, b = list(_TEXTS), list(reversed(_TEXTS))
    assert np.array_equal(lexical_features(prompts, a, b)[1], _regex_lexical(prompts, a, b))


def test_lower_case_changes_tokens_only_for_the_characters_the_fast_path_knows():
    from routing.features import _LOWER_CHANGES_TOKENS

    word = re.compile(r"\w")
    changes = ""
    for code in range(sys.maxunicode + 1):
        c = chr(code)
        lowered = c.lower()
        is_word = bool(word.fullmatch(c))
        if len(lowered) != 1 or bool(word.fullmatch(lowered)) != is_word:
            changes += c
    assert changes == _LOWER_CHANGES_TOKENS


def test_rationale_features_count_each_judges_cues_and_words():
    gpt = JudgeVerdicts.from_labels(
        "gpt",
        [1, 2, 1],
        rationales=[
            "Response 1 is incorrect and does not answer, but it is shorter.",
            "Response 2 is more detailed and comprehensive.",
            None,
        ],
    )
    names, values = rationale_features([gpt, JudgeVerdicts.from_labels("quiet", [1, 1, 2])])
    col = dict(zip(names, values.T, strict=True))
    assert col["judge:gpt:reason_flaw"].tolist() == [2.0, 0.0, 0.0]  # "incorrect", "not"
    assert col["judge:gpt:reason_hedge"].tolist() == [1.0, 0.0, 0.0]  # "but"
    assert col["judge:gpt:reason_detail"].tolist() == [0.0, 3.0, 0.0]
    assert col["judge:gpt:reason_words"][0] == pytest.approx(math.log1p(12))
    assert col["judge:gpt:reason_words"][2] == 0.0
    assert col["reason_flaws"].tolist() == [1.0, 0.0, 0.0]  # 2 or more cues count as 1
    assert not any(name.startswith("judge:quiet:") for name in names)


def test_a_panel_without_reasons_builds_the_same_pool_as_before():
    judges = [JudgeVerdicts.from_labels("a", [1, 2]), JudgeVerdicts.from_labels("b", [1, 1])]
    names, values = rationale_features(judges)
    assert names == [] and values.shape == (2, 0)
    pool = build_pool(
        prompts=["q", "q"], responses_a=["x", "y"], responses_b=["z", "w"], judges=judges
    )
    assert not any("reason" in name for name in pool.features.names)


def test_rationales_of_the_wrong_length_are_refused():
    judge = JudgeVerdicts.from_labels("a", [1, 2], rationales=["only one"])
    with pytest.raises(ValueError, match="judge a: 1 rationales for 2 items"):
        rationale_features([judge])
