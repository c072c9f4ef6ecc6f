"""Synthetic pools with a known, learnable AI-error structure (tests and speed checks).

No texts: the lexical block is replaced by random columns, one of which (``x0``), together
with the ``difficulty`` tag, drives how often the judges are wrong. A router that learns from
human labels can therefore beat judge confidence alone, and the truth is known for scoring.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from routing.features import N_CLASSES, JudgeVerdicts, combine_judges, judge_features
from routing.features import make_pool_features as _make
from routing.pool import RoutingPool


@dataclass(frozen=True)
class SyntheticPool:
    pool: RoutingPool
    truth: np.ndarray  # (n,) true labels
    p_error: np.ndarray  # (n,) the per-item judge error rate used to generate verdicts

    def human_oracle(self, accuracy: float = 0.95, seed: int = 0):
        """An oracle answering the truth with probability ``accuracy`` (fixed per item)."""
        rng = np.random.default_rng(seed)
        n = len(self.truth)
        wrong = rng.random(n) >= accuracy
        other = (self.truth + rng.integers(1, N_CLASSES, size=n)) % N_CLASSES
        answers = np.where(wrong, other, self.truth)
        return lambda idx: answers[np.asarray(idx, dtype=int)]


def synthetic_pool(
    n: int, *, seed: int = 0, n_judges: int = 2, n_noise_columns: int = 6
) -> SyntheticPool:
    """``n`` items; judges err with ``sigmoid(-2 + 2.5 * x0 + 1.5 * [difficulty=hard])``.

    Judge probabilities are noisy one-hots of each judge's verdict (both presentation orders),
    so judge confidence carries some signal but not the ``x0`` / difficulty structure.
    """
    rng = np.random.default_rng(seed)
    truth = rng.choice(N_CLASSES, size=n, p=[0.1, 0.45, 0.45])
    x = rng.normal(size=(n, n_noise_columns))
    difficulty = rng.choice(np.array(["easy", "medium", "hard"]), size=n)
    p_error = 1.0 / (1.0 + np.exp(-(-2.0 + 2.5 * x[:, 0] + 1.5 * (difficulty == "hard"))))

    def verdict_probs() -> np.ndarray:
        wrong = rng.random(n) < p_error
        label = np.where(wrong, (truth + rng.integers(1, N_CLASSES, size=n)) % N_CLASSES, truth)
        noise = rng.dirichlet(np.ones(N_CLASSES), size=n)
        probs = 0.4 * noise
        probs[np.arange(n), label] += 0.6
        return probs

    judges = [JudgeVerdicts(f"judge{j}", verdict_probs(), verdict_probs()) for j in range(n_judges)]
    ai = combine_judges(judges)
    j_names, jv = judge_features(judges, ai)
    names = [f"x{i}" for i in range(n_noise_columns)] + j_names
    features = _make(names, np.hstack([x, jv]), categorical={"difficulty": list(difficulty)})
    return SyntheticPool(RoutingPool(features, ai), truth, p_error)
