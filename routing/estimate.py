"""Estimated final label accuracy of a mix, and the accuracy-vs-human-share curve.

The estimator. For a mix where ``H`` is the set of items labelled by humans::

    est_accuracy = (1/n) * ( sum_{i in H} h  +  sum_{i not in H} q_i )

- ``h`` is the accuracy of the human label an item ends up with. By default it comes from the
  observed inter-annotator agreement ``p`` under the symmetric noise model (each annotator is
  right with probability ``a``, otherwise picks one of the ``k - 1`` other labels uniformly),
  where ``p = a^2 + (1 - a)^2 / (k - 1)``; :func:`human_accuracy_from_agreement` inverts it.
  With several annotators per item pass the accuracy of their aggregate instead.
- ``q_i`` is the probability that item ``i``'s AI label is right. By default (``source=
  "label"``) it is the label model's ``P(a human says the AI label)`` from
  :func:`routing.relabel_ai_labels`, refit on the human labels back so far; on a cold start
  that is the smoothed AI prior (a unanimous panel: 0.8), not the judges' raw confidence.
  The older ``source="error"`` reads ``1 - P(error)`` of the AI-error model once 20 labels
  are back, and the raw combined confidence before that. Raw confidence is badly optimistic
  (a unanimous discrete panel says 1.0; an uncalibrated LLM judge's probabilities say
  more than it knows), and the error model, fit on routed items only, extrapolates to the
  items nobody routed: on the development half of PandaLM its estimate was off by 5-14
  points on average along the curve, the label model's by 1-1.8 (bench/RESULTS.md).

It is an expectation under those probabilities, not a measurement: the benchmark compares it
with measured accuracy on gold labels (bench/RESULTS.md, "## routing").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from routing.features import N_CLASSES, UNKNOWN
from routing.policies import Policy, fit_error_model
from routing.pool import RoutingPool, RoutingState


def human_accuracy_from_agreement(agreement: float, n_classes: int = N_CLASSES) -> float:
    """Single-annotator accuracy implied by pairwise agreement (symmetric noise model).

    Agreement at or below chance (``1/k``) gives chance accuracy; 1.0 gives 1.0.
    """
    k = n_classes
    chance = 1.0 / k
    p = min(max(agreement, chance), 1.0)
    # Solve a^2 * k/(k-1) - 2a/(k-1) + 1/(k-1) - p = 0 for the root >= 1/k.
    qa, qb, qc = k / (k - 1), -2.0 / (k - 1), 1.0 / (k - 1) - p
    return float((-qb + math.sqrt(max(qb * qb - 4 * qa * qc, 0.0))) / (2 * qa))


def pairwise_agreement(labels: np.ndarray) -> float:
    """Share of agreeing annotator pairs over items with >= 2 labels (``-1`` = missing)."""
    labels = np.asarray(labels)
    agree = pairs = 0.0
    for row in labels:
        row = row[row >= 0]
        counts = np.bincount(row, minlength=N_CLASSES) if len(row) else np.zeros(1)
        agree += float((counts * (counts - 1)).sum() / 2)
        pairs += len(row) * (len(row) - 1) / 2
    return agree / pairs if pairs else float("nan")


def ai_correct_probability(
    pool: RoutingPool,
    state: RoutingState | None = None,
    *,
    min_labels: int = 20,
    source: str = "label",
    seed: int = 0,
) -> np.ndarray:
    """``q_i``, the chance that item ``i``'s AI label is right (see the module docstring).

    ``source="label"``: the label model's probability of the AI label (an item with no AI
    label gets 0: without a human it has no label). ``source="error"``: ``1 - P(error)`` of
    the AI-error model with at least ``min_labels`` labels, else the judges' confidence.
    """
    if source == "label":
        from routing.relabel import relabel_ai_labels

        n = len(pool)
        state = RoutingState.empty(n) if state is None else state
        probs = relabel_ai_labels(pool, state, seed=seed).probs
        ai = np.asarray(pool.ai.label)
        ok = ai != UNKNOWN
        q = np.zeros(n)
        q[ok] = probs[np.flatnonzero(ok), ai[ok]]
        return q
    if source != "error":
        raise ValueError("source must be 'label' or 'error'")
    if state is not None:
        model = fit_error_model(pool, state, min_labels=min_labels)
        if model is not None:
            p_error, _ = model.predict(pool)
            return 1.0 - p_error
    return np.asarray(pool.ai.confidence, dtype=float)


def estimated_accuracy(
    human_mask: np.ndarray, p_ai_correct: np.ndarray, human_accuracy: float
) -> float:
    """The estimator above for one mix (``human_mask[i]`` = item ``i`` labelled by humans)."""
    if len(p_ai_correct) == 0:
        return float("nan")
    return float(np.where(human_mask, human_accuracy, p_ai_correct).mean())


@dataclass(frozen=True)
class Curve:
    """Estimated final label accuracy against the human share, with the chosen point."""

    policy: str
    shares: np.ndarray
    human_items: np.ndarray
    accuracy: np.ndarray
    chosen_share: float
    chosen_accuracy: float

    def to_dict(self) -> dict:
        """JSON-ready form (for ``RoutingRun.estimate`` and the admin chart)."""
        return {
            "policy": self.policy,
            "shares": [round(float(s), 4) for s in self.shares],
            "human_items": [int(k) for k in self.human_items],
            "accuracy": [round(float(a), 4) for a in self.accuracy],
            "chosen": {"share": self.chosen_share, "accuracy": self.chosen_accuracy},
        }


def curve_from_ranking(
    ranking: np.ndarray,
    p_ai_correct: np.ndarray,
    human_accuracy: float,
    *,
    shares: np.ndarray | None = None,
    chosen_items: int = 0,
    policy: str = "",
) -> Curve:
    """Curve for a fixed priority order: the first ``share * n`` items of ``ranking`` go to humans.

    Vectorised with a cumulative sum, so a 100,000-item curve costs one pass.
    """
    n = len(p_ai_correct)
    shares = np.linspace(0.0, 1.0, 11) if shares is None else np.asarray(shares, dtype=float)
    if n == 0:
        nan = np.full(len(shares), np.nan)
        return Curve(policy, shares, np.zeros(len(shares), int), nan, 0.0, float("nan"))
    gain = np.concatenate([[0.0], np.cumsum(human_accuracy - p_ai_correct[ranking])])
    base = float(p_ai_correct.sum())
    ks = np.clip(np.round(shares * n).astype(int), 0, n)
    acc = (base + gain[ks]) / n
    chosen_items = min(max(int(chosen_items), 0), n)
    return Curve(
        policy=policy,
        shares=shares,
        human_items=ks,
        accuracy=acc,
        chosen_share=chosen_items / n,
        chosen_accuracy=float((base + gain[chosen_items]) / n),
    )


def policy_curve(
    policy: Policy,
    pool: RoutingPool,
    *,
    human_accuracy: float,
    budget: int = 0,
    routed: np.ndarray | None = None,
    human_labels: np.ndarray | None = None,
    p_ai_correct: np.ndarray | None = None,
    shares: np.ndarray | None = None,
) -> Curve:
    """Estimated accuracy vs human share if ``policy`` kept routing in its current order.

    Items already routed count as human first; then the policy's ranking of the rest (one call
    with an unlimited budget). The chosen point is the already-routed items plus ``budget``.
    ``p_ai_correct`` defaults to :func:`ai_correct_probability` on the labels known so far.
    """
    state = RoutingState.of(len(pool), routed, human_labels)
    if p_ai_correct is None:
        p_ai_correct = ai_correct_probability(pool, state)
    open_count = int((~state.routed).sum())
    result = policy.route(pool, open_count, routed=state.routed, human_labels=state.human_labels)
    ranking = np.concatenate([np.flatnonzero(state.routed), result.chosen]).astype(int)
    return curve_from_ranking(
        ranking,
        np.asarray(p_ai_correct, dtype=float),
        human_accuracy,
        shares=shares,
        chosen_items=int(state.routed.sum()) + min(budget, open_count),
        policy=policy.name,
    )
