"""LLM-as-judge from next-token probabilities: pairwise (both orders) and listwise (rotated).

Why probabilities and not generated text: one forward pass per prompt instead of a decode
loop, a graded verdict and a confidence for free, and no parsing failures. The prompt ends
with the verdict prefix ("Verdict: Response"), so the next token is the verdict letter; we
read its probability under every spelling the tokenizer has for it ("A" and " A") and sum.

Pairwise items (K = 2) are judged in both orders and averaged (results.combine_orders).
K > 2 responses: all K·(K−1) ordered pairs, aggregated with Bradley–Terry (ranking.py).
Listwise (backend llm_listwise): one prompt shows all K responses; K prompts rotate their
order (a cyclic Latin square: every response appears once at every position) and the
probabilities of "best" are averaged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from models_gpu.batching import left_pad, run_grouped
from models_gpu.loading import LoadedModel
from models_gpu.prefix_sharing import PrefixSharingScorer
from models_gpu.prompts import (
    DEFAULT_LISTWISE_TEMPLATE,
    DEFAULT_PAIRWISE_TEMPLATE,
    LISTWISE_PLACEHOLDERS,
    PAIRWISE_PLACEHOLDERS,
    PromptTemplate,
    format_conversation,
    listwise_options,
    render_chat,
    truncate_fields,
    verdict_options,
)
from models_gpu.ranking import DEFAULT_ALPHA, ranking_from_pairs, ranks_from_scores
from models_gpu.results import (
    JudgeItem,
    JudgeResult,
    OrderProbs,
    PairVerdict,
    RankingVerdict,
    coerce_item,
    combine_orders,
    error_message,
)
from models_gpu.spec import JudgeConfigError, JudgeSpec

PAIR_LABELS = ("A", "B")
DEFAULT_TIE_LABEL = "C"


def verdict_token_ids(tokenizer: Any, label: str) -> list[int]:
    """Every single-token spelling of `label`, with and without a leading space.

    If neither spelling is one token (unusual for a capital letter), the first token of the
    bare label stands in for it; that still ranks the labels correctly.
    """
    ids: list[int] = []
    for variant in (label, " " + label):
        encoded = tokenizer.encode(variant, add_special_tokens=False)
        if len(encoded) == 1 and encoded[0] not in ids:
            ids.append(encoded[0])
    if not ids:
        encoded = tokenizer.encode(label, add_special_tokens=False)
        if not encoded:
            raise JudgeConfigError(f"the tokenizer has no token for the verdict label {label!r}")
        ids.append(encoded[0])
    return ids


def label_token_sets(tokenizer: Any, labels: Sequence[str]) -> list[list[int]]:
    sets = [verdict_token_ids(tokenizer, label) for label in labels]
    seen: dict[int, str] = {}
    for label, ids in zip(labels, sets, strict=True):
        for token in ids:
            if token in seen:
                raise JudgeConfigError(
                    f"verdict labels {seen[token]!r} and {label!r} share a token"
                )
            seen[token] = label
    return sets


@dataclass
class _Query:
    """One prompt to score: which item/aspect it belongs to and what it shows where."""

    item: int
    aspect: str
    shown: tuple[int, ...]  # canonical response index at each position
    ids: list[int]


class LLMJudge:
    """A causal LM used as judge. Build with `models_gpu.load_judge(spec)`."""

    aspect_aware = True

    def __init__(self, spec: JudgeSpec, loaded: LoadedModel) -> None:
        self.spec = spec
        self.loaded = loaded
        self.listwise = spec.backend == "llm_listwise"
        limit = loaded.max_positions
        self.max_length = min(spec.max_length, limit) if limit else spec.max_length
        self.use_chat = bool(spec.option("chat_format", True))
        self.tie_label = str(spec.option("tie_label", DEFAULT_TIE_LABEL))
        self.alpha = float(spec.option("choix_alpha", DEFAULT_ALPHA))
        # Exact speed-up for CPUs (see prefix_sharing.py); GPUs prefer padded batches.
        self.prefix_sharing = bool(spec.option("prefix_sharing", loaded.device.type == "cpu"))
        self._scorer = PrefixSharingScorer(loaded.model, loaded.device)

    # ----- public ---------------------------------------------------------------------------

    def template(self, text: str | None = None) -> PromptTemplate:
        """The template in force: `text`, else spec.options["template"], else the default."""
        text = (
            text
            or self.spec.option("template")
            or (DEFAULT_LISTWISE_TEMPLATE if self.listwise else DEFAULT_PAIRWISE_TEMPLATE)
        )
        required = LISTWISE_PLACEHOLDERS if self.listwise else PAIRWISE_PLACEHOLDERS
        return PromptTemplate.from_text(text, required=required)

    def judge(
        self,
        items: Iterable[Any],
        *,
        aspects: Sequence[str] = ("overall",),
        template: str | None = None,
        allow_ties: bool = True,
    ) -> list[JudgeResult]:
        """Judge a batch of items; one JudgeResult per item, in input order. Raises only for
        configuration errors (bad template, labels); item problems land in `result.error`."""
        tmpl = self.template(template)
        items = list(items)
        results = [JudgeResult(index=n) for n in range(len(items))]
        coerced: dict[int, JudgeItem] = {}
        queries: list[_Query] = []
        tie = self.tie_label if allow_ties and not self.listwise else None
        for n, raw in enumerate(items):
            try:
                item = coerce_item(raw)
                results[n].item_id = item.id
                built = [
                    q
                    for aspect in aspects
                    for q in self._queries(n, item, aspect, tmpl, tie, results[n])
                ]
            except Exception as exc:
                results[n].error = error_message(exc)
                continue
            coerced[n] = item
            queries.extend(built)
        if self.listwise:
            max_k = max((len(it.responses) for it in coerced.values()), default=2)
            labels = [chr(ord("A") + m) for m in range(max_k)]
        else:
            labels = [*PAIR_LABELS, *([tie] if tie else [])]
        token_sets = label_token_sets(self.loaded.tokenizer, labels)

        outputs = self.score_sequences([q.ids for q in queries], token_sets)
        by_item: dict[int, list[tuple[_Query, Any]]] = {}
        for query, output in zip(queries, outputs, strict=True):
            by_item.setdefault(query.item, []).append((query, output))
        for n, item in coerced.items():
            answered = by_item.get(n, [])
            results[n].n_tokens = sum(len(q.ids) for q, _ in answered)
            failure = next((out for _, out in answered if isinstance(out, Exception)), None)
            if failure is not None:
                results[n].error = error_message(failure)
                continue
            try:
                results[n].verdicts = self._verdicts(
                    item, aspects, answered, allow_ties=tie is not None
                )
            except Exception as exc:
                results[n].error = error_message(exc)
        return results

    # ----- prompts --------------------------------------------------------------------------

    def encode_prompt(self, user: str, prefix: str) -> list[int]:
        """Token ids of `user` as a chat turn, with the assistant's answer begun by `prefix`."""
        text, add_special = render_chat(self.loaded.tokenizer, user, prefix, use_chat=self.use_chat)
        return self.loaded.tokenizer(text, add_special_tokens=add_special)["input_ids"]

    def _queries(
        self,
        n: int,
        item: JudgeItem,
        aspect: str,
        tmpl: PromptTemplate,
        tie: str | None,
        result: JudgeResult,
    ) -> list[_Query]:
        k = len(item.responses)
        fields = {"prompt": format_conversation(item.prompt)}
        fields.update({f"r{i}": r.text for i, r in enumerate(item.responses)})
        if self.listwise:
            labels = [chr(ord("A") + m) for m in range(k)]
            # Cyclic rotations: each response appears once at each position.
            layouts = [tuple((r + m) % k for m in range(k)) for r in range(k)]

            def values(f: Mapping[str, str], shown: tuple[int, ...]) -> dict[str, str]:
                block = "\n\n".join(
                    f"[Response {labels[m]}]\n{f[f'r{i}']}" for m, i in enumerate(shown)
                )
                return {
                    "prompt": f["prompt"],
                    "responses": block,
                    "aspect": aspect,
                    "verdict_options": listwise_options(labels),
                }

            groups = [layouts]
        else:
            options = verdict_options(PAIR_LABELS, tie)

            def values(f: Mapping[str, str], shown: tuple[int, ...]) -> dict[str, str]:
                return {
                    "prompt": f["prompt"],
                    "response_a": f[f"r{shown[0]}"],
                    "response_b": f[f"r{shown[1]}"],
                    "aspect": aspect,
                    "verdict_options": options,
                }

            # Both orders of every unordered pair.
            groups = [[(i, j), (j, i)] for i in range(k) for j in range(i + 1, k)]

        queries: list[_Query] = []
        for layouts_group in groups:
            names = sorted({f"r{i}" for shown in layouts_group for i in shown})

            def count(f: Mapping[str, str], group: list = layouts_group) -> int:
                return max(len(self.encode_prompt(*tmpl.fill(values(f, shown)))) for shown in group)

            sub = {"prompt": fields["prompt"], **{name: fields[name] for name in names}}
            fitted, truncated = truncate_fields(
                self.loaded.tokenizer,
                sub,
                responses=names,
                prompt="prompt",
                count=count,
                max_length=self.max_length,
            )
            result.truncated = result.truncated or truncated
            for shown in layouts_group:
                queries.append(
                    _Query(
                        n,
                        aspect,
                        tuple(shown),
                        self.encode_prompt(*tmpl.fill(values(fitted, shown))),
                    )
                )
        return queries

    # ----- model ----------------------------------------------------------------------------

    def score_sequences(
        self, sequences: list[list[int]], token_sets: list[list[int]]
    ) -> list[tuple[list[float], float] | Exception]:
        """`label_probabilities` of every sequence (or the exception that failed it), computed
        with shared prefixes on CPU and in length-grouped padded batches otherwise."""
        if self.prefix_sharing:
            return self._scorer.run(
                sequences, lambda logits: _label_answer(_label_mass(logits, token_sets).tolist())
            )
        return run_grouped(
            [len(s) for s in sequences],
            self.spec.batch_size,
            lambda batch: self.label_probabilities([sequences[i] for i in batch], token_sets),
        )

    def label_probabilities(
        self, sequences: list[list[int]], token_sets: list[list[int]]
    ) -> list[tuple[list[float], float]]:
        """Per sequence: next-token probability of each label (summed over its spellings),
        renormalised over the labels, and the raw mass the labels got. One padded batch."""
        loaded = self.loaded
        ids, mask, positions = left_pad(sequences, loaded.tokenizer.pad_token_id, loaded.device)
        with torch.inference_mode():
            try:
                out = loaded.model(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=positions,
                    logits_to_keep=1,
                    use_cache=False,
                )
            except TypeError:  # older architectures without logits_to_keep
                out = loaded.model(
                    input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False
                )
            per_label = _label_mass(out.logits[:, -1, :], token_sets)
        return [_label_answer(row) for row in per_label.tolist()]

    # ----- verdicts -------------------------------------------------------------------------

    def _verdicts(
        self,
        item: JudgeItem,
        aspects: Sequence[str],
        answered: list[tuple[_Query, Any]],
        *,
        allow_ties: bool,
    ) -> dict[str, PairVerdict | RankingVerdict]:
        k = len(item.responses)
        verdicts: dict[str, PairVerdict | RankingVerdict] = {}
        for aspect in aspects:
            mine = {q.shown: out for q, out in answered if q.aspect == aspect}
            if self.listwise:
                verdicts[aspect] = self._listwise_verdict(aspect, k, mine)
                continue
            pair_probs: dict[tuple[int, int], tuple[float, float, float]] = {}
            disagreements = []
            pair_verdict = None
            for i in range(k):
                for j in range(i + 1, k):
                    ab, ba = (
                        _order_probs(mine[(i, j)], allow_ties),
                        _order_probs(mine[(j, i)], allow_ties),
                    )
                    pair_verdict = combine_orders(aspect, ab, ba, allow_ties=allow_ties)
                    pair_probs[(i, j)] = (pair_verdict.p_a, pair_verdict.p_b, pair_verdict.p_tie)
                    disagreements.append(pair_verdict.swap_disagreement)
            if k == 2 and pair_verdict is not None:
                verdicts[aspect] = pair_verdict
            else:
                verdicts[aspect] = ranking_from_pairs(
                    aspect,
                    k,
                    pair_probs,
                    swap_disagreement=sum(disagreements) / len(disagreements),
                    alpha=self.alpha,
                )
        return verdicts

    def _listwise_verdict(
        self, aspect: str, k: int, mine: Mapping[tuple[int, ...], Any]
    ) -> PairVerdict | RankingVerdict:
        per_response: list[list[float]] = [[] for _ in range(k)]
        for shown, (probs, _mass) in mine.items():
            shown_probs = probs[:k]
            total = sum(shown_probs) or 1.0
            for position, index in enumerate(shown):
                per_response[index].append(shown_probs[position] / total)
        if k == 2:
            # The two rotations of two responses are exactly the two presentation orders.
            # (per_response was filled in the order the rotations were queried: (0, 1), (1, 0).)
            order = list(mine)
            at = {shown: n for n, shown in enumerate(order)}
            ab = OrderProbs(
                per_response[0][at[(0, 1)]], per_response[1][at[(0, 1)]], 0.0, mine[(0, 1)][1]
            )
            ba = OrderProbs(
                per_response[1][at[(1, 0)]], per_response[0][at[(1, 0)]], 0.0, mine[(1, 0)][1]
            )
            return combine_orders(aspect, ab, ba, allow_ties=False)
        p_best = [sum(ps) / len(ps) for ps in per_response]
        disagreement = sum(max(ps) - min(ps) for ps in per_response) / k
        top = sorted(p_best, reverse=True)
        return RankingVerdict(
            aspect=aspect,
            ranks=ranks_from_scores(p_best),
            scores=[math.log(max(p, 1e-12)) for p in p_best],
            confidence=max(0.0, min(1.0, (top[0] - top[1]) * (1.0 - disagreement))),
            method="listwise_rotated",
            swap_disagreement=disagreement,
        )


def _label_mass(logits: torch.Tensor, token_sets: list[list[int]]) -> torch.Tensor:
    """Next-token probability of each label, summed over its spellings (last dim: labels)."""
    probs = logits.float().softmax(-1)
    return torch.stack([probs[..., tokens].sum(-1) for tokens in token_sets], dim=-1)


def _label_answer(row: list[float]) -> tuple[list[float], float]:
    """Label probabilities renormalised over the labels, and the raw mass they got."""
    mass = sum(row)
    return ([p / mass for p in row] if mass > 0 else [1 / len(row)] * len(row), mass)


def _order_probs(output: tuple[list[float], float], allow_ties: bool) -> OrderProbs:
    probs, mass = output
    return OrderProbs(
        p_first=probs[0],
        p_second=probs[1],
        p_tie=probs[2] if allow_ties else 0.0,
        verdict_mass=mass,
    )
