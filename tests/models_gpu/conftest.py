"""Tiny random-weight models for plumbing tests: built from configs in a second, no downloads.

Speed and plumbing do not depend on weight values, so these exercise every code path
(loading from a folder, padding, truncation, aggregation) without a real model.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedTokenizerFast,
)

from models_gpu.prompts import DEFAULT_LISTWISE_TEMPLATE, DEFAULT_PAIRWISE_TEMPLATE

CORPUS = [
    DEFAULT_PAIRWISE_TEMPLATE,
    DEFAULT_LISTWISE_TEMPLATE,
    "What is 2+2? The answer is 4. The answer is 5. Paris is the capital of France.",
    "User: Assistant: helpfulness truthfulness harmlessness overall quality",
    "The quick brown fox jumps over the lazy dog. alpha-response beta-response gamma-response",
]
SIMPLE_CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)


def build_tokenizer(chat: bool = False) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on a few sentences: no unknown tokens, exact decode."""
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(CORPUS, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    if chat:
        tokenizer.chat_template = SIMPLE_CHAT_TEMPLATE
    return tokenizer


def tiny_config(vocab_size: int, **extra) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        # Larger random weights make next-token distributions far from uniform, so that a
        # padding bug would show up as a visible difference in the probabilities.
        initializer_range=0.3,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        **extra,
    )


def save_tiny(folder: Path, model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast) -> str:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    return build_tokenizer()


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Folder of a random 2-layer Llama causal LM with a plain (no chat template) tokenizer."""
    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    return save_tiny(
        tmp_path_factory.mktemp("tiny_lm"), LlamaForCausalLM(tiny_config(len(tokenizer))), tokenizer
    )


@pytest.fixture(scope="session")
def tiny_chat_lm(tmp_path_factory: pytest.TempPathFactory) -> str:
    tokenizer = build_tokenizer(chat=True)
    torch.manual_seed(1)
    return save_tiny(
        tmp_path_factory.mktemp("tiny_chat_lm"),
        LlamaForCausalLM(tiny_config(len(tokenizer))),
        tokenizer,
    )


@pytest.fixture(scope="session")
def tiny_weak_lm(tmp_path_factory: pytest.TempPathFactory) -> str:
    tokenizer = build_tokenizer(chat=True)
    torch.manual_seed(2)
    return save_tiny(
        tmp_path_factory.mktemp("tiny_weak_lm"),
        LlamaForCausalLM(tiny_config(len(tokenizer))),
        tokenizer,
    )


@pytest.fixture(scope="session")
def tiny_reward_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    tokenizer = build_tokenizer(chat=True)
    torch.manual_seed(3)
    model = LlamaForSequenceClassification(tiny_config(len(tokenizer), num_labels=1))
    return save_tiny(tmp_path_factory.mktemp("tiny_rm"), model, tokenizer)
