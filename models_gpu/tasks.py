"""Celery tasks of the `gpu` queue: thin adapters from a message to the judging service.

The model is loaded lazily, once per worker process, by a cached getter (never at import and
never in the parent process, so CUDA is only touched in the child that uses it).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.db import OperationalError, connection

from annotate.services import judging

log = logging.getLogger(__name__)

# Errors worth a retry: the database or broker blinked. Anything else is a real failure that
# would fail again, so it is recorded instead of retried.
TRANSIENT_ERRORS = (OperationalError, ConnectionError, TimeoutError)


def run_batch(run_id: int, item_ids: list[int]) -> tuple[int, int] | None:
    """Judge one batch of a run; returns (done, failed), or None when the run is over or broken."""
    from models_gpu.spec import JudgeError

    run = judging.judge_run_claim(run_id=run_id)
    if run is None:
        return None  # cancelled, finished, or deleted: nothing to do
    project = run.project
    items = judging.judge_items_payload(item_ids)
    try:
        from models_gpu import load_judge  # cached per worker process; torch loads on first use

        judge = load_judge(judging.judge_spec(run.judge))
        if run.kind == "tags":
            from models_gpu.tagging import tag_items

            return judging.tags_batch_record(run=run, results=tag_items(judge, items))
        rubric = judging.rubric_current(project)
        results = judge.judge(
            items,
            aspects=judging.judge_aspects(project, run.judge),
            # A project rubric is a pairwise template; a listwise judge keeps its own.
            template=rubric.template if rubric and run.judge.backend == "llm_pairwise" else None,
            allow_ties=project.allow_ties,
        )
    except JudgeError as exc:
        log.warning("judge run %s failed: %s", run_id, exc)
        judging.judge_run_fail(run_id=run_id, message=str(exc))
        return None
    return judging.judge_batch_record(run=run, results=results)


@shared_task(
    name="models_gpu.tasks.judge_batch",
    bind=True,
    acks_late=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=True,
    max_retries=5,
)
def judge_batch(self: Any, run_id: int, item_ids: list[int]) -> None:
    """Judge a batch of items for a run. Idempotent: safe to redeliver after a worker crash."""
    try:
        run_batch(run_id, item_ids)
    except TRANSIENT_ERRORS:
        connection.close()  # the next try opens a fresh connection
        raise
    except Exception as exc:  # an unexpected bug: end the run with its message, keep the worker up
        log.exception("judge batch of run %s crashed", run_id)
        judging.judge_run_fail(run_id=run_id, message=f"{type(exc).__name__}: {exc}")
