"""Judge prompts: the default rubrics, template checks, chat formatting and truncation.

A template is one text with placeholders in braces. Only the known names are substituted
(`{prompt}`, `{response_a}`, `{response_b}`, `{aspect}`, `{verdict_options}`; listwise:
`{responses}`), so literal braces elsewhere (JSON examples in a rubric) are left alone, and a
response that happens to contain "{response_b}" is never expanded a second time.

The text may end with a line `[assistant]`: what follows it is the start of the judge's answer
(the *verdict prefix*, e.g. "Verdict: Response"); the prompt ends right there, so the next
token is the verdict. Without that line the default prefix is used. When the tokenizer has a
chat template, the part before `[assistant]` becomes the user message and the prefix is put
after the assistant header; otherwise both are joined as plain text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from models_gpu.spec import ItemError, TemplateError

ASSISTANT_MARKER = "[assistant]"
PAIRWISE_PLACEHOLDERS = ("prompt", "response_a", "response_b", "aspect")
LISTWISE_PLACEHOLDERS = ("prompt", "responses", "aspect")
OPTIONAL_PLACEHOLDERS = ("verdict_options",)
KNOWN_PLACEHOLDERS = (*PAIRWISE_PLACEHOLDERS, "responses", *OPTIONAL_PLACEHOLDERS)
_PLACEHOLDER = re.compile(r"\{(" + "|".join(KNOWN_PLACEHOLDERS) + r")\}")

# Bump when the default texts change: AI judgments are stored per prompt version.
DEFAULT_TEMPLATE_VERSION = "default-v1"

DEFAULT_VERDICT_PREFIX = "Verdict: Response"

DEFAULT_PAIRWISE_TEMPLATE = """\
Please act as an impartial judge. Compare the two responses an AI assistant gave to the user \
request below, and decide which one is better in terms of {aspect}. Do not let the order in \
which the responses are shown, their length or their style sway you.

[User request]
{prompt}

[Response A]
{response_a}

[Response B]
{response_b}

Which response is better in terms of {aspect}? Reply with {verdict_options}.
[assistant]
Verdict: Response"""

DEFAULT_LISTWISE_TEMPLATE = """\
Please act as an impartial judge. Below are several responses an AI assistant gave to the same \
user request. Decide which one is the best in terms of {aspect}. Do not let the order in which \
the responses are shown, their length or their style sway you.

[User request]
{prompt}

{responses}

Which response is the best in terms of {aspect}? Reply with {verdict_options}.
[assistant]
Best: Response"""

# Shown to the judge instead of the cut-out middle of a truncated text.
TRUNCATION_MARK = " [...] "
# Truncation never shrinks a response below this many tokens, nor the prompt below
# MIN_PROMPT_TOKENS; if even that does not fit, the item fails with a clear message.
MIN_RESPONSE_TOKENS = 32
MIN_PROMPT_TOKENS = 32
# Share of a truncated text kept from its start; the rest is kept from its end, because the
# end of a response often holds its conclusion / final answer.
HEAD_SHARE = 2 / 3


@dataclass(frozen=True)
class PromptTemplate:
    """A checked template: `user` text and the verdict prefix that ends the prompt."""

    user: str
    verdict_prefix: str = DEFAULT_VERDICT_PREFIX

    @classmethod
    def from_text(
        cls, text: str, *, required: Sequence[str] = PAIRWISE_PLACEHOLDERS
    ) -> PromptTemplate:
        """Split at the `[assistant]` line and check that every required placeholder is there."""
        if not isinstance(text, str) or not text.strip():
            raise TemplateError("the prompt template is empty")
        user, prefix = text, DEFAULT_VERDICT_PREFIX
        lines = text.split("\n")
        for at in range(len(lines) - 1, -1, -1):
            if lines[at].strip() == ASSISTANT_MARKER:
                user = "\n".join(lines[:at]).rstrip()
                prefix = "\n".join(lines[at + 1 :]).strip("\n")
                break
        template = cls(user=user, verdict_prefix=prefix)
        template.check(required)
        return template

    def check(self, required: Sequence[str]) -> None:
        present = set(_PLACEHOLDER.findall(self.user))
        missing = [name for name in required if name not in present]
        if missing:
            names = ", ".join("{" + name + "}" for name in missing)
            raise TemplateError(f"the prompt template misses the placeholder {names}")
        if not self.verdict_prefix.strip():
            raise TemplateError(f"the verdict prefix after {ASSISTANT_MARKER} is empty")

    def fill(self, values: Mapping[str, str]) -> tuple[str, str]:
        """Substitute the placeholders in one pass (see the module docstring for why)."""

        def substitute(text: str) -> str:
            return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)

        return substitute(self.user), substitute(self.verdict_prefix)


def validate_template(text: str, *, listwise: bool = False) -> PromptTemplate:
    """For forms and the Celery glue: raise TemplateError naming what is wrong, before any model work."""
    return PromptTemplate.from_text(
        text, required=LISTWISE_PLACEHOLDERS if listwise else PAIRWISE_PLACEHOLDERS
    )


def verdict_options(labels: Sequence[str], tie_label: str | None) -> str:
    """The sentence that tells the judge which letters it may answer with."""
    parts = [f'"{label}" if Response {label} is better' for label in labels]
    if tie_label:
        parts.append(f'"{tie_label}" if they are equally good')
    return ", ".join(parts[:-1]) + " or " + parts[-1] if len(parts) > 1 else parts[0]


def listwise_options(labels: Sequence[str]) -> str:
    return "the letter of the best response (" + ", ".join(labels) + ")"


def format_conversation(prompt: str | Sequence[Mapping[str, Any]]) -> str:
    """An item prompt as text: a string stays as it is; a chat list becomes a transcript
    (a single user turn is just its content)."""
    if isinstance(prompt, str):
        return prompt
    turns = [(str(m.get("role", "user")), str(m.get("content", ""))) for m in prompt]
    if len(turns) == 1 and turns[0][0] == "user":
        return turns[0][1]
    return "\n\n".join(f"{role.capitalize()}: {content}" for role, content in turns)


def render_chat(
    tokenizer: Any, user: str, assistant_prefix: str, *, use_chat: bool
) -> tuple[str, bool]:
    """The full prompt text, and whether the tokenizer should add its own special tokens.

    Chat-rendered text already holds BOS and the turn markers, so it is tokenised without
    adding special tokens again (a doubled BOS shifts the model's predictions).
    """
    if use_chat and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
        )
        return text + assistant_prefix, False
    return f"{user}\n\n{assistant_prefix}", True


def _waterfill(lengths: Sequence[int], budget: int) -> int:
    """The largest cap c with sum(min(l, c)) <= budget: long texts are cut first and to the
    same length, short ones are left whole."""
    remaining, ordered = budget, sorted(lengths)
    for n_left, length in zip(range(len(ordered), 0, -1), ordered, strict=True):
        if length * n_left <= remaining:
            remaining -= length
            continue
        return max(0, remaining // n_left)
    return max(ordered, default=0)


def cut_middle(tokenizer: Any, ids: Sequence[int], keep: int) -> str:
    """Keep `keep` tokens: the first HEAD_SHARE of them and the rest from the end."""
    mark_cost = len(tokenizer.encode(TRUNCATION_MARK, add_special_tokens=False))
    keep = max(2, keep - mark_cost)
    head = math.ceil(keep * HEAD_SHARE)
    tail = keep - head
    text = tokenizer.decode(list(ids[:head]), skip_special_tokens=True)
    text += TRUNCATION_MARK
    if tail > 0:
        text += tokenizer.decode(list(ids[-tail:]), skip_special_tokens=True)
    return text


def truncate_fields(
    tokenizer: Any,
    fields: Mapping[str, str],
    *,
    responses: Sequence[str],
    prompt: str,
    count: Callable[[Mapping[str, str]], int],
    max_length: int,
) -> tuple[dict[str, str], bool]:
    """Shrink the texts in `fields` until `count(fields) <= max_length`; return them and
    whether anything was cut.

    The rule, in order:
    1. Everything else (template instructions, chat markers, verdict prefix) is never cut.
    2. Responses are cut first, longest first, to a common cap (water-filling), so the
       judge sees equally long excerpts of the long ones; no response goes below
       MIN_RESPONSE_TOKENS.
    3. Only if the responses at that floor still do not fit is the prompt cut, down to
       MIN_PROMPT_TOKENS; below that the item fails with ItemError.
    Each cut removes the middle of a text and keeps its start (2/3) and end (1/3), joined by
    TRUNCATION_MARK. Token counts of pieces are not exactly additive once re-rendered, so
    the check is repeated with a tighter budget a few times.
    """
    current = dict(fields)
    total = count(current)
    if total <= max_length:
        return current, False
    ids = {
        name: tokenizer.encode(fields[name], add_special_tokens=False)
        for name in (*responses, prompt)
    }
    overhead = total - sum(len(v) for v in ids.values())
    slack = 0
    for _attempt in range(6):
        available = max_length - overhead - slack
        prompt_len = len(ids[prompt])
        floor = sum(min(len(ids[r]), MIN_RESPONSE_TOKENS) for r in responses)
        response_budget = available - prompt_len
        if response_budget < floor:
            response_budget = floor
            prompt_len = available - floor
            if prompt_len < min(MIN_PROMPT_TOKENS, len(ids[prompt])):
                raise ItemError(
                    f"item does not fit into max_length={max_length} tokens even after truncation "
                    f"(template and markers alone take {overhead})"
                )
        cap = _waterfill([len(ids[r]) for r in responses], response_budget)
        current = dict(fields)
        for name in responses:
            if len(ids[name]) > cap:
                current[name] = cut_middle(tokenizer, ids[name], cap)
        if len(ids[prompt]) > prompt_len:
            current[prompt] = cut_middle(tokenizer, ids[prompt], prompt_len)
        total = count(current)
        if total <= max_length:
            return current, True
        slack += total - max_length + 4
    raise ItemError(f"item could not be truncated to max_length={max_length} tokens")
