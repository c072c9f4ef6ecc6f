"""Model-running core for AI judges: pure Python + torch + transformers, no Django.

Public API (see judges.py for an example):
    JudgeSpec, load_judge(spec), judge_items(spec, items, aspects=…, template=…, allow_ties=…)
    JudgeResult / PairVerdict / RankingVerdict (results.py), validate_template (prompts.py)
    errors: JudgeError > JudgeConfigError > ModelNotFoundError, TemplateError; JudgeOOMError; ItemError

Only spec.py is imported eagerly: the web process and the Celery parent can import this package
(e.g. to validate a template or build a spec) without paying for torch/transformers imports.
"""

from __future__ import annotations

import importlib
from typing import Any

from models_gpu.spec import (
    BACKENDS,
    DENSITY_RATIO,
    LLM_LISTWISE,
    LLM_PAIRWISE,
    REWARD_MODEL,
    ItemError,
    JudgeConfigError,
    JudgeError,
    JudgeOOMError,
    JudgeSpec,
    ModelNotFoundError,
    TemplateError,
)

_LAZY = {
    "load_judge": "models_gpu.judges",
    "judge_items": "models_gpu.judges",
    "JudgeResult": "models_gpu.results",
    "PairVerdict": "models_gpu.results",
    "RankingVerdict": "models_gpu.results",
    "OrderProbs": "models_gpu.results",
    "JudgeItem": "models_gpu.results",
    "Response": "models_gpu.results",
    "validate_template": "models_gpu.prompts",
    "DEFAULT_PAIRWISE_TEMPLATE": "models_gpu.prompts",
    "DEFAULT_LISTWISE_TEMPLATE": "models_gpu.prompts",
    "DEFAULT_TEMPLATE_VERSION": "models_gpu.prompts",
}

__all__ = [
    "BACKENDS",
    "DENSITY_RATIO",
    "LLM_LISTWISE",
    "LLM_PAIRWISE",
    "REWARD_MODEL",
    "ItemError",
    "JudgeConfigError",
    "JudgeError",
    "JudgeOOMError",
    "JudgeSpec",
    "ModelNotFoundError",
    "TemplateError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'models_gpu' has no attribute {name!r}")
