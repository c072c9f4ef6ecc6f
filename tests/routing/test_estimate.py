from __future__ import annotations

import numpy as np
import pytest

from routing.estimate import (
    ai_correct_probability,
    curve_from_ranking,
    estimated_accuracy,
    human_accuracy_from_agreement,
    pairwise_agreement,
    policy_curve,
)
from routing.features import UNKNOWN
from routing.policies import UncertaintyPolicy
from routing.pool import RoutingState
from routing.relabel import ai_log_prior
from routing.synthetic import synthetic_pool


@pytest.mark.parametrize("accuracy", [1 / 3, 0.6, 0.9, 1.0])
def test_human_accuracy_inverts_the_symmetric_agreement_model(accuracy):
    agreement = accuracy**2 + (1 - accuracy) ** 2 / 2
    assert human_accuracy_from_agreement(agreement) == pytest.approx(accuracy)


def test_agreement_below_chance_gives_chance_accuracy():
    assert human_accuracy_from_agreement(0.1) == pytest.approx(1 / 3)


def test_pairwise_agreement_counts_agreeing_annotator_pairs():
    labels = np.array([[1, 1, 1], [1, 1, 2], [0, UNKNOWN, 0], [2, UNKNOWN, UNKNOWN]])
    # 3 + 1 + 1 agreeing pairs out of 3 + 3 + 1.
    assert pairwise_agreement(labels) == pytest.approx(5 / 7)


def test_estimated_accuracy_is_the_mean_probability_that_the_final_label_is_right():
    q = np.array([0.5, 0.9, 0.7, 1.0])
    assert estimated_accuracy(np.array([True, False, False, False]), q, 0.95) == pytest.approx(
        (0.95 + 0.9 + 0.7 + 1.0) / 4
    )


def test_curve_from_ranking_moves_from_all_ai_to_all_human():
    q = np.array([0.5, 0.9, 0.7, 1.0])
    curve = curve_from_ranking(
        np.array([0, 2, 1, 3]), q, 0.95, shares=np.array([0, 0.5, 1]), chosen_items=1
    )
    assert curve.accuracy.tolist() == pytest.approx([q.mean(), (0.95 * 2 + 0.9 + 1.0) / 4, 0.95])
    assert curve.chosen_share == 0.25
    assert curve.chosen_accuracy == pytest.approx((0.95 + 0.9 + 0.7 + 1.0) / 4)
    assert curve.to_dict()["human_items"] == [0, 2, 4]


def test_policy_curve_rises_fastest_when_least_confident_items_go_first():
    syn = synthetic_pool(500, seed=4)
    curve = policy_curve(UncertaintyPolicy(), syn.pool, human_accuracy=0.95, budget=100)
    gains = np.diff(curve.accuracy)
    assert gains[0] > gains[-1]
    assert curve.chosen_share == pytest.approx(0.2)
    assert curve.accuracy[-1] == pytest.approx(0.95)


def test_ai_correct_probability_switches_to_the_learned_model_once_labels_exist():
    syn = synthetic_pool(800, seed=5)
    q0 = ai_correct_probability(syn.pool, source="error")
    assert np.array_equal(q0, syn.pool.ai.confidence)
    routed = np.zeros(800, dtype=bool)
    routed[:300] = True
    state = RoutingState.of(800, routed, np.where(routed, syn.truth, UNKNOWN))
    q = ai_correct_probability(syn.pool, state, source="error")
    # The learned estimate tracks the true per-item error rate the data was generated with.
    assert np.corrcoef(q, 1 - syn.p_error)[0, 1] > 0.5


def test_label_model_estimate_starts_from_the_smoothed_prior_not_raw_confidence():
    syn = synthetic_pool(800, seed=5)
    q0 = ai_correct_probability(syn.pool)
    prior = np.exp(ai_log_prior(syn.pool))
    ok = syn.pool.ai.label != UNKNOWN
    assert np.allclose(q0[ok], prior[np.flatnonzero(ok), syn.pool.ai.label[ok]])
    assert (q0[~ok] == 0).all()
    # A confident judge is not taken at its word: no item is estimated above the prior's cap.
    assert q0.max() <= 0.8 + 1e-6


def test_label_model_estimate_learns_the_ai_accuracy_from_routed_labels():
    syn = synthetic_pool(800, seed=5)
    routed = np.zeros(800, dtype=bool)
    routed[np.random.default_rng(0).permutation(800)[:300]] = True
    truth_right = syn.pool.ai.label == syn.truth
    state = RoutingState.of(800, routed, np.where(routed, syn.truth, UNKNOWN))
    q = ai_correct_probability(syn.pool, state)
    # Fit on 300 random labels, its mean on the 500 unrouted items is near their real accuracy
    # and it ranks them (right vs wrong AI label) better than chance.
    rest = ~routed
    assert abs(q[rest].mean() - truth_right[rest].mean()) < 0.05
    assert q[rest & truth_right].mean() > q[rest & ~truth_right].mean() + 0.05


def test_an_unknown_estimate_source_is_refused():
    syn = synthetic_pool(50, seed=0)
    with pytest.raises(ValueError):
        ai_correct_probability(syn.pool, source="guess")
