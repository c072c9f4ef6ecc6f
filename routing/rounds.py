"""Routing in rounds against a label oracle: the loop the benchmark and simulations run.

A learned policy can only learn from labels it has paid for, so routing proceeds in rounds:
route a batch, ask the oracle (in production: the annotators) for those items only, refit,
route the next batch. The oracle is a callable that receives the chosen indices, so the loop
cannot read a label it did not ask for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from routing.features import UNKNOWN
from routing.policies import Policy, RoutingResult
from routing.pool import RoutingPool

#: Given item indices, returns their human labels (same length).
Oracle = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class RoundsResult:
    """The routing order over all rounds and the labels the oracle returned."""

    order: np.ndarray  # item indices in the order they were sent to humans
    human_labels: np.ndarray  # (n,), -1 for items never routed
    rounds: list[RoutingResult]

    @property
    def seconds(self) -> float:
        return float(sum(r.seconds for r in self.rounds))

    def final_labels(self, ai_label: np.ndarray, human_items: int | None = None) -> np.ndarray:
        """Human label for the first ``human_items`` routed items, the AI label elsewhere."""
        k = len(self.order) if human_items is None else human_items
        out = np.asarray(ai_label).copy()
        first = self.order[:k]
        out[first] = self.human_labels[first]
        return out


def route_in_rounds(
    policy: Policy, pool: RoutingPool, *, budget: int, round_size: int, oracle: Oracle
) -> RoundsResult:
    """Route ``budget`` items in rounds of ``round_size``, revealing labels only when routed.

    Because each round depends only on earlier rounds, the first ``k`` entries of ``order`` are
    exactly what a run with budget ``k`` (a multiple of ``round_size``) would have routed.
    """
    if round_size < 1:
        raise ValueError("round_size must be >= 1")
    n = len(pool)
    budget = min(max(int(budget), 0), n)
    routed = np.zeros(n, dtype=bool)
    labels = np.full(n, UNKNOWN, dtype=int)
    order: list[np.ndarray] = []
    rounds: list[RoutingResult] = []
    while routed.sum() < budget:
        k = min(round_size, budget - int(routed.sum()))
        result = policy.route(pool, k, routed=routed, human_labels=labels)
        chosen = result.chosen
        answers = np.asarray(oracle(chosen.copy()), dtype=int)
        if answers.shape != chosen.shape:
            raise ValueError("the oracle must return one label per requested item")
        routed[chosen] = True
        labels[chosen] = answers
        order.append(chosen)
        rounds.append(result)
    return RoundsResult(
        order=np.concatenate(order) if order else np.zeros(0, dtype=int),
        human_labels=labels,
        rounds=rounds,
    )
