"""Items in, results out: the plain data shapes every judge backend shares, and the maths that
turns per-order verdict probabilities into one graded verdict with confidence signals.

Verdict `.value`s have exactly the shapes of `annotate.verdicts` (pairwise {"strength"},
ranking {"ranks", "scores"}), so the Celery glue can store them as `Judgment.value` as they are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from annotate.verdicts import pairwise_from_probability  # pure Python, no Django imports
from models_gpu.spec import ItemError


@dataclass(frozen=True)
class Response:
    text: str
    model: str = ""


@dataclass(frozen=True)
class JudgeItem:
    """One item to judge. `prompt` is a string or a chat list of {role, content};
    `responses` are in canonical order (index 0 = "A"); `id` is passed through untouched."""

    prompt: str | tuple[Mapping[str, Any], ...]
    responses: tuple[Response, ...]
    id: Any = None


def coerce_item(raw: Any) -> JudgeItem:
    """Accept a JudgeItem, a dict or any object with `prompt` / `responses` (/ `id`).
    Responses may be {model, text} dicts, Response objects or plain strings."""
    if isinstance(raw, JudgeItem):
        item = raw
    else:
        get = (
            raw.get
            if isinstance(raw, Mapping)
            else (lambda name, default=None: getattr(raw, name, default))
        )
        prompt, responses = get("prompt"), get("responses")
        if isinstance(prompt, list):
            prompt = tuple(prompt)
        if not isinstance(responses, list | tuple):
            raise ItemError("responses: must be a list of {model, text}")
        item = JudgeItem(
            prompt=prompt, responses=tuple(_coerce_response(r) for r in responses), id=get("id")
        )
    if isinstance(item.prompt, tuple):
        if not all(
            isinstance(m, Mapping) and isinstance(m.get("content"), str) for m in item.prompt
        ):
            raise ItemError(
                "prompt: a chat prompt must be a list of {role, content} with text content"
            )
    elif not isinstance(item.prompt, str):
        raise ItemError(f"prompt: must be text or a chat list, got {type(item.prompt).__name__}")
    if len(item.responses) < 2:
        raise ItemError(f"responses: need at least 2 to compare, got {len(item.responses)}")
    return item


def _coerce_response(raw: Any) -> Response:
    if isinstance(raw, Response):
        return raw
    if isinstance(raw, str):
        return Response(text=raw)
    if isinstance(raw, Mapping) and isinstance(raw.get("text"), str):
        return Response(text=raw["text"], model=str(raw.get("model") or ""))
    raise ItemError("responses: each response must be {model, text} with text content")


@dataclass(frozen=True)
class OrderProbs:
    """Verdict probabilities read in one presentation order, renormalised over the verdict
    tokens. `p_first` is the response shown first ("A"). `verdict_mass` is how much of the raw
    next-token probability fell on verdict tokens at all: low mass means the model was not
    answering in the expected format, which is itself a reason to trust the item less."""

    p_first: float
    p_second: float
    p_tie: float
    verdict_mass: float


@dataclass(frozen=True)
class PairVerdict:
    """A graded pairwise verdict for one aspect, from A's (canonical response 0's) side.

    p_a + p_b + p_tie = 1. strength is -2..2 (+2 = A much better, see annotate.verdicts).
    margin = |p_a − p_b|; swap_disagreement = |p_AB(A) − p_BA(A)| (0 for judges without
    position bias); entropy in nats of (p_a, p_b[, p_tie]); confidence in 0..1 is
    (top − runner-up of that distribution) × (1 − swap_disagreement): high only when the
    judge prefers one outcome clearly *and* says the same in both orders.
    """

    aspect: str
    p_a: float
    p_b: float
    p_tie: float
    strength: int
    margin: float
    swap_disagreement: float
    entropy: float
    confidence: float
    order_ab: OrderProbs | None = None
    order_ba: OrderProbs | None = None

    @property
    def value(self) -> dict:
        return {"strength": self.strength}

    def to_json(self) -> dict:
        return {"kind": "pairwise", **asdict(self), "value": self.value}


@dataclass(frozen=True)
class RankingVerdict:
    """A ranking of K responses for one aspect: ranks (1 = best, strict), scores (higher =
    better; Bradley–Terry log-strengths, log-probabilities of being best, or rewards —
    see `method`), and a confidence in 0..1. `pair_probs` keeps the pairwise p(i≻j) used."""

    aspect: str
    ranks: list[int]
    scores: list[float]
    confidence: float
    method: str
    swap_disagreement: float = 0.0
    pair_probs: list[list[float]] | None = None

    @property
    def value(self) -> dict:
        return {"ranks": list(self.ranks), "scores": [round(s, 6) for s in self.scores]}

    def to_json(self) -> dict:
        return {"kind": "ranking", **asdict(self), "value": self.value}


@dataclass
class JudgeResult:
    """The judge's answer for one input item, in input order.

    `verdicts` maps aspect → verdict (PairVerdict for two responses, RankingVerdict for more).
    When `error` is set the item failed and `verdicts` is empty; the rest of the batch is fine.
    `truncated` says that some text was cut to fit max_length (see prompts.truncate_fields).
    `n_tokens` counts the input tokens the judge processed for this item (all prompts).
    """

    index: int
    item_id: Any = None
    verdicts: dict[str, PairVerdict | RankingVerdict] = field(default_factory=dict)
    truncated: bool = False
    error: str | None = None
    n_tokens: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict:
        return {
            "index": self.index,
            "item_id": self.item_id,
            "ok": self.ok,
            "error": self.error,
            "truncated": self.truncated,
            "n_tokens": self.n_tokens,
            "verdicts": {aspect: v.to_json() for aspect, v in self.verdicts.items()},
        }


def error_message(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, ItemError) else f"{type(exc).__name__}: {exc}"


def entropy(probs: Sequence[float]) -> float:
    return -sum(p * math.log(p) for p in probs if p > 0)


def make_pair_verdict(
    aspect: str,
    p_a: float,
    p_b: float,
    p_tie: float,
    *,
    allow_ties: bool,
    swap_disagreement: float = 0.0,
    order_ab: OrderProbs | None = None,
    order_ba: OrderProbs | None = None,
) -> PairVerdict:
    total = p_a + p_b + p_tie
    if total > 0:  # guard against float drift; inputs are already normalised
        p_a, p_b, p_tie = p_a / total, p_b / total, p_tie / total
    dist = sorted([p_a, p_b, p_tie] if allow_ties else [p_a, p_b], reverse=True)
    return PairVerdict(
        aspect=aspect,
        p_a=p_a,
        p_b=p_b,
        p_tie=p_tie,
        strength=pairwise_from_probability(p_a, p_tie, allow_ties=allow_ties),
        margin=abs(p_a - p_b),
        swap_disagreement=swap_disagreement,
        entropy=entropy(dist),
        confidence=max(0.0, min(1.0, (dist[0] - dist[1]) * (1.0 - swap_disagreement))),
        order_ab=order_ab,
        order_ba=order_ba,
    )


def combine_orders(aspect: str, ab: OrderProbs, ba: OrderProbs, *, allow_ties: bool) -> PairVerdict:
    """Average the two presentation orders (the position-debiased verdict).

    In order BA response B is shown first, so A's probability there is `ba.p_second`:
    p(A≻B) = ½(p_AB(A) + p_BA(A as second)), p(B≻A) likewise, p(tie) = ½(p_AB(tie) + p_BA(tie)).
    """
    return make_pair_verdict(
        aspect,
        0.5 * (ab.p_first + ba.p_second),
        0.5 * (ab.p_second + ba.p_first),
        0.5 * (ab.p_tie + ba.p_tie),
        allow_ties=allow_ties,
        swap_disagreement=abs(ab.p_first - ba.p_second),
        order_ab=ab,
        order_ba=ba,
    )
