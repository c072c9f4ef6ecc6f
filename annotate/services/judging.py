"""AI judge runs: start, record each batch's results, finish, cancel.

A run is split by the producer into batches of item ids (one Celery task each, queue `gpu`).
Progress lives on the JudgeRun row and is advanced with conditional UPDATEs, so concurrent
batches never lose a count and a redelivered batch writes nothing twice (the unique constraint on
item + judge + prompt version + aspect makes the Judgment inserts idempotent).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from annotate.models import Item, Judge, JudgeRun, Judgment, Project, Rubric

DEFAULT_PROMPT_VERSION = "default-v1"
TAGS_VERSION = "tags-v1"  # the version of models_gpu.tagging's prompts
MAX_RUN_ERRORS_SHOWN = 20


class JudgingError(Exception):
    """A run cannot start (an imported judge, nothing to judge, a bad rubric …)."""


def judge_spec(judge: Judge) -> Any:
    """The `models_gpu` description of a registered judge (kept free of Django there)."""
    from models_gpu.spec import JudgeSpec

    return JudgeSpec(
        backend=judge.backend,
        model=judge.model,
        weak_model=judge.weak_model,
        dtype=judge.dtype,
        device=judge.device,
        max_length=judge.max_length,
        batch_size=judge.batch_size,
        options=dict(judge.options or {}),
    )


def rubric_current(project: Project) -> Rubric | None:
    return project.rubrics.order_by("-version").first()


def prompt_version_for(project: Project) -> str:
    rubric = rubric_current(project)
    return rubric.label if rubric else DEFAULT_PROMPT_VERSION


def judge_aspects(project: Project, judge: Judge) -> list[str]:
    aspects = list(project.aspects) or ["overall"]
    return aspects if judge.aspect_mode == "per_aspect" else aspects[:1]


def rubric_update(*, project: Project, template: str, user: Any = None) -> Rubric:
    """Save a new version of the project's judge prompt (old versions stay, for provenance)."""
    from models_gpu.prompts import validate_template  # names a missing placeholder

    try:
        validate_template(template)
    except ValueError as exc:
        raise JudgingError(str(exc)) from None
    with transaction.atomic():
        # Serialises version numbers. NO KEY UPDATE: it must not block the foreign-key checks of
        # annotators' rows that point at the project (see annotate/services/queue.py).
        current = Project.objects.select_for_update(no_key=True).get(pk=project.pk)
        latest = current.rubrics.order_by("-version").values_list("version", flat=True).first() or 0
        return Rubric.objects.create(
            project=project, version=latest + 1, template=template, created_by=user
        )


def judge_run_start(
    *,
    project: Project,
    judge: Judge,
    user: Any = None,
    only_missing: bool = True,
    enqueue: bool = True,
    kind: str = "verdicts",
) -> JudgeRun:
    """Create a run over the project's items and enqueue its batches once the row is committed.

    `kind="tags"` asks the judge's model for the routing tags instead of verdicts.
    `enqueue=False` leaves the batches to the caller (`prelabel` runs them in its own process).
    """
    if judge.is_imported:
        raise JudgingError(f"{judge.name} holds imported labels; it cannot be run")
    if kind == "tags":
        if judge.backend not in (Judge.Backend.LLM_PAIRWISE, Judge.Backend.LLM_LISTWISE):
            raise JudgingError(
                f"{judge.name} is a {judge.get_backend_display()}: tagging needs a causal LM judge"
            )
        prompt_version = TAGS_VERSION
    elif kind == "verdicts":
        prompt_version = prompt_version_for(project)
    else:
        raise JudgingError(f"run kind {kind!r} is not verdicts or tags")
    item_ids = _items_to_judge(project, judge, prompt_version, only_missing=only_missing)
    if not item_ids:
        what = "tags" if kind == "tags" else f"{judge.name}'s verdict for {prompt_version}"
        raise JudgingError(f"every item already has {what}")
    batches = [
        item_ids[i : i + judge.items_per_task]
        for i in range(0, len(item_ids), judge.items_per_task)
    ]
    with transaction.atomic():
        project.judges.add(judge)
        run = JudgeRun.objects.create(
            project=project,
            judge=judge,
            kind=kind,
            prompt_version=prompt_version,
            total=len(item_ids),
            batches_total=len(batches),
            created_by=user,
        )
        if enqueue:
            transaction.on_commit(lambda: _enqueue(run.pk, batches))
    return run


def judge_run_batches(run: JudgeRun) -> list[list[int]]:
    """The batches a run still has to do (for running a run in-process, e.g. `prelabel`)."""
    item_ids = _items_to_judge(run.project, run.judge, run.prompt_version, only_missing=True)
    size = run.judge.items_per_task
    return [item_ids[i : i + size] for i in range(0, len(item_ids), size)]


def _items_to_judge(
    project: Project, judge: Judge, prompt_version: str, *, only_missing: bool
) -> list[int]:
    items = Item.objects.filter(project=project)
    if prompt_version == TAGS_VERSION:
        items = items.filter(tags={}) if only_missing else items
    elif only_missing:
        aspects = judge_aspects(project, judge)
        judged = Judgment.objects.filter(
            item=OuterRef("pk"), judge=judge, prompt_version=prompt_version, aspect=aspects[-1]
        )
        items = items.filter(~Exists(judged))
    return list(items.order_by("pk").values_list("pk", flat=True))


def _enqueue(run_id: int, batches: Sequence[Sequence[int]]) -> None:
    from models_gpu.tasks import judge_batch

    for batch in batches:
        judge_batch.delay(run_id, list(batch))


def judge_run_claim(*, run_id: int) -> JudgeRun | None:
    """The run, marked running, or None if it is gone or finished (a cancelled run's batches stop)."""
    JudgeRun.objects.filter(pk=run_id, status=JudgeRun.Status.QUEUED).update(
        status=JudgeRun.Status.RUNNING, started_at=timezone.now()
    )
    run = JudgeRun.objects.select_related("project", "judge").filter(pk=run_id).first()
    if run is None or run.is_finished:
        return None
    return run


def judge_items_payload(item_ids: Iterable[int]) -> list[dict[str, Any]]:
    """Items as plain dicts for `models_gpu` (no ORM objects cross into model code)."""
    rows = Item.objects.filter(pk__in=list(item_ids)).values("pk", "prompt", "responses")
    return [{"id": r["pk"], "prompt": r["prompt"], "responses": r["responses"]} for r in rows]


def judge_batch_record(*, run: JudgeRun, results: Sequence[Any]) -> tuple[int, int]:
    """Store one batch's results; advance the run; finish it after its last batch.

    `results` are `models_gpu.results.JudgeResult`s whose `item_id` is the Item pk. Returns
    (newly judged, failed) for this batch.
    """
    project = run.project
    now = timezone.now()
    judgments: list[Judgment] = []
    failed: list[tuple[int, str]] = []
    truncated: list[int] = []
    for result in results:
        if not result.ok:
            failed.append((result.item_id, result.error or "unknown error"))
            continue
        if result.truncated:
            truncated.append(result.item_id)
        for aspect, verdict in result.verdicts.items():
            data = verdict.to_json()
            judgments.append(
                Judgment(
                    item_id=result.item_id,
                    aspect=aspect,
                    kind=Judgment.Kind.AI,
                    source=run.judge.name,
                    task_type=project.task_type,
                    value=_value_for(project, verdict),
                    judge=run.judge,
                    judge_run=run,
                    prompt_version=run.prompt_version,
                    probabilities=_probabilities(data),
                    confidence=data.get("confidence"),
                    signals=_signals(data),
                    raw=data,
                    created_at=now,
                )
            )
    with transaction.atomic():
        # A redelivered batch (acks_late after a worker crash) must neither fail nor count twice:
        # the unique constraint drops the duplicate rows, and only new items advance progress.
        ok_ids = {j.item_id for j in judgments}
        already = set(
            Judgment.objects.filter(
                judge=run.judge, prompt_version=run.prompt_version, item_id__in=ok_ids
            ).values_list("item_id", flat=True)
        )
        Judgment.objects.bulk_create(judgments, ignore_conflicts=True, batch_size=500)
        new_done = len(ok_ids - already)
        if truncated or failed:
            _flag_items(run.judge.name, truncated, failed)
        if new_done or failed or not already:
            JudgeRun.objects.filter(pk=run.pk).update(
                done=F("done") + new_done,
                failed=F("failed") + len(failed),
                batches_done=F("batches_done") + 1,
            )
        if failed:
            _append_errors(run.pk, failed)
        JudgeRun.objects.filter(
            pk=run.pk, status=JudgeRun.Status.RUNNING, batches_done__gte=F("batches_total")
        ).update(status=JudgeRun.Status.SUCCEEDED, finished_at=timezone.now())
    return new_done, len(failed)


def tags_batch_record(*, run: JudgeRun, results: Sequence[Any]) -> tuple[int, int]:
    """Store one tagging batch's tags on the items; advance and finish the run like verdicts."""
    tagged = {r.item_id: {"tags": r.tags, "p": r.probabilities} for r in results if r.ok}
    failed = [(r.item_id, r.error or "unknown error") for r in results if not r.ok]
    with transaction.atomic():
        items = list(
            Item.objects.select_for_update(no_key=True)
            .filter(pk__in=tagged, tags={})
            .order_by("pk")  # one lock order for every writer of several items
        )
        for item in items:
            item.tags = {
                **tagged[item.pk]["tags"],
                "_p": tagged[item.pk]["p"],
                "_by": run.judge.name,
            }
        Item.objects.bulk_update(items, ["tags"], batch_size=500)
        if failed:
            _flag_items(run.judge.name, [], failed)
            _append_errors(run.pk, failed)
        JudgeRun.objects.filter(pk=run.pk).update(
            done=F("done") + len(items),
            failed=F("failed") + len(failed),
            batches_done=F("batches_done") + 1,
        )
        JudgeRun.objects.filter(
            pk=run.pk, status=JudgeRun.Status.RUNNING, batches_done__gte=F("batches_total")
        ).update(status=JudgeRun.Status.SUCCEEDED, finished_at=timezone.now())
    return len(items), len(failed)


def judge_run_fail(*, run_id: int, message: str) -> None:
    """End a run with a message the UI shows (bad model path, template, out of memory …)."""
    JudgeRun.objects.filter(pk=run_id).exclude(status__in=JudgeRun.FINISHED).update(
        status=JudgeRun.Status.FAILED, error=message[:5000], finished_at=timezone.now()
    )


def judge_run_cancel(*, run: JudgeRun) -> bool:
    """Cancel a run; batches not yet started see the status and do nothing."""
    return bool(
        JudgeRun.objects.filter(pk=run.pk)
        .exclude(status__in=JudgeRun.FINISHED)
        .update(status=JudgeRun.Status.CANCELLED, finished_at=timezone.now())
    )


def _value_for(project: Project, verdict: Any) -> dict:
    value = dict(verdict.value)
    if (
        project.task_type == "pairwise"
        and "strength" in value
        and value["strength"] == 0
        and not project.allow_ties
    ):
        value["strength"] = 1 if verdict.p_a >= verdict.p_b else -1
    if project.task_type == "kwise" and "ranks" in value:
        ranks = value["ranks"]
        value = {
            "best": ranks.index(min(ranks)),
            "worst": ranks.index(max(ranks)),
            "scores": value.get("scores"),
        }
    return value


def _probabilities(data: dict) -> dict | None:
    if data.get("kind") == "pairwise":
        return {"a": data["p_a"], "b": data["p_b"], "tie": data["p_tie"]}
    if data.get("pair_probs") is not None:
        return {"pairs": data["pair_probs"]}
    return None


def _signals(data: dict) -> dict:
    keys = ("margin", "swap_disagreement", "entropy", "confidence", "method")
    return {k: data[k] for k in keys if k in data}


def _flag_items(judge_name: str, truncated: list[int], failed: list[tuple[int, str]]) -> None:
    errors = dict(failed)
    locked = Item.objects.select_for_update(no_key=True).filter(pk__in=[*truncated, *errors])
    for item in locked.order_by("pk"):  # one lock order for every writer of several items
        flags = dict(item.flags or {})
        if item.pk in truncated:
            flags.setdefault("truncated", {})[judge_name] = True
        if item.pk in errors:
            flags.setdefault("judge_errors", {})[judge_name] = errors[item.pk][:500]
        item.flags = flags
        item.save(update_fields=["flags"])


def _append_errors(run_id: int, failed: list[tuple[int, str]]) -> None:
    run = JudgeRun.objects.select_for_update(no_key=True).get(pk=run_id)
    lines = run.error.splitlines() if run.error else []
    for item_id, message in failed:
        if len(lines) >= MAX_RUN_ERRORS_SHOWN:
            break
        lines.append(f"item {item_id}: {message}")
    run.error = "\n".join(lines)
    run.save(update_fields=["error"])
