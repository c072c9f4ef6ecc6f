from __future__ import annotations

import pytest

from models_gpu import TemplateError, validate_template
from models_gpu.prompts import (
    DEFAULT_PAIRWISE_TEMPLATE,
    DEFAULT_VERDICT_PREFIX,
    TRUNCATION_MARK,
    PromptTemplate,
    _waterfill,
    format_conversation,
    truncate_fields,
)


def test_a_template_missing_a_placeholder_raises_naming_it():
    text = DEFAULT_PAIRWISE_TEMPLATE.replace("{response_b}", "")
    with pytest.raises(TemplateError, match=r"\{response_b\}"):
        validate_template(text)


def test_the_default_template_is_valid_and_ends_with_its_verdict_prefix():
    template = validate_template(DEFAULT_PAIRWISE_TEMPLATE)
    assert template.verdict_prefix == "Verdict: Response"
    assert "[assistant]" not in template.user


def test_a_template_without_an_assistant_line_uses_the_default_prefix():
    template = validate_template("{prompt} {response_a} {response_b} {aspect}")
    assert template.verdict_prefix == DEFAULT_VERDICT_PREFIX


def test_literal_braces_survive_and_responses_are_not_expanded_twice():
    template = PromptTemplate.from_text('JSON {"a": 1} {prompt}|{response_a}|{response_b}|{aspect}')
    user, _ = template.fill(
        {"prompt": "p", "response_a": "{response_b}", "response_b": "b", "aspect": "x"}
    )
    assert user == 'JSON {"a": 1} p|{response_b}|b|x'


def test_a_chat_prompt_becomes_a_transcript_and_a_single_turn_its_content():
    assert format_conversation([{"role": "user", "content": "hi"}]) == "hi"
    chat = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
        {"role": "user", "content": "?"},
    ]
    assert format_conversation(chat) == "User: hi\n\nAssistant: yo\n\nUser: ?"


def test_waterfill_cuts_the_longest_texts_to_a_common_cap():
    assert _waterfill([10, 100, 200], 110) == 50
    assert _waterfill([10, 20], 100) == 20


def _count(tokenizer):
    return lambda f: len(
        tokenizer.encode("INSTRUCTIONS " + f["prompt"] + f["a"] + f["b"] + " Verdict:")
    )


def test_truncation_cuts_the_long_response_first_and_keeps_the_prompt(tokenizer):
    fields = {"prompt": "What is 2+2?", "a": "4", "b": "The quick brown fox. " * 200}
    fitted, truncated = truncate_fields(
        tokenizer,
        fields,
        responses=["a", "b"],
        prompt="prompt",
        count=_count(tokenizer),
        max_length=200,
    )
    assert truncated
    assert fitted["prompt"] == fields["prompt"] and fitted["a"] == "4"
    assert TRUNCATION_MARK in fitted["b"] and fitted["b"].startswith("The quick")
    assert _count(tokenizer)(fitted) <= 200


def test_truncation_cuts_the_prompt_when_responses_reach_their_floor(tokenizer):
    fields = {
        "prompt": "Paris is the capital of France. " * 100,
        "a": "lazy dog " * 100,
        "b": "brown fox " * 100,
    }
    fitted, truncated = truncate_fields(
        tokenizer,
        fields,
        responses=["a", "b"],
        prompt="prompt",
        count=_count(tokenizer),
        max_length=120,
    )
    assert truncated and TRUNCATION_MARK in fitted["prompt"]
    assert _count(tokenizer)(fitted) <= 120


def test_short_texts_are_left_alone_and_not_flagged(tokenizer):
    fields = {"prompt": "p", "a": "x", "b": "y"}
    assert truncate_fields(
        tokenizer,
        fields,
        responses=["a", "b"],
        prompt="prompt",
        count=_count(tokenizer),
        max_length=100,
    ) == (fields, False)
