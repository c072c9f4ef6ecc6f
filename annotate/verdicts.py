"""What a verdict looks like for each task type, and how every verdict becomes pairwise preferences.

This module is the one place that knows the shape of `Judgment.value`. Every task type converts
to the same thing, a list of `Preference(winner, loser, strength)` over canonical response
indices, so agreement, routing, exports and leaderboards never special-case the task type.

Shapes (indices are canonical response positions, 0-based):
- pairwise: {"strength": s}, s in -2..2; s > 0 means response 0 (A) is better, 2 = much better,
  1 = slightly better, 0 = tie.
- ranking:  {"ranks": [r_0, ..., r_{K-1}]}, rank 1 = best; equal ranks are ties.
            AI rankings may add {"scores": [...]}.
- kwise:    {"best": i, "worst": j}, i != j (best–worst scaling).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

PAIRWISE = "pairwise"
RANKING = "ranking"
KWISE = "kwise"
TASK_TYPES = (PAIRWISE, RANKING, KWISE)

# The 5-point graded pairwise scale, from A's point of view, in display order.
PAIRWISE_STRENGTHS = (2, 1, 0, -1, -2)
DEFAULT_SCALE_LABELS = [
    "A is much better",
    "A is slightly better",
    "Tie",
    "B is slightly better",
    "B is much better",
]


class VerdictError(ValueError):
    """A verdict that does not fit its task type; the message names the field and the problem."""


@dataclass(frozen=True, slots=True)
class Preference:
    """`winner` is preferred to `loser` with `strength` 0 (tie), 1 (slightly) or 2 (much)."""

    winner: int
    loser: int
    strength: int

    @property
    def is_tie(self) -> bool:
        return self.strength == 0


def validate(task_type: str, value: Any, *, k: int, allow_ties: bool) -> dict:
    """Return a clean copy of `value`, or raise VerdictError naming what is wrong."""
    if not isinstance(value, dict):
        raise VerdictError(f"verdict must be an object, got {type(value).__name__}")
    if task_type == PAIRWISE:
        strength = value.get("strength")
        if (
            isinstance(strength, bool)
            or not isinstance(strength, int)
            or strength not in PAIRWISE_STRENGTHS
        ):
            raise VerdictError(f"strength: must be one of -2, -1, 0, 1, 2, got {strength!r}")
        if strength == 0 and not allow_ties:
            raise VerdictError("strength: this project does not allow ties")
        return {"strength": strength}
    if task_type == RANKING:
        ranks = value.get("ranks")
        if not isinstance(ranks, list) or len(ranks) != k:
            raise VerdictError(f"ranks: must list one rank for each of the {k} responses")
        if any(isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= k for r in ranks):
            raise VerdictError(f"ranks: each rank must be a whole number from 1 to {k}")
        if not allow_ties and sorted(ranks) != list(range(1, k + 1)):
            raise VerdictError(
                "ranks: must be a permutation of 1..K (this project does not allow ties)"
            )
        if allow_ties and min(ranks) != 1:
            raise VerdictError("ranks: the best response must have rank 1")
        clean: dict = {"ranks": list(ranks)}
        if "scores" in value:
            scores = value["scores"]
            if not isinstance(scores, list) or len(scores) != k:
                raise VerdictError(f"scores: must list one score for each of the {k} responses")
            clean["scores"] = [float(s) for s in scores]
        return clean
    if task_type == KWISE:
        best, worst = value.get("best"), value.get("worst")
        for name, index in (("best", best), ("worst", worst)):
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < k:
                raise VerdictError(
                    f"{name}: must be a response index from 0 to {k - 1}, got {index!r}"
                )
        if best == worst:
            raise VerdictError("worst: must differ from best")
        return {"best": best, "worst": worst}
    raise VerdictError(f"task type {task_type!r} is not one of {', '.join(TASK_TYPES)}")


def to_preferences(task_type: str, value: dict, *, k: int) -> list[Preference]:
    """Expand a verdict into pairwise preferences between canonical responses.

    Rankings give every pair; the strength is 2 when the ranks are two or more apart, which
    keeps "first vs last of four" distinguishable from neighbours. Best–worst gives best ≻ worst
    (much), best ≻ each middle and each middle ≻ worst (slightly); it says nothing about two
    middle responses, so no pair is invented for them.
    """
    if task_type == PAIRWISE:
        s = value["strength"]
        if s > 0:
            return [Preference(0, 1, s)]
        if s < 0:
            return [Preference(1, 0, -s)]
        return [Preference(0, 1, 0)]
    if task_type == RANKING:
        ranks = value["ranks"]
        prefs = []
        for i in range(k):
            for j in range(i + 1, k):
                gap = ranks[j] - ranks[i]
                if gap == 0:
                    prefs.append(Preference(i, j, 0))
                elif gap > 0:
                    prefs.append(Preference(i, j, 2 if gap >= 2 else 1))
                else:
                    prefs.append(Preference(j, i, 2 if -gap >= 2 else 1))
        return prefs
    if task_type == KWISE:
        best, worst = value["best"], value["worst"]
        middle = [i for i in range(k) if i not in (best, worst)]
        return [
            Preference(best, worst, 2),
            *(Preference(best, m, 1) for m in middle),
            *(Preference(m, worst, 1) for m in middle),
        ]
    raise VerdictError(f"task type {task_type!r} is not one of {', '.join(TASK_TYPES)}")


def pairwise_from_probability(p_a: float, p_tie: float = 0.0, *, allow_ties: bool) -> int:
    """Map an AI judge's p(A ≻ B) (and p(tie)) onto the 5-point scale.

    Thresholds are symmetric so that swapping A and B flips the sign exactly, except at an exact
    50/50 split without ties, where a side must be picked and A is (a documented, measure-zero
    bias). A tie is chosen only when the tie token is the single most likely outcome.
    """
    p_b = max(0.0, 1.0 - p_a - p_tie)
    if allow_ties and p_tie >= max(p_a, p_b):
        return 0
    share_a = p_a / (p_a + p_b) if (p_a + p_b) > 0 else 0.5
    if share_a >= 0.8:
        return 2
    if share_a > 0.5:
        return 1
    if share_a <= 0.2:
        return -2
    if share_a < 0.5:
        return -1
    return 0 if allow_ties else 1


def describe(task_type: str, value: dict, *, scale_labels: list[str] | None = None) -> str:
    """A verdict in words, for people: "B is slightly better", "C > A > B = D", "best A, worst C".

    Responses are named by canonical position (A = the first response).
    """
    letters = "ABCDEFGHIJKLMNOP"
    try:
        if task_type == PAIRWISE:
            labels = scale_labels or DEFAULT_SCALE_LABELS
            return labels[PAIRWISE_STRENGTHS.index(int(value["strength"]))]
        if task_type == RANKING:
            ranks = value["ranks"]
            order = sorted(range(len(ranks)), key=lambda i: (ranks[i], i))
            text = letters[order[0]]
            for prev, cur in itertools.pairwise(order):
                text += (" = " if ranks[cur] == ranks[prev] else " > ") + letters[cur]
            return text
        if task_type == KWISE:
            return f"best {letters[value['best']]}, worst {letters[value['worst']]}"
    except (KeyError, IndexError, TypeError, ValueError):
        pass
    return str(value)
