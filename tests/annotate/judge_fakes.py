"""A stand-in judge for tests of the judging glue: real result objects, no model."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from models_gpu.results import JudgeResult, OrderProbs, combine_orders
from models_gpu.spec import JudgeConfigError


class FakeJudge:
    """Prefers response A with p_AB(A) = 0.8, p_BA(A) = 0.6; fails items whose prompt says FAIL."""

    aspect_aware = True

    def __init__(self, *, broken: str | None = None) -> None:
        self.broken = broken
        self.calls: list[list[Any]] = []

    def judge(
        self,
        items: Iterable[Any],
        *,
        aspects: Sequence[str] = ("overall",),
        template: str | None = None,
        allow_ties: bool = True,
    ) -> list[JudgeResult]:
        if self.broken:
            raise JudgeConfigError(self.broken)
        items = list(items)
        self.calls.append([i["id"] for i in items])
        results = []
        for n, item in enumerate(items):
            result = JudgeResult(index=n, item_id=item["id"], n_tokens=100)
            if "FAIL" in str(item["prompt"]):
                result.error = "ItemError: prompt: cannot be judged"
            else:
                ab = OrderProbs(p_first=0.8, p_second=0.15, p_tie=0.05, verdict_mass=0.9)
                ba = OrderProbs(p_first=0.35, p_second=0.6, p_tie=0.05, verdict_mass=0.9)
                result.verdicts = {
                    a: combine_orders(a, ab, ba, allow_ties=allow_ties) for a in aspects
                }
                result.truncated = "LONG" in str(item["prompt"])
            results.append(result)
        return results


def use_fake_judge(monkeypatch: Any, judge: FakeJudge) -> FakeJudge:
    import models_gpu

    monkeypatch.setattr(models_gpu, "load_judge", lambda spec: judge, raising=False)
    return judge
