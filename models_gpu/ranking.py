"""Rank K responses from pairwise verdict probabilities (Bradley–Terry via choix).

Soft counts: every unordered pair {i, j} was judged in both orders and combined into
p(i≻j), p(j≻i), p(tie). We add p(i≻j) + ½·p(tie) to "i beat j" and p(j≻i) + ½·p(tie) to
"j beat i" in a dense comparison matrix and fit Bradley–Terry with
`choix.ilsr_pairwise_dense`, which accepts fractional counts (choix's list-of-pairs
functions only take whole wins). The small `alpha` regularises the fit so that a response
that wins every comparison gets a large but finite score instead of diverging.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import choix
import numpy as np

from models_gpu.results import RankingVerdict

DEFAULT_ALPHA = 0.01


def bradley_terry_scores(
    k: int,
    pair_probs: Mapping[tuple[int, int], tuple[float, float, float]],
    *,
    alpha: float = DEFAULT_ALPHA,
) -> np.ndarray:
    """Log-strengths (mean 0) from {(i, j): (p_i_wins, p_j_wins, p_tie)} with i < j."""
    comparisons = np.zeros((k, k), dtype=np.float64)
    for (i, j), (p_i, p_j, p_tie) in pair_probs.items():
        comparisons[i, j] += p_i + 0.5 * p_tie
        comparisons[j, i] += p_j + 0.5 * p_tie
    params = choix.ilsr_pairwise_dense(comparisons, alpha=alpha)
    return params - params.mean()


def ranks_from_scores(scores: Sequence[float]) -> list[int]:
    """1 = highest score; strict ranks (a stable sort breaks exact ties by canonical order),
    so they validate whether or not the project allows ties."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    ranks = [0] * len(scores)
    for rank, index in enumerate(order, start=1):
        ranks[index] = rank
    return ranks


def pairwise_matrix(scores: Sequence[float]) -> list[list[float]]:
    """Bradley–Terry p(i≻j) = σ(s_i − s_j) for every pair."""
    return [
        [1 / (1 + math.exp(sj - si)) if i != j else 0.5 for j, sj in enumerate(scores)]
        for i, si in enumerate(scores)
    ]


def ranking_confidence(
    pair_probs: Mapping[tuple[int, int], tuple[float, float, float]], swap_disagreement: float
) -> float:
    """Mean pairwise margin |p(i≻j) − p(j≻i)| times (1 − mean swap disagreement): high when
    every pair is decided clearly and consistently across orders."""
    if not pair_probs:
        return 0.0
    margin = sum(abs(p_i - p_j) for p_i, p_j, _ in pair_probs.values()) / len(pair_probs)
    return max(0.0, min(1.0, margin * (1.0 - swap_disagreement)))


def ranking_from_pairs(
    aspect: str,
    k: int,
    pair_probs: Mapping[tuple[int, int], tuple[float, float, float]],
    *,
    swap_disagreement: float = 0.0,
    alpha: float = DEFAULT_ALPHA,
) -> RankingVerdict:
    scores = bradley_terry_scores(k, pair_probs, alpha=alpha).tolist()
    matrix = [[0.5] * k for _ in range(k)]
    for (i, j), (p_i, p_j, p_tie) in pair_probs.items():
        matrix[i][j] = p_i + 0.5 * p_tie
        matrix[j][i] = p_j + 0.5 * p_tie
    return RankingVerdict(
        aspect=aspect,
        ranks=ranks_from_scores(scores),
        scores=scores,
        confidence=ranking_confidence(pair_probs, swap_disagreement),
        method="bradley_terry",
        swap_disagreement=swap_disagreement,
        pair_probs=matrix,
    )


def ranking_from_scores(
    aspect: str, scores: Sequence[float], *, method: str, temperature: float = 1.0
) -> RankingVerdict:
    """Reward-style scores (higher = better, no position bias): softmax for the confidence.

    Confidence = softmax probability of the top response minus the runner-up's.
    """
    scaled = np.asarray(scores, dtype=np.float64) / temperature
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    top = np.sort(probs)[::-1]
    return RankingVerdict(
        aspect=aspect,
        ranks=ranks_from_scores(list(scores)),
        scores=[float(s) for s in scores],
        confidence=float(top[0] - top[1]),
        method=method,
        pair_probs=pairwise_matrix([float(s) for s in scaled]),
    )
