from __future__ import annotations

import numpy as np
import pytest

from routing.features import A_BETTER, B_BETTER, TIE, UNKNOWN
from routing.simulate import HyperPolicy, proxy_reward_accuracy, simulate_mix
from routing.synthetic import synthetic_pool


@pytest.mark.parametrize("budget", [0, 1, 10, 99, 100, 150])
def test_simulated_mixes_have_exactly_the_budget_and_no_repeats(budget):
    tags = np.random.default_rng(0).random((100, 7)) > 0.6
    mix = simulate_mix(tags, budget, np.random.default_rng(1))
    assert len(mix) == min(budget, 100) and len(set(mix.tolist())) == len(mix)


def test_simulated_mixes_are_seeded():
    tags = np.random.default_rng(0).random((200, 9)) > 0.5
    a = simulate_mix(tags, 50, np.random.default_rng(3))
    assert np.array_equal(a, simulate_mix(tags, 50, np.random.default_rng(3)))
    assert not np.array_equal(a, simulate_mix(tags, 50, np.random.default_rng(4)))


def test_proxy_reward_model_learns_a_preference_direction_and_ignores_ties():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    y = np.where(x[:, 0] > 0, A_BETTER, B_BETTER)
    y_noisy_ties = y.copy()
    y_noisy_ties[:50] = TIE
    assert proxy_reward_accuracy(x[:300], y_noisy_ties[:300], x[300:], y[300:]) > 0.9
    assert np.isnan(proxy_reward_accuracy(x[:300], np.full(300, TIE), x[300:], y[300:]))


def test_hyper_fits_its_ppm_on_labels_it_has_and_reports_its_time():
    syn = synthetic_pool(600, seed=2)
    routed = np.zeros(600, dtype=bool)
    routed[:120] = True
    labels = np.where(routed, syn.truth, UNKNOWN)
    result = HyperPolicy(seed=0, n_mixes=12, n_candidates=20).route(
        syn.pool, 60, routed=routed, human_labels=labels
    )
    assert "fallback" not in result.info
    assert result.info["mixes"] == 12 and result.info["seconds"] > 0
    assert len(result.chosen) == 60
    assert result.reason_names == syn.pool.features.tag_names
    assert result.reason(int(result.chosen[0]))


def test_hyper_falls_back_to_uncertainty_until_it_has_enough_labels():
    syn = synthetic_pool(300, seed=2)
    result = HyperPolicy(seed=0, min_labels=40).route(syn.pool, 30)
    assert result.info["fallback"] == "uncertainty"
