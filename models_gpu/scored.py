"""Judges that score each response on its own: reward models and the density ratio (CDR).

Scoring responses one by one means no position bias (swap_disagreement is 0) and K responses
cost K forward passes, not K·(K−1). A score difference becomes a probability with
p(A≻B) = σ((r_A − r_B) / temperature) (temperature from spec.options, default 1; it can be
calibrated on human labels). K > 2: ranks by score, softmax of scores for the confidence.

These judges have no aspect input: they return their verdict under the first requested
aspect only (`aspect_aware = False`), rather than copying one score into aspects it never saw.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from models_gpu.batching import left_pad, right_pad, run_grouped
from models_gpu.loading import LoadedModel
from models_gpu.prompts import format_conversation, truncate_fields
from models_gpu.ranking import ranking_from_scores
from models_gpu.results import (
    JudgeItem,
    JudgeResult,
    PairVerdict,
    RankingVerdict,
    coerce_item,
    error_message,
    make_pair_verdict,
)
from models_gpu.spec import JudgeSpec


def _prefix_text(tokenizer: Any, prompt: str) -> tuple[str, bool]:
    """The text before the response: the chat template's user turn + assistant header when
    there is one (what the model saw in training), else the prompt and a blank line."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        return text, False
    return prompt + "\n\n", True


def _encode_pair(tokenizer: Any, prompt: str, response: str) -> tuple[list[int], int]:
    """Token ids of prefix + response, and how many of them are the response.

    Prefix and response are tokenised separately and concatenated, so the response span is
    exact (no merge across the boundary to guess around).
    """
    text, add_special = _prefix_text(tokenizer, prompt)
    prefix = tokenizer(text, add_special_tokens=add_special)["input_ids"]
    body = tokenizer.encode(response, add_special_tokens=False)
    return list(prefix) + list(body), len(body)


def verdict_from_scores(
    aspect: str, scores: Sequence[float], *, temperature: float, allow_ties: bool, method: str
) -> PairVerdict | RankingVerdict:
    if len(scores) == 2:
        diff = (scores[0] - scores[1]) / temperature
        p_a = 1.0 / (1.0 + math.exp(-max(-500.0, min(500.0, diff))))
        return make_pair_verdict(aspect, p_a, 1.0 - p_a, 0.0, allow_ties=allow_ties)
    return ranking_from_scores(aspect, scores, method=method, temperature=temperature)


class _ScoringJudge(ABC):
    """Judges that score each response on its own (no position bias): one score per response,
    turned into p(A≻B) = σ((r_A − r_B) / temperature), or a ranking for K > 2."""

    aspect_aware = False
    method = "score"

    def __init__(self, spec: JudgeSpec, models: Sequence[LoadedModel]) -> None:
        self.spec = spec
        self.models = list(models)
        self.temperature = float(spec.option("temperature", 1.0))
        limits = [m.max_positions for m in self.models if m.max_positions]
        self.max_length = min([spec.max_length, *limits])

    def judge(
        self,
        items: Iterable[Any],
        *,
        aspects: Sequence[str] = ("overall",),
        template: str | None = None,
        allow_ties: bool = True,
    ) -> list[JudgeResult]:
        """Same contract as LLMJudge.judge; `template` is ignored (no prompt to fill)."""
        items = list(items)
        aspect = aspects[0] if aspects else "overall"
        results = [JudgeResult(index=n) for n in range(len(items))]
        # (item, response) → one token sequence per model
        keys: list[tuple[int, int]] = []
        per_model: list[list[tuple[list[int], int]]] = [[] for _ in self.models]
        coerced: dict[int, JudgeItem] = {}
        for n, raw in enumerate(items):
            try:
                item = coerce_item(raw)
                results[n].item_id = item.id
                encoded = self._encode_item(item, results[n])
            except Exception as exc:
                results[n].error = error_message(exc)
                continue
            coerced[n] = item
            for k in range(len(item.responses)):
                keys.append((n, k))
                for m in range(len(self.models)):
                    per_model[m].append(encoded[m][k])
        scores_per_model = [
            run_grouped(
                [len(ids) for ids, _ in seqs],
                self.spec.batch_size,
                lambda batch, m=m, seqs=seqs: self._score(m, [seqs[i] for i in batch]),
            )
            for m, seqs in enumerate(per_model)
        ]
        scores: dict[int, dict[int, float]] = {}
        for position, (n, k) in enumerate(keys):
            outputs = [s[position] for s in scores_per_model]
            failure = next((o for o in outputs if isinstance(o, Exception)), None)
            if failure is not None:
                if results[n].error is None:
                    results[n].error = error_message(failure)
                continue
            scores.setdefault(n, {})[k] = self._combine(outputs)
            results[n].n_tokens += sum(len(seqs[position][0]) for seqs in per_model)
        for n, item in coerced.items():
            if results[n].error is not None:
                continue
            values = [scores[n][k] for k in range(len(item.responses))]
            results[n].verdicts = {
                aspect: verdict_from_scores(
                    aspect,
                    values,
                    temperature=self.temperature,
                    allow_ties=allow_ties,
                    method=self.method,
                )
            }
        return results

    def _encode_item(
        self, item: JudgeItem, result: JudgeResult
    ) -> list[list[tuple[list[int], int]]]:
        """Per model, per response: (ids, response length), truncated to max_length."""
        prompt = format_conversation(item.prompt)
        encoded = []

        def count(f: dict) -> int:
            return max(
                len(_encode_pair(m.tokenizer, f["prompt"], f["response"])[0]) for m in self.models
            )

        for response in item.responses:
            fitted, truncated = truncate_fields(
                self.models[0].tokenizer,
                {"prompt": prompt, "response": response.text},
                responses=["response"],
                prompt="prompt",
                count=count,
                max_length=self.max_length,
            )
            result.truncated = result.truncated or truncated
            encoded.append(
                [
                    _encode_pair(m.tokenizer, fitted["prompt"], fitted["response"])
                    for m in self.models
                ]
            )
        # transpose to [model][response]
        return [[encoded[k][m] for k in range(len(encoded))] for m in range(len(self.models))]

    @abstractmethod
    def _score(self, m: int, batch: list[tuple[list[int], int]]) -> list[float]:
        """Model `m`'s raw output for each encoded (prompt, response) of the batch."""

    @abstractmethod
    def _combine(self, outputs: list[float]) -> float:
        """One response's score from every model's output for it."""


class RewardModelJudge(_ScoringJudge):
    """A sequence classifier with one logit: the reward of (prompt, response)."""

    method = "reward"

    def _score(self, m: int, batch: list[tuple[list[int], int]]) -> list[float]:
        loaded = self.models[m]
        # Right padding: HF classifiers pool at the last non-pad token of each row.
        ids, mask = right_pad(
            [ids for ids, _ in batch], loaded.tokenizer.pad_token_id, loaded.device
        )
        with torch.inference_mode():
            logits = loaded.model(input_ids=ids, attention_mask=mask).logits
        return logits[:, 0].float().tolist()

    def _combine(self, outputs: list[float]) -> float:
        return outputs[0]


class DensityRatioJudge(_ScoringJudge):
    """CDR: r(y|x) = Σ_t [log π_strong(y_t | x, y<t) − log π_weak(y_t | x, y<t)].

    Both models score the same text, each with its own tokenizer (a sequence's log-probability
    does not depend on how it is cut into tokens, so differing vocabularies are fine). With
    options["length_normalize"] the sum becomes a mean over the strong model's tokens.
    """

    method = "density_ratio"

    def __init__(self, spec: JudgeSpec, models: Sequence[LoadedModel]) -> None:
        super().__init__(spec, models)
        self.length_normalize = bool(spec.option("length_normalize", False))

    def _score(self, m: int, batch: list[tuple[list[int], int]]) -> list[tuple[float, int]]:  # type: ignore[override]
        loaded = self.models[m]
        # Left padding puts every response at the end of its row, so only the last
        # (longest response + 1) positions' logits are needed: no B×T×V tensor.
        ids, mask, positions = left_pad(
            [ids for ids, _ in batch], loaded.tokenizer.pad_token_id, loaded.device
        )
        keep = max(n for _, n in batch) + 1
        with torch.inference_mode():
            try:
                out = loaded.model(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=positions,
                    logits_to_keep=keep,
                    use_cache=False,
                )
            except TypeError:
                out = loaded.model(
                    input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False
                )
            logits = out.logits[:, -keep:, :].float()
            answers = []
            for row, (_, n) in enumerate(batch):
                if n == 0:
                    answers.append((0.0, 0))
                    continue
                logp = logits[row, -n - 1 : -1].log_softmax(-1)
                targets = ids[row, -n:]
                answers.append((float(logp.gather(-1, targets[:, None]).sum()), n))
        return answers

    def _combine(self, outputs: list[tuple[float, int]]) -> float:  # type: ignore[override]
        (strong, n_strong), (weak, _) = outputs
        ratio = strong - weak
        return ratio / max(1, n_strong) if self.length_normalize else ratio
