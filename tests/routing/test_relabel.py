from __future__ import annotations

import numpy as np
import pytest

from routing import (
    A_BETTER,
    B_BETTER,
    TIE,
    UNKNOWN,
    CorrectedPolicy,
    JudgeVerdicts,
    RelabelResult,
    RoutingState,
    build_pool,
    make_policy,
    relabel_ai_labels,
    route_in_rounds,
)
from routing.relabel import fit_label_model
from routing.synthetic import synthetic_pool

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "omicron",
]


def _text(rng: np.random.Generator, n_words: int) -> str:
    return " ".join(rng.choice(WORDS, size=n_words)) + f" {rng.integers(1_000_000)}"


def tie_trap(n: int = 600, seed: int = 0):
    """A pool where the judges always say A on identical responses, whose truth is a tie.

    Elsewhere the truth is A or B and both judges are right 85 % of the time. The pattern
    ("a|a" + identical responses -> tie) is what a label model should learn.
    """
    rng = np.random.default_rng(seed)
    identical = rng.random(n) < 0.25
    truth = np.where(identical, TIE, rng.choice([A_BETTER, B_BETTER], size=n))
    a, b = [], []
    for same in identical:
        text = _text(rng, int(rng.integers(20, 60)))
        a.append(text)
        b.append(text if same else _text(rng, int(rng.integers(20, 60))))

    def judge() -> np.ndarray:
        wrong = rng.random(n) < 0.15
        flipped = np.where(truth == A_BETTER, B_BETTER, A_BETTER)
        return np.where(identical, A_BETTER, np.where(wrong, flipped, truth))

    pool = build_pool(
        prompts=["q"] * n,
        responses_a=a,
        responses_b=b,
        judges=[JudgeVerdicts.from_labels("j1", judge()), JudgeVerdicts.from_labels("j2", judge())],
    )
    return pool, truth, identical


def state_with(truth: np.ndarray, routed: np.ndarray) -> RoutingState:
    return RoutingState.of(len(truth), routed, np.where(routed, truth, UNKNOWN))


def random_routed(n: int, k: int, seed: int = 1) -> np.ndarray:
    routed = np.zeros(n, dtype=bool)
    routed[np.random.default_rng(seed).permutation(n)[:k]] = True
    return routed


@pytest.fixture(scope="module")
def trap():
    return tie_trap()


def test_cold_start_returns_the_ai_label_unchanged(trap):
    pool, truth, _ = trap
    for k in (0, 29):  # below min_labels (30)
        result = relabel_ai_labels(pool, state_with(truth, random_routed(len(truth), k)))
        assert isinstance(result, RelabelResult)
        assert not result.fitted
        assert np.array_equal(result.labels, pool.ai.label)
        assert not result.changed.any()
        assert result.probs.shape == (len(truth), 3)
        assert np.array_equal(result.probs.argmax(axis=1), pool.ai.label)


def test_learns_that_identical_responses_are_ties_whatever_the_judges_say(trap):
    pool, truth, identical = trap
    routed = random_routed(len(truth), 150)
    result = relabel_ai_labels(pool, state_with(truth, routed))
    assert result.fitted
    unrouted = ~routed
    # The judges say A on every identical pair; the model must turn (nearly) all into ties.
    assert (pool.ai.label[identical & unrouted] == A_BETTER).all()
    assert (result.labels[identical & unrouted] == TIE).mean() > 0.9
    assert result.changed[identical & unrouted].mean() > 0.9
    # ... and leave the rest alone: the judges are right there 85 % of the time.
    assert result.changed[~identical & unrouted].mean() < 0.1
    final = result.final(state_with(truth, routed))
    assert (final == truth).mean() > (np.where(routed, truth, pool.ai.label) == truth).mean()


def test_never_reads_human_labels_of_unrouted_items(trap):
    # RoutingState.of refuses labels on unrouted items; the bare constructor does not, so we
    # smuggle the *truth* (the most useful leak there is) and then garbage into the unrouted
    # rows. A model that read them would fit differently; it must give identical output.
    pool, truth, _ = trap
    routed = random_routed(len(truth), 120, seed=4)
    clean = relabel_ai_labels(pool, state_with(truth, routed))
    leaked_truth = RoutingState(routed, truth.copy())
    garbage = RoutingState(routed, np.where(routed, truth, (truth + 1) % 3))
    for leaky in (leaked_truth, garbage):
        result = relabel_ai_labels(pool, leaky)
        assert np.array_equal(result.probs, clean.probs)
        assert np.array_equal(result.labels, clean.labels)


def test_routed_labels_do_matter(trap):
    # The counterpart of the leak test, so that it could fail: change the labels that were
    # paid for and the corrected labels change.
    pool, truth, identical = trap
    routed = random_routed(len(truth), 150)
    lied = np.where(identical, A_BETTER, truth)  # humans who agree with the judges' trap
    honest = relabel_ai_labels(pool, state_with(truth, routed))
    fooled = relabel_ai_labels(pool, state_with(lied, routed))
    assert not np.array_equal(honest.labels, fooled.labels)
    assert not fooled.changed[identical & ~routed].any()


def test_deterministic(trap):
    pool, truth, _ = trap
    state = state_with(truth, random_routed(len(truth), 200, seed=7))
    first, second = relabel_ai_labels(pool, state), relabel_ai_labels(pool, state)
    assert np.array_equal(first.probs, second.probs)
    assert np.array_equal(first.labels, second.labels)
    assert first.info == second.info


def test_labels_that_follow_the_ai_label_change_almost_nothing():
    # Humans who always agree with the panel teach no correction; at most a few items whose
    # judge probabilities are nearly tied may flip as the model sharpens the panel.
    syn = synthetic_pool(800, seed=5)
    ai = syn.pool.ai.label
    routed = random_routed(800, 300)
    result = relabel_ai_labels(syn.pool, state_with(ai, routed))
    assert result.changed.mean() < 0.02


def test_ai_errors_unrelated_to_the_features_change_little():
    # The null case: humans agree with the panel 80 % of the time and its errors are spread
    # at random, independent of every feature. There is nothing to learn, so the model
    # (penalty by CV, one-standard-error rule) should leave the panel label nearly alone.
    syn = synthetic_pool(800, seed=6)
    rng = np.random.default_rng(0)
    ai = syn.pool.ai.label
    humans = np.where(rng.random(800) < 0.8, ai, (ai + rng.integers(1, 3, size=800)) % 3)
    routed = random_routed(800, 300)
    result = relabel_ai_labels(syn.pool, state_with(humans, routed))
    assert result.changed.mean() < 0.05


def test_items_without_a_usable_ai_label_get_one():
    pool, truth, _ = tie_trap(400, seed=2)
    # Rebuild with the first judge unusable everywhere and the second on half the items.
    j2 = np.where(np.arange(400) % 2 == 0, pool.ai.label, UNKNOWN)
    pool2 = build_pool(
        prompts=["q"] * 400,
        responses_a=[str(i) for i in range(400)],
        responses_b=[str(i + 1) for i in range(400)],
        judges=[
            JudgeVerdicts.from_labels("j1", np.full(400, UNKNOWN)),
            JudgeVerdicts.from_labels("j2", j2),
        ],
    )
    assert (pool2.ai.label == UNKNOWN).sum() == 200
    routed = random_routed(400, 200)
    model = fit_label_model(pool2, state_with(truth, routed), l2=1.0)
    assert model is not None
    result = relabel_ai_labels(pool2, state_with(truth, routed), l2=1.0)
    assert (result.labels != UNKNOWN).all()
    assert result.changed[pool2.ai.label == UNKNOWN].all()


def test_corrected_policy_routes_the_least_certain_corrected_labels(trap):
    pool, truth, _ = trap
    policy = make_policy("corrected", seed=0, explore=0.0)
    assert isinstance(policy, CorrectedPolicy)
    # Cold start: it routes like uncertainty (no error, the budget contract holds).
    first = policy.route(pool, 50)
    assert first.info.get("fallback") == "uncertainty" and len(first.chosen) == 50
    routed = random_routed(len(truth), 150)
    result = policy.route(pool, 50, routed=routed, human_labels=np.where(routed, truth, UNKNOWN))
    assert "fallback" not in result.info
    # The score is the doubt of the corrected label, computed from the labels paid for only.
    state = state_with(truth, routed)
    doubt = 1.0 - relabel_ai_labels(pool, state, seed=0).confidence
    assert np.allclose(result.scores, doubt)
    assert doubt[result.chosen].min() >= doubt[~routed & ~result.human_mask].max() - 1e-12
    run = route_in_rounds(policy, pool, budget=200, round_size=50, oracle=lambda i: truth[i])
    assert len(run.order) == 200 and len(set(run.order.tolist())) == 200


def test_corrected_policy_explores_nothing_by_default(trap):
    pool, truth, _ = trap
    routed = random_routed(len(truth), 150)
    result = make_policy("corrected", seed=0).route(
        pool, 50, routed=routed, human_labels=np.where(routed, truth, UNKNOWN)
    )
    assert "explored" not in result.info and result.info["doubt_of"] == "corrected"
    # Pure top-k on the doubt: nothing left behind scores higher than anything chosen.
    left = ~routed & ~result.human_mask
    assert result.scores[result.chosen].min() >= result.scores[left].max() - 1e-12


def test_doubting_the_raw_ai_label_routes_the_errors_a_kept_ai_label_would_keep(trap):
    # On identical responses both judges say A and the truth is a tie. The corrected label
    # learns that (low doubt: no human needed if the dataset takes the corrected label), but
    # the raw AI label stays wrong there: with doubt_of="ai" those items go to humans first.
    pool, truth, identical = trap
    routed = random_routed(len(truth), 150)
    labels = np.where(routed, truth, UNKNOWN)
    state = state_with(truth, routed)
    fixed = relabel_ai_labels(pool, state, seed=0)
    assert (fixed.labels[identical & ~routed] == TIE).mean() > 0.9  # the model learned it
    on_ai = make_policy("corrected", seed=0, doubt_of="ai").route(
        pool, 50, routed=routed, human_labels=labels
    )
    on_fix = make_policy("corrected", seed=0).route(pool, 50, routed=routed, human_labels=labels)
    ai = pool.ai.label
    assert np.allclose(on_ai.scores, 1.0 - fixed.probs[np.arange(len(ai)), ai])
    assert identical[on_ai.chosen].mean() > 0.9
    assert identical[on_fix.chosen].mean() < 0.5


def test_an_unknown_doubt_target_is_refused():
    with pytest.raises(ValueError):
        make_policy("corrected", doubt_of="gold")


def flaw_trap(n: int = 600, seed: int = 0):
    """Both judges always agree; where the first judge's reason finds fault, the humans side
    with the *other* response, whichever one the judges chose. Only a doubt that follows the
    AI label can express that: a plain column would push every flawed item the same way."""
    rng = np.random.default_rng(seed)
    ai = rng.choice([A_BETTER, B_BETTER], size=n)
    flawed = rng.random(n) < 0.3
    truth = np.where(flawed, np.where(ai == A_BETTER, B_BETTER, A_BETTER), ai)
    reasons = [
        "Response is incorrect and does not follow the request." if f else "More detailed."
        for f in flawed
    ]
    texts = [_text(rng, 30) for _ in range(2 * n)]
    pool = build_pool(
        prompts=["q"] * n,
        responses_a=texts[:n],
        responses_b=texts[n:],
        judges=[
            JudgeVerdicts.from_labels("j1", ai, rationales=reasons),
            JudgeVerdicts.from_labels("j2", ai),
        ],
    )
    return pool, truth, flawed


def test_learns_that_a_judge_finding_fault_makes_its_own_verdict_doubtful_on_either_side():
    pool, truth, flawed = flaw_trap()
    result = relabel_ai_labels(pool, state_with(truth, random_routed(len(truth), 150)))
    assert result.fitted
    doubt = 1.0 - result.probs[np.arange(len(truth)), pool.ai.label]
    for side in (A_BETTER, B_BETTER):
        on_side = pool.ai.label == side
        assert doubt[on_side & flawed].min() > doubt[on_side & ~flawed].max()
