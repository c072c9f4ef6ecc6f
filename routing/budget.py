"""Budgets: how many items a number of human judgments or an amount of money buys."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """A human-labelling budget, in judgments or in money.

    ``overlap`` is the number of distinct annotators per routed item, so one routed item costs
    ``overlap`` judgments, i.e. ``overlap * cost_per_judgment`` money.
    """

    judgments: int | None = None
    money: float | None = None
    cost_per_judgment: float = 0.0
    overlap: int = 1

    def __post_init__(self) -> None:
        if (self.judgments is None) == (self.money is None):
            raise ValueError("give exactly one of judgments or money")
        if self.overlap < 1:
            raise ValueError("overlap must be >= 1")
        if self.judgments is not None and self.judgments < 0:
            raise ValueError("judgments must be >= 0")
        if self.money is not None:
            if self.money < 0:
                raise ValueError("money must be >= 0")
            if self.cost_per_judgment <= 0:
                raise ValueError("a money budget needs a positive cost_per_judgment")

    @property
    def total_judgments(self) -> int:
        """Judgments the budget pays for (money is rounded down: no partial judgments)."""
        if self.judgments is not None:
            return int(self.judgments)
        # The small epsilon keeps 3.0 / 0.1 from flooring to 29 through float error.
        return math.floor(self.money / self.cost_per_judgment + 1e-9)

    def items(self, available: int | None = None) -> int:
        """Items the budget routes to humans, capped at ``available`` (the unrouted pool)."""
        n = self.total_judgments // self.overlap
        return n if available is None else max(0, min(n, int(available)))


def budget_to_items(
    *,
    judgments: int | None = None,
    money: float | None = None,
    cost_per_judgment: float = 0.0,
    overlap: int = 1,
    available: int | None = None,
) -> int:
    """Shorthand for ``Budget(...).items(available)``."""
    return Budget(judgments, money, cost_per_judgment, overlap).items(available)


def items_for_share(share: float, pool_size: int) -> int:
    """Items for a human share of the pool (0.2 = 20 %), rounded to the nearest item."""
    if not 0.0 <= share <= 1.0:
        raise ValueError("share must be within [0, 1]")
    return round(share * pool_size)
