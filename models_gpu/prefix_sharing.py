"""Score many prompts on a causal LM while computing every shared token prefix only once.

Why: on a CPU the cost of a judge is the forward pass over each prompt's tokens, and judge
prompts repeat a lot of tokens — the chat header and rubric instructions (the same in every
prompt), the user request (the same in both presentation orders of an item, and in every pair
of a K-response item or of items that share a prompt), and even the first response of
an order. Computing the key/value cache of a shared prefix once and continuing from it gives
the same next-token distribution (up to float rounding) for much less work.

How: sort the token sequences lexicographically; then the longest prefix a sequence shares
with *any* earlier one is the prefix it shares with the one just before it, so a single
KV cache, cut back to that common length and extended with the rest of the sequence, visits
the token trie of all prompts once (work = number of trie nodes). One sequence per forward
pass: on a CPU a ~400-token sequence already fills the matrix units, and without padding
there is no masked-out work. On a GPU the padded batches of `batching.run_grouped` are
faster, so `LLMJudge` uses this only on CPU unless the judge's options say otherwise.

Between calls the scorer keeps the cache of the prefix that all sequences of the last call
shared (in practice the template header), so a worker judging batch after batch computes
that header once per process.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch

from models_gpu.batching import is_oom
from models_gpu.spec import JudgeOOMError

log = logging.getLogger(__name__)

T = TypeVar("T")


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def trie_size(sequences: Sequence[Sequence[int]]) -> int:
    """Tokens a prefix-sharing pass computes for `sequences` (ignoring any kept cache)."""
    ordered = sorted(list(s) for s in sequences)
    total, previous = 0, None
    for seq in ordered:
        shared = 0 if previous is None else min(common_prefix_length(seq, previous), len(seq) - 1)
        total += len(seq) - shared
        previous = seq
    return total


class PrefixSharingScorer:
    """Next-token logits of token sequences, one sequence per forward pass, reusing KV caches.

    Not thread-safe (it keeps a cache between calls); a Celery worker process runs one task at
    a time, and each process has its own judge.
    """

    def __init__(self, model: Any, device: torch.device) -> None:
        self.model = model
        self.device = device
        self._ids: list[int] = []  # the tokens whose keys/values `_cache` holds
        self._cache: Any = None
        self._cache_keyword = _cache_argument(model)
        # Tokens actually run through the model since creation (for benchmarks).
        self.computed_tokens = 0

    def reset(self) -> None:
        self._ids, self._cache = [], None

    def run(
        self, sequences: Sequence[Sequence[int]], score: Callable[[torch.Tensor], T]
    ) -> list[T | Exception]:
        """`score(logits)` of each sequence's last position (a 1-D tensor over the vocabulary),
        in input order. A sequence that fails gets its exception instead (JudgeOOMError for
        out of memory); the others go on."""
        results: list[T | Exception | None] = [None] * len(sequences)
        order = sorted(range(len(sequences)), key=lambda i: list(sequences[i]))
        with torch.inference_mode():
            for index in order:
                seq = list(sequences[index])
                if not seq:
                    results[index] = ValueError("empty token sequence")
                    continue
                try:
                    results[index] = score(self._last_logits(seq))
                except Exception as exc:
                    # A failed forward may have left a half-updated cache behind.
                    self.reset()
                    if is_oom(exc):
                        if torch.cuda.is_available():
                            torch.cuda.empty_cache()
                        exc = JudgeOOMError(
                            f"out of memory on one sequence of {len(seq)} tokens; "
                            "lower max_length or use a smaller model"
                        )
                    else:
                        log.exception("judge forward pass failed for one sequence")
                    results[index] = exc
        if order:
            first, last = (list(sequences[order[0]]), list(sequences[order[-1]]))
            # Keep only what every sequence of this call shared (sorted order: the first and
            # the last share the least): the template header, small and reused next call.
            self._keep(common_prefix_length(first, last))
        return results  # type: ignore[return-value]

    def _keep(self, length: int) -> None:
        length = min(length, len(self._ids))
        if self._cache is None or length == 0:
            self.reset()
            return
        if length < len(self._ids):
            # crop() takes a negative count of tokens to drop in every transformers version
            # we support (a positive value meant "new length" in older ones, an error in newer).
            self._cache.crop(length - len(self._ids))
            self._ids = self._ids[:length]

    def _last_logits(self, seq: list[int]) -> torch.Tensor:
        from transformers import DynamicCache

        # At least the last token is always run: its logits are what we read.
        reuse = min(common_prefix_length(seq, self._ids), len(seq) - 1)
        self._keep(reuse)
        if self._cache is None:
            # Without a config every layer is a plain full-length layer, which can be cut
            # back anywhere (a sliding-window layer cannot, once it is full).
            self._cache = DynamicCache()
            reuse = 0
        rest = seq[reuse:]
        input_ids = torch.tensor([rest], dtype=torch.long, device=self.device)
        positions = torch.arange(reuse, len(seq), device=self.device).unsqueeze(0)
        kwargs = {
            "input_ids": input_ids,
            "position_ids": positions,
            self._cache_keyword: self._cache,
            "use_cache": True,
        }
        try:
            out = self.model(**kwargs, logits_to_keep=1)
        except TypeError:  # older architectures without logits_to_keep
            out = self.model(**kwargs)
        self.computed_tokens += len(rest)
        cache = getattr(out, "cache", None)
        self._cache = cache if cache is not None else out.past_key_values
        self._ids = seq
        return out.logits[0, -1]


def _cache_argument(model: Any) -> str:
    """The keyword a model's forward takes its KV cache by: `cache` in transformers ≥ 5.2x
    (`past_key_values` there is deprecated, with a warning on every call), `past_key_values`
    before."""
    parameters = inspect.signature(type(model).forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"
