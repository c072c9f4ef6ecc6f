"""Run token sequences through a model in length-grouped batches, surviving OOM.

Why group by length: a batch costs as much as its longest sequence times its size, so
sorting sequences by length before cutting batches keeps padding (wasted compute) small.
Why split on OOM: one long batch must not sink a whole Celery task; halving finds the largest
batch that fits, and a single sequence that still does not fit fails alone with a clear message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

from models_gpu.spec import JudgeOOMError

log = logging.getLogger(__name__)

T = TypeVar("T")


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def run_grouped(
    lengths: Sequence[int],
    batch_size: int,
    forward: Callable[[list[int]], list[T]],
) -> list[T | Exception]:
    """Call `forward(indices)` on batches of at most `batch_size` indices of similar length.

    `forward` returns one result per index, in the order given. The answer has one entry
    per input index: its result, or the exception that made it fail (JudgeOOMError when even
    a batch of one ran out of memory). Exceptions other than OOM fail only their batch.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    results: list[T | Exception | None] = [None] * len(lengths)
    for start in range(0, len(order), batch_size):
        _run_splitting(order[start : start + batch_size], lengths, forward, results)
    return results  # type: ignore[return-value]


def _run_splitting(
    batch: list[int],
    lengths: Sequence[int],
    forward: Callable[[list[int]], list[T]],
    results: list[T | Exception | None],
) -> None:
    try:
        outputs = forward(batch)
    except Exception as exc:
        if not is_oom(exc):
            log.exception("judge forward pass failed for a batch of %d", len(batch))
            for index in batch:
                results[index] = exc
            return
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if len(batch) == 1:
            results[batch[0]] = JudgeOOMError(
                f"out of memory on one sequence of {lengths[batch[0]]} tokens; "
                "lower max_length or batch_size, or use a smaller model"
            )
            return
        log.warning("out of memory on a batch of %d; retrying in halves", len(batch))
        half = len(batch) // 2
        _run_splitting(batch[:half], lengths, forward, results)
        _run_splitting(batch[half:], lengths, forward, results)
        return
    for index, output in zip(batch, outputs, strict=True):
        results[index] = output


def left_pad(
    sequences: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """input_ids, attention_mask and position_ids for left-padded sequences.

    Left padding puts every sequence's last real token at position -1, where the verdict is
    read. Position ids count only real tokens, so a padded row sees exactly the positions it
    would see alone (this is what makes batched and one-at-a-time results agree).
    """
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, width - len(seq) :] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[row, width - len(seq) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), positions.to(device)


def right_pad(
    sequences: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids and attention_mask for right-padded sequences (log-prob scoring, classifiers)."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids.to(device), mask.to(device)
