"""The entry points: build a judge from a JudgeSpec (once per process) and judge items.

    judge = load_judge(JudgeSpec(backend="llm_pairwise"))         # cached per process
    results = judge.judge(items, aspects=["overall"], template=None, allow_ties=True)
    for r in results: r.error or r.verdicts["overall"].value      # {"strength": 2} …

Call `load_judge` inside the worker (the task body), never at import time or in the Celery
parent: loading picks the device and would otherwise touch CUDA before the fork.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from models_gpu.llm_judge import LLMJudge
from models_gpu.loading import CAUSAL_LM, SEQUENCE_CLASSIFIER, load_model
from models_gpu.results import JudgeResult
from models_gpu.scored import DensityRatioJudge, RewardModelJudge
from models_gpu.spec import DENSITY_RATIO, LLM_LISTWISE, LLM_PAIRWISE, REWARD_MODEL, JudgeSpec


class Judge(Protocol):
    spec: JudgeSpec
    # False: the backend has no aspect input and answers under the first requested aspect only.
    aspect_aware: bool

    def judge(
        self,
        items: Iterable[Any],
        *,
        aspects: Sequence[str] = ("overall",),
        template: str | None = None,
        allow_ties: bool = True,
    ) -> list[JudgeResult]: ...


@functools.lru_cache(maxsize=8)
def load_judge(spec: JudgeSpec) -> Judge:
    """The judge for `spec`, built once per process. Models are cached separately by
    (kind, name, dtype, device), so specs that differ only in batch size or options share them.

    Raises ModelNotFoundError / JudgeConfigError / JudgeOOMError with a message for the run.
    """
    if spec.backend in (LLM_PAIRWISE, LLM_LISTWISE):
        return LLMJudge(spec, load_model(CAUSAL_LM, spec.model, spec.dtype, spec.device))
    if spec.backend == REWARD_MODEL:
        return RewardModelJudge(
            spec, [load_model(SEQUENCE_CLASSIFIER, spec.model, spec.dtype, spec.device)]
        )
    if spec.backend == DENSITY_RATIO:
        strong = load_model(CAUSAL_LM, spec.model, spec.dtype, spec.device)
        weak = load_model(CAUSAL_LM, spec.weak_model, spec.dtype, spec.device)
        return DensityRatioJudge(spec, [strong, weak])
    raise AssertionError(f"unreachable: JudgeSpec validated backend {spec.backend!r}")


def judge_items(
    spec: JudgeSpec,
    items: Iterable[Any],
    *,
    aspects: Sequence[str] = ("overall",),
    template: str | None = None,
    allow_ties: bool = True,
) -> list[JudgeResult]:
    """One call for the Celery task: load (cached) and judge a batch of items."""
    return load_judge(spec).judge(items, aspects=aspects, template=template, allow_ties=allow_ties)
