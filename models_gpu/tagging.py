"""Descriptive tags for routing, made by the project's judge model (HyPER's "descriptive" features).

One short multiple-choice prompt per dimension; the answer is read, like a verdict, from the
next-token probabilities of the option letters (no sampling, no parsing), so a tag comes with
its probability. The dimensions follow the HyPER paper: subject, expertise level, safety
concern, complexity of intents, open-endedness, format constraints.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from models_gpu.prompts import format_conversation
from models_gpu.results import coerce_item, error_message

TAGS_VERSION = "tags-v1"

# dimension → (question, options). Options are short so the letter list fits any context.
DIMENSIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "subject": (
        "What is the main subject of the request?",
        (
            "coding",
            "math",
            "science",
            "health",
            "law",
            "finance",
            "history and society",
            "writing and language",
            "business",
            "education",
            "entertainment",
            "everyday life",
        ),
    ),
    "expertise": (
        "What expertise does a good answer need?",
        ("general knowledge", "basic domain knowledge", "expert knowledge"),
    ),
    "safety": (
        "How much safety concern does the request raise?",
        ("safe", "low concern", "moderate concern", "high concern"),
    ),
    "complexity": (
        "How complex are the intents of the request?",
        ("simple", "moderate", "complex"),
    ),
    "open_endedness": (
        "How open-ended is the request?",
        ("not open-ended", "low", "moderate", "high"),
    ),
    "format_constraints": (
        "Does the request constrain the format of the answer (length, structure, style)?",
        ("no", "yes"),
    ),
}

_TEMPLATE = (
    "Read the user request below and answer one question about it.\n\n"
    "[User request]\n{prompt}\n\n[Question]\n{question}\n\n[Options]\n{options}\n\n"
    "Answer with the letter of one option."
)
_PREFIX = "Answer:"


@dataclass
class TagResult:
    """Tags of one item: dimension → option, with the probability the model gave it."""

    index: int
    item_id: Any = None
    tags: dict[str, str] = field(default_factory=dict)
    probabilities: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def tag_items(
    judge: Any,
    items: Iterable[Any],
    *,
    dimensions: Sequence[str] | None = None,
    max_prompt_tokens: int = 768,
) -> list[TagResult]:
    """Tag a batch of items with an `LLMJudge` (its model, tokenizer and batch size).

    Long prompts are cut in the middle to `max_prompt_tokens` (the tags describe the request;
    its head and tail say what it asks). Item errors are recorded per item.
    """
    from models_gpu.llm_judge import label_token_sets
    from models_gpu.prompts import cut_middle

    dims = list(dimensions or DIMENSIONS)
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown tag dimensions: {', '.join(unknown)}")
    tokenizer = judge.loaded.tokenizer
    items = list(items)
    results = [TagResult(index=n) for n in range(len(items))]
    queries: list[tuple[int, str, list[int]]] = []
    for n, raw in enumerate(items):
        try:
            item = coerce_item(raw)
            results[n].item_id = item.id
            text = format_conversation(item.prompt)
            ids = tokenizer.encode(text, add_special_tokens=False)
            if len(ids) > max_prompt_tokens:
                text = cut_middle(tokenizer, ids, max_prompt_tokens)
            for dim in dims:
                question, options = DIMENSIONS[dim]
                letters = _letters(len(options))
                listed = "\n".join(
                    f"{letter}) {option}" for letter, option in zip(letters, options, strict=True)
                )
                user = _TEMPLATE.format(prompt=text, question=question, options=listed)
                queries.append((n, dim, judge.encode_prompt(user, _PREFIX)))
        except Exception as exc:
            results[n].error = error_message(exc)
    token_sets = {
        dim: label_token_sets(tokenizer, _letters(len(DIMENSIONS[dim][1]))) for dim in dims
    }
    # Dimensions have different option counts, so each is its own forward group.
    for dim in dims:
        mine = [(n, ids) for n, d, ids in queries if d == dim and results[n].ok]
        outputs = judge.score_sequences([ids for _, ids in mine], token_sets[dim])
        for (n, _), output in zip(mine, outputs, strict=True):
            if isinstance(output, Exception):
                results[n].error = error_message(output)
                continue
            probs, _mass = output
            best = max(range(len(probs)), key=probs.__getitem__)
            results[n].tags[dim] = DIMENSIONS[dim][1][best]
            results[n].probabilities[dim] = round(float(probs[best]), 4)
    for result in results:
        if not result.ok:
            result.tags, result.probabilities = {}, {}
    return results


def _letters(n: int) -> list[str]:
    return [chr(ord("A") + i) for i in range(n)]
