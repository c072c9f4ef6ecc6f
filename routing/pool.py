"""A routing pool: the items' features plus the AI labels they carry, and the routing state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from routing.features import (
    UNKNOWN,
    AILabels,
    Embedder,
    JudgeVerdicts,
    PoolFeatures,
    combine_judges,
    combine_votes,
    estimate_judge_weights,
    judge_features,
    judge_votes,
    lexical_features,
    make_pool_features,
    rationale_features,
)


@dataclass(frozen=True)
class RoutingPool:
    """Everything a policy may read about the items (never their human labels)."""

    features: PoolFeatures
    ai: AILabels

    def __post_init__(self) -> None:
        if len(self.features) != len(self.ai):
            raise ValueError("features and AI labels describe different numbers of items")

    def __len__(self) -> int:
        return len(self.ai)


def build_pool(
    *,
    prompts: Sequence[object],
    responses_a: Sequence[object],
    responses_b: Sequence[object],
    judges: Sequence[JudgeVerdicts],
    tags: Mapping[str, Sequence[str | None]] | None = None,
    embedder: Embedder | None = None,
    primary_judge: int = 0,
    judge_weights: Sequence[float] | Literal["auto"] | None = "auto",
    n_bins: int = 3,
) -> RoutingPool:
    """Build a pool from raw texts, a judge panel and optional LLM tags.

    ``judges`` must hold at least one judge; the AI labels come from it:

    - ``judge_weights="auto"`` (the default): a panel of three or more judges is weighed by how
      often its judges agree (:func:`routing.features.estimate_judge_weights`) and labelled by
      the posterior of their votes (:func:`routing.features.combine_votes`); a smaller panel,
      or one whose weights cannot be estimated, by the mean of its probabilities;
    - ``None``: the mean of the judges' probabilities (:func:`routing.features.combine_judges`);
    - numbers: that mean, weighted.

    Bins are fixed on this whole pool.
    """
    ai, mean = combine_panel(judges, judge_weights=judge_weights, primary=primary_judge)
    categorical = {"panel_votes": panel_votes(judges), **(tags or {})}
    lex_names, lex, emb_diff = lexical_features(
        prompts, responses_a, responses_b, embedder=embedder
    )
    # The judge-signal columns describe the judges' probabilities, graded (their mean, with the
    # same weights), not the few levels a posterior over votes takes; the label and its doubt
    # are `ai`'s. On PandaLM's development half this routed better than columns read off the
    # posterior (bench/RESULTS.md).
    j_names, jv = judge_features(judges, mean)
    r_names, rv = rationale_features(judges)
    names = [*lex_names, *j_names, *r_names]
    features = make_pool_features(
        names,
        np.hstack([lex, jv, rv]) if len(ai) else np.zeros((0, len(names))),
        categorical=categorical,
        embedding_diff=emb_diff,
        n_bins=n_bins,
    )
    return RoutingPool(features=features, ai=ai)


def combine_panel(
    judges: Sequence[JudgeVerdicts],
    *,
    judge_weights: Sequence[float] | Literal["auto"] | None = "auto",
    primary: int = 0,
) -> tuple[AILabels, AILabels]:
    """The panel's AI labels, and the mean of its probabilities that the judge columns describe
    (the same object unless the panel is weighed); see :func:`build_pool` for ``judge_weights``.
    """
    if not isinstance(judge_weights, str):
        mean = combine_judges(judges, weights=judge_weights, primary=primary)
        return mean, mean
    if judge_weights != "auto":
        raise ValueError(f"judge_weights must be 'auto', None or numbers, not {judge_weights!r}")
    estimated = estimate_judge_weights(judges)
    mean = combine_judges(judges, weights=estimated, primary=primary)
    if estimated is None:
        return mean, mean
    return combine_votes(judges, estimated, primary=primary), mean


def panel_votes(judges: Sequence[JudgeVerdicts]) -> list[str]:
    """Each item's pattern of judge votes, e.g. ``"tie|b"`` (``"-"`` = unusable verdict).

    A categorical column, so that a learned router can give each pattern its own error rate:
    on real data "both judges say tie" is wrong far more often than "both say A", although
    both look equally confident to a panel-agreement score.
    """
    names = np.array(["tie", "a", "b"])
    cols = [np.where(v == UNKNOWN, "-", names[np.maximum(v, 0)]) for v in judge_votes(judges)]
    if not cols:
        return []
    return ["|".join(row) for row in zip(*cols, strict=True)]


@dataclass(frozen=True)
class RoutingState:
    """What has happened so far: which items went to humans, and the labels that came back.

    ``human_labels[i]`` is the aggregated human label of item ``i`` (``-1`` while unknown).
    A label on an item that was never routed is rejected: a policy must not be able to read
    what it has not paid for, and this is the one place that guarantees it.
    """

    routed: np.ndarray
    human_labels: np.ndarray

    @classmethod
    def empty(cls, n: int) -> RoutingState:
        return cls(np.zeros(n, dtype=bool), np.full(n, UNKNOWN, dtype=int))

    @classmethod
    def of(cls, n: int, routed: np.ndarray | None, human_labels: np.ndarray | None) -> RoutingState:
        """Validate and normalise caller arrays (``None`` = nothing routed / nothing known)."""
        r = np.zeros(n, dtype=bool) if routed is None else np.asarray(routed, dtype=bool)
        h = (
            np.full(n, UNKNOWN, dtype=int)
            if human_labels is None
            else np.asarray(human_labels, dtype=int)
        )
        if r.shape != (n,) or h.shape != (n,):
            raise ValueError(f"routed and human_labels must have shape ({n},)")
        if np.any((h != UNKNOWN) & ~r):
            raise ValueError("human labels given for items that were not routed to humans")
        return cls(r, h)

    @property
    def known(self) -> np.ndarray:
        """Indices of routed items whose human label has come back."""
        return np.flatnonzero(self.routed & (self.human_labels != UNKNOWN))
