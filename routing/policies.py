"""Routing policies: which items should humans label, given a budget?

Every policy has the same interface::

    result = policy.route(pool, budget, routed=..., human_labels=...)

``budget`` is the number of *new* items to send to humans in this call (see
:mod:`routing.budget` to convert judgments or money into items). ``routed`` marks items already
sent to humans and ``human_labels`` their labels (``-1`` = not back yet); labels of unrouted
items are refused (see :class:`routing.pool.RoutingState`). The result carries per-item scores
(higher = a human label adds more), the chosen indices in priority order, and for each item the
features that drove its score, so a researcher can see why an item went to humans.

Ties in the score are broken by a seeded random permutation rather than by index, so that a
pool imported in some order (e.g. by source model) is not routed in that order.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from routing.features import UNKNOWN
from routing.pool import RoutingPool, RoutingState


@dataclass(frozen=True)
class RoutingDecision:
    """One item's routing decision, ready to become a ``RoutingDecision`` row."""

    index: int
    route: str  # "human" or "ai"
    score: float
    rank: int  # 0 = most valuable to send to humans; AI items are ranked after human ones
    reason: dict[str, float]
    policy: str
    version: str


@dataclass(frozen=True)
class RoutingResult:
    """What a policy decided over a pool.

    ``scores`` has one entry per item (items already routed keep their score but are never
    chosen again). ``chosen`` lists the indices newly sent to humans, most valuable first.
    ``contributions[i, j]`` is how much reason ``reason_names[j]`` added to item ``i``'s score.
    ``info`` holds policy diagnostics (e.g. ``{"fallback": "uncertainty"}`` on a cold start).
    """

    policy: str
    version: str
    seed: int
    scores: np.ndarray
    chosen: np.ndarray
    reason_names: list[str]
    contributions: np.ndarray
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def human_mask(self) -> np.ndarray:
        """Boolean mask of the items newly chosen for humans."""
        mask = np.zeros(len(self.scores), dtype=bool)
        mask[self.chosen] = True
        return mask

    def reason(self, index: int, top: int = 5) -> dict[str, float]:
        """The ``top`` reasons with the largest absolute contribution to one item's score."""
        if self.contributions.shape[1] == 0:
            return {}
        row = self.contributions[index]
        order = np.argsort(-np.abs(row), kind="stable")[:top]
        return {self.reason_names[j]: round(float(row[j]), 4) for j in order if row[j] != 0.0}

    def ranking(self) -> np.ndarray:
        """All items, chosen ones first (in routing order), then the rest by score."""
        rest = np.setdiff1d(np.arange(len(self.scores)), self.chosen, assume_unique=True)
        rest = rest[np.argsort(-self.scores[rest], kind="stable")]
        return np.concatenate([self.chosen, rest]).astype(int)

    def decisions(self, *, include_ai: bool = False, top: int = 5) -> list[RoutingDecision]:
        """Decisions for the chosen items (and, with ``include_ai``, every other item)."""
        indices = self.ranking() if include_ai else self.chosen
        human = self.human_mask
        return [
            RoutingDecision(
                index=int(i),
                route="human" if human[i] else "ai",
                score=float(self.scores[i]),
                rank=rank,
                reason=self.reason(int(i), top),
                policy=self.policy,
                version=self.version,
            )
            for rank, i in enumerate(indices)
        ]


@dataclass(frozen=True)
class Scored:
    """What a policy's scoring step returns to :meth:`Policy.route`."""

    scores: np.ndarray
    reason_names: list[str]
    contributions: np.ndarray
    chosen: np.ndarray | None = None  # a policy that picks a set, not a top-k, fills this
    info: dict[str, Any] = field(default_factory=dict)


class Policy(ABC):
    """Base class of routing policies: a name, a version and a seeded :meth:`route`."""

    name: ClassVar[str]
    version: ClassVar[str]

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed

    def route(
        self,
        pool: RoutingPool,
        budget: int,
        *,
        routed: np.ndarray | None = None,
        human_labels: np.ndarray | None = None,
    ) -> RoutingResult:
        """Choose up to ``budget`` not-yet-routed items for humans.

        Exactly ``min(budget, unrouted items)`` items are chosen; a negative budget is an error.
        """
        if budget < 0:
            raise ValueError("budget must be >= 0")
        start = time.perf_counter()
        n = len(pool)
        state = RoutingState.of(n, routed, human_labels)
        k = min(int(budget), int((~state.routed).sum()))
        rng = np.random.default_rng(self.seed)
        scored = self.score(pool, state, k, rng)
        chosen = scored.chosen
        if chosen is None:
            chosen = top_k(scored.scores, ~state.routed, k, rng)
        chosen = np.asarray(chosen, dtype=int)
        if len(chosen) != k or state.routed[chosen].any() or len(set(chosen.tolist())) != k:
            raise AssertionError(f"{self.name} broke the budget contract")  # a policy bug
        return RoutingResult(
            policy=self.name,
            version=self.version,
            seed=self.seed,
            scores=np.asarray(scored.scores, dtype=float),
            chosen=chosen,
            reason_names=scored.reason_names,
            contributions=scored.contributions,
            seconds=time.perf_counter() - start,
            info=scored.info,
        )

    @abstractmethod
    def score(
        self, pool: RoutingPool, state: RoutingState, k: int, rng: np.random.Generator
    ) -> Scored:
        """Score every item (higher = send to humans first)."""


def top_k(scores: np.ndarray, eligible: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the ``k`` highest-scoring eligible items; ties broken by a seeded shuffle."""
    idx = np.flatnonzero(eligible)
    if k <= 0 or len(idx) == 0:
        return np.zeros(0, dtype=int)
    jitter = rng.random(len(idx))
    order = np.lexsort((jitter, -scores[idx]))
    return idx[order[:k]]


class RandomPolicy(Policy):
    """Seeded uniform baseline: every unrouted item is equally likely to go to humans."""

    name = "random"
    version = "1"

    def score(self, pool, state, k, rng) -> Scored:
        scores = rng.random(len(pool))
        return Scored(scores, ["random_draw"], scores[:, None])


def _col(pool: RoutingPool, name: str) -> np.ndarray:
    try:
        return pool.features.column(name)
    except KeyError:
        return np.zeros(len(pool))


class UncertaintyPolicy(Policy):
    """Least confident AI label first.

    score = (1 - combined judge confidence) + 0.5 * panel disagreement
            + 0.5 * swap disagreement + 0.5 * share of judges with no usable verdict
            + 0.25 * the judges' flaw cues (``reason_flaws``, 0-1; only judges that give reasons).

    The combined confidence already drops when judges disagree; the explicit terms break the
    many ties that discrete verdicts leave and push items that a judge flips under reordering
    (a known sign of position bias) ahead of merely lukewarm ones. A judge whose own reason
    finds fault ("is incorrect", "does not") is wrong far more often than one that praises
    detail; the flaw term is small enough that it only orders items within a level of panel
    agreement (on PandaLM's development half, weights 0.25 and 0.5 routed identically).
    """

    name = "uncertainty"
    version = "2"
    weights: ClassVar[dict[str, float]] = {
        "low_confidence": 1.0,
        "panel_disagreement": 0.5,
        "swap_disagreement": 0.5,
        "judges_missing": 0.5,
        "reason_flaws": 0.25,
    }

    def score(self, pool, state, k, rng) -> Scored:
        return uncertainty_scores(pool)


def uncertainty_scores(pool: RoutingPool) -> Scored:
    """The :class:`UncertaintyPolicy` score, reusable as a cold-start fallback."""
    w = UncertaintyPolicy.weights
    parts = np.column_stack(
        [
            w["low_confidence"] * (1.0 - pool.ai.confidence),
            w["panel_disagreement"] * _col(pool, "panel_disagreement"),
            w["swap_disagreement"] * _col(pool, "swap_disagreement"),
            w["judges_missing"] * _col(pool, "judges_missing"),
            w["reason_flaws"] * _col(pool, "reason_flaws"),
        ]
    )
    return Scored(parts.sum(axis=1), list(w), parts)


@dataclass(frozen=True)
class ErrorModel:
    """A fitted predictor of P(AI label disagrees with the humans) from item features."""

    names: list[str]
    scaler: StandardScaler
    model: LogisticRegression
    n_labels: int
    error_rate: float

    def predict(self, pool: RoutingPool) -> tuple[np.ndarray, np.ndarray]:
        """``(p_error (n,), contributions (n, d))``; contributions are logit terms coef * z."""
        _, x = error_model_matrix(pool)
        z = self.scaler.transform(x)
        p = self.model.predict_proba(z)[:, 1]
        return p, z * self.model.coef_[0]


def error_model_matrix(pool: RoutingPool) -> tuple[list[str], np.ndarray]:
    """Features of the error model: the pool's model matrix plus the uncertainty score.

    The uncertainty score is the prior the cold start routed by; giving it to the model as one
    column lets a few labels confirm or re-weight it instead of rediscovering it.
    """
    names, x = pool.features.model_matrix()
    return [*names, "uncertainty_score"], np.column_stack([x, uncertainty_scores(pool).scores])


def fit_error_model(
    pool: RoutingPool, state: RoutingState, *, min_labels: int = 20, c: float = 0.5
) -> ErrorModel | None:
    """Fit the AI-error predictor on the routed items whose human labels are back.

    Returns ``None`` (cold start) with fewer than ``min_labels`` labels or when the labels seen
    so far contain only one class (all right or all wrong): a classifier cannot be fitted then.
    The target is ``ai.label != human label``; an item with no usable AI label counts as an
    error because the dataset would have no label for it without a human.

    L2-regularised logistic regression on standardised features: with tens of labels it is
    the model that overfits least, and its coefficients give exact per-feature reasons.
    """
    known = state.known
    if len(known) < min_labels:
        return None
    y = (pool.ai.label[known] != state.human_labels[known]).astype(int)
    if y.min() == y.max():
        return None
    names, x = error_model_matrix(pool)
    scaler = StandardScaler().fit(x)
    # StandardScaler on the whole pool (features only, no labels): unrouted items' features are
    # not labels, and pool-wide scaling keeps coefficients comparable across rounds.
    # liblinear is ~10x faster than lbfgs at this size (and does not contend for BLAS threads
    # on a busy 2-core box); a large intercept_scaling keeps its penalty off the intercept.
    model = LogisticRegression(C=c, solver="liblinear", intercept_scaling=10.0)
    model.fit(scaler.transform(x[known]), y)
    return ErrorModel(names, scaler, model, len(known), float(y.mean()))


class LearnedPolicy(Policy):
    """Route the items whose AI label is most likely wrong, learned from human labels so far.

    Call it once per round: every call refits :func:`fit_error_model` on the labels that have
    come back. Cold start (too few labels) falls back to :class:`UncertaintyPolicy`.

    ``explore`` reserves that share of each round for uniformly random unrouted items. Routing
    only the items the model already suspects teaches it nothing about the rest (after an
    uncertainty-driven first round every label comes from judge disagreements, so the model
    cannot tell how much disagreement matters); a few random items keep its training sample
    representative of the pool.
    """

    name = "learned"
    version = "1"

    def __init__(
        self, *, seed: int = 0, min_labels: int = 20, c: float = 0.5, explore: float = 0.1
    ) -> None:
        super().__init__(seed=seed)
        if not 0.0 <= explore <= 1.0:
            raise ValueError("explore must be within [0, 1]")
        self.min_labels = min_labels
        self.c = c
        self.explore = explore

    def score(self, pool, state, k, rng) -> Scored:
        model = fit_error_model(pool, state, min_labels=self.min_labels, c=self.c)
        if model is None:
            fallback = uncertainty_scores(pool)
            scored = Scored(
                fallback.scores,
                fallback.reason_names,
                fallback.contributions,
                info={"fallback": "uncertainty", "labels": len(state.known)},
            )
        else:
            p, contrib = model.predict(pool)
            scored = Scored(
                p,
                model.names,
                contrib,
                info={"labels": model.n_labels, "observed_error_rate": model.error_rate},
            )
        return with_exploration(scored, state, k, self.explore, rng)


def with_exploration(
    scored: Scored, state: RoutingState, k: int, explore: float, rng: np.random.Generator
) -> Scored:
    """Route the top `k - explore·k` items by score and a random slice of the rest.

    The random slice keeps the human labels a learned policy trains on from covering only the
    items it already finds hard (its own selection bias).
    """
    n_explore = round(explore * k)
    if n_explore == 0:
        return scored
    exploit = top_k(scored.scores, ~state.routed, k - n_explore, rng)
    left = ~state.routed
    left[exploit] = False
    explore_idx = rng.permutation(np.flatnonzero(left))[:n_explore]
    scored.info["explored"] = len(explore_idx)
    return Scored(
        scored.scores,
        scored.reason_names,
        scored.contributions,
        chosen=np.concatenate([exploit, explore_idx]).astype(int),
        info=scored.info,
    )


def make_policy(name: str, *, seed: int = 0, **options: Any) -> Policy:
    """Build a policy by name (``random``, ``uncertainty``, ``learned``, ``corrected``,
    ``hyper``)."""
    from routing.relabel import CorrectedPolicy
    from routing.simulate import HyperPolicy

    classes: dict[str, type[Policy]] = {
        cls.name: cls
        for cls in (RandomPolicy, UncertaintyPolicy, LearnedPolicy, CorrectedPolicy, HyperPolicy)
    }
    try:
        return classes[name](seed=seed, **options)
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; choose from {sorted(classes)}") from None


__all__ = [
    "UNKNOWN",
    "ErrorModel",
    "LearnedPolicy",
    "Policy",
    "RandomPolicy",
    "RoutingDecision",
    "RoutingResult",
    "Scored",
    "UncertaintyPolicy",
    "fit_error_model",
    "make_policy",
    "top_k",
    "uncertainty_scores",
    "with_exploration",
]
