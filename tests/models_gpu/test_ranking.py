from __future__ import annotations

import itertools
import math

import pytest

from models_gpu.ranking import bradley_terry_scores, ranking_from_pairs, ranks_from_scores


def test_choix_aggregation_recovers_a_known_order_from_soft_pairwise_probabilities():
    strengths = [0.3, 2.0, -1.0, 1.0]  # best: 1, then 3, 0, 2
    pair_probs = {}
    for i, j in itertools.combinations(range(4), 2):
        p_i = 1 / (1 + math.exp(strengths[j] - strengths[i]))
        pair_probs[(i, j)] = (0.9 * p_i, 0.9 * (1 - p_i), 0.1)
    verdict = ranking_from_pairs("overall", 4, pair_probs)
    assert verdict.ranks == [3, 1, 4, 2]
    assert verdict.value["ranks"] == [3, 1, 4, 2]
    assert verdict.scores[1] > verdict.scores[3] > verdict.scores[0] > verdict.scores[2]


def test_bradley_terry_scores_are_centred_and_finite_for_a_clean_sweep():
    scores = bradley_terry_scores(
        3, {(0, 1): (1.0, 0.0, 0.0), (0, 2): (1.0, 0.0, 0.0), (1, 2): (1.0, 0.0, 0.0)}
    )
    assert sum(scores) == pytest.approx(0.0, abs=1e-9)
    assert all(math.isfinite(s) for s in scores) and scores[0] > scores[1] > scores[2]


def test_ranks_are_strict_and_one_means_best():
    assert ranks_from_scores([0.1, 0.5, 0.1]) == [2, 1, 3]
