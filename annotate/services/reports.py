"""Quality reports and leaderboards computed on a worker and stored, so pages never compute them.

`quality_report` and `leaderboard_compute` read every judgment (or final label) of a project:
about 8 s and 2.5–6 s for 250,000 judgments on PostgreSQL, minutes at 1,000,000. A page or an
API call therefore shows the latest stored `ReportRun` for the parameters asked, and starting a
run (a button, a POST, or opening a page whose report is missing or stale) queues it on the
`default` queue, as final labels are (`labels.label_run_start`).

- **One active run per project and kind**, enforced by a partial unique constraint; a second
  start raises `ReportRunBusy`.
- **Stale**: a report is older than the project's data when a judgment was added after it (by
  id, so the check is one index range scan) or, when it reads final labels (the quality
  report's disputed items, a leaderboard of final labels), when final labels were computed since.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from annotate.models import FinalLabel, JobBusy, Judgment, LabelRun, Project, ReportRun
from annotate.services.labels import quality_report
from annotate.services.leaderboard import LABEL_SOURCES, leaderboard_compute

log = logging.getLogger(__name__)

KINDS = tuple(ReportRun.Kind.values)
MAX_ROUNDS = 2000  # as leaderboard_compute caps them
DEFAULT_ROUNDS = 100


class ReportError(ValueError):
    """A report cannot be computed as asked (unknown kind, label source, aspect …)."""


class ReportRunBusy(ReportError):
    """A report of this kind is already being computed for the project."""


def report_params(
    *,
    project: Project,
    kind: str,
    labels: str | None = None,
    aspect: str | None = None,
    rounds: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The checked, complete parameters of a report: what a stored row is looked up by."""
    if kind == ReportRun.Kind.QUALITY:
        return {"kind": kind, "labels": "", "aspect": "", "rounds": 0, "seed": 0}
    if kind != ReportRun.Kind.LEADERBOARD:
        raise ReportError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    labels = labels or "final"
    if labels not in LABEL_SOURCES:
        raise ReportError(f"labels: {labels!r} is not one of {', '.join(LABEL_SOURCES)}")
    aspect = aspect or (project.aspects[0] if project.aspects else "overall")
    if aspect not in project.aspects:
        raise ReportError(f"aspect: {aspect!r} is not one of {', '.join(project.aspects)}")
    rounds = DEFAULT_ROUNDS if rounds is None else int(rounds)
    if not 0 <= rounds <= MAX_ROUNDS:
        raise ReportError(f"rounds: {rounds} is not between 0 and {MAX_ROUNDS}")
    if seed < 0:
        raise ReportError(f"seed: {seed} is negative")
    return {"kind": kind, "labels": labels, "aspect": aspect, "rounds": rounds, "seed": seed}


def report_latest(*, project: Project, params: dict[str, Any]) -> ReportRun | None:
    """The newest succeeded report with exactly these parameters (see `report_params`)."""
    return (
        ReportRun.objects.filter(project=project, status=ReportRun.Status.SUCCEEDED, **params)
        .order_by("-computed_at", "-pk")
        .first()
    )


def report_run_latest(*, project: Project, kind: str) -> ReportRun | None:
    """The newest run of this kind, whatever its parameters and status: the progress partial."""
    return (
        ReportRun.objects.filter(project=project, kind=kind).order_by("-created_at", "-pk").first()
    )


def _judged_since(run: ReportRun) -> bool:
    """Whether the project has a judgment newer than the newest one the run read."""
    newer = Judgment.objects.filter(item__project_id=run.project_id)
    if run.last_judgment_id is not None:
        newer = newer.filter(pk__gt=run.last_judgment_id)
    return newer.exists()


def report_is_stale(report: ReportRun) -> bool:
    """Whether the project changed after the report was computed (see the module doc)."""
    if _judged_since(report):
        return True
    # The quality report's disputed items and a leaderboard of final labels read final labels.
    reads_final = report.kind == ReportRun.Kind.QUALITY or report.labels == "final"
    if reads_final and report.computed_at is not None:
        return LabelRun.objects.filter(
            project_id=report.project_id,
            status=LabelRun.Status.SUCCEEDED,
            finished_at__gt=report.computed_at,
        ).exists()
    return False


def _busy_message(run: ReportRun) -> str:
    what = "the quality report" if run.kind == ReportRun.Kind.QUALITY else "a leaderboard"
    return f"{what} is already being computed (run #{run.pk}, {run.status}); wait for it to finish"


def report_run_start(
    *, project: Project, params: dict[str, Any], user: Any = None, enqueue: bool = True
) -> ReportRun:
    """Record a run of the report `params` describes and queue it once the row is committed.

    Refuses (ReportRunBusy) while another run of the same kind is queued or running for the
    project: the unique constraint on the row settles two requests that check at once.
    """
    params = report_params(project=project, **params)
    scope = {"project": project, "kind": params.pop("kind")}
    try:
        run = ReportRun.start_exclusive(scope=scope, created_by=user, **params)
    except JobBusy as busy:  # report_run_one_active_per_project_kind
        raise ReportRunBusy(
            _busy_message(busy.active) if busy.active else "this report is already being computed"
        ) from None
    if enqueue:
        transaction.on_commit(lambda: _enqueue(run.pk))
    return run


def report_ensure(
    *, project: Project, params: dict[str, Any], user: Any = None
) -> ReportRun | None:
    """Start a run when opening a page finds no report, or a stale one; None when it does not.

    It does not start one while a run of that kind is active, nor after the last run of these
    parameters failed on the same data (opening the page again would only fail again: the page
    shows the error and a button instead).
    """
    params = report_params(project=project, **params)
    report = report_latest(project=project, params=params)
    if report is not None and not report_is_stale(report):
        return None
    last = (
        ReportRun.objects.filter(project=project, **params).order_by("-created_at", "-pk").first()
    )
    if last is not None and last.status == ReportRun.Status.FAILED and not _judged_since(last):
        return None
    if ReportRun.objects.filter(
        project=project, kind=params["kind"], status__in=ReportRun.ACTIVE
    ).exists():
        return None
    try:
        return report_run_start(project=project, params=params, user=user)
    except ReportRunBusy:  # another request started one a moment ago
        return None


def _enqueue(run_id: int) -> None:
    from annotate.tasks import compute_report

    compute_report.delay(run_id)


class _Progress:
    """Records a run's percent done, at most once per percent point (an UPDATE each)."""

    def __init__(self, run_id: int, total: int) -> None:
        self.run_id, self.total, self.percent = run_id, max(total, 1), 0

    def __call__(self, read: int) -> None:
        # 99 at most: the last step (kappas, bootstrap, writing the row) is still to come.
        percent = min(99, 100 * read // self.total)
        if percent > self.percent:
            self.percent = percent
            ReportRun.objects.filter(pk=self.run_id).update(progress=percent)


def _compute(run: ReportRun) -> tuple[dict, int]:
    """(payload, judgments or labels it read) of one run."""
    project = run.project
    if run.kind == ReportRun.Kind.QUALITY:
        total = Judgment.objects.filter(item__project=project).count()
        report = quality_report(project=project, progress=_Progress(run.pk, total))
        return report.as_dict(), report.human_judgments + report.ai_judgments
    if run.labels == "final":
        rows = FinalLabel.objects.filter(item__project=project, aspect=run.aspect)
    else:
        rows = Judgment.objects.filter(item__project=project, aspect=run.aspect, kind=run.labels)
    board = leaderboard_compute(
        project=project,
        labels=run.labels,
        aspect=run.aspect,
        rounds=run.rounds,
        seed=run.seed,
        progress=_Progress(run.pk, rows.count()),
    )
    return board.as_dict(), board.labels_used + board.labels_skipped


def report_run_execute(*, run_id: int) -> ReportRun | None:
    """Compute the run's report and store it on the row, or record why it failed.

    None (nothing done) when the row is gone or already finished. A row still "running" is run
    again: a redelivery after its worker was lost; computing a report only reads, so repeating
    it is safe.
    """
    run = ReportRun.claim(run_id, progress=0)
    if run is None:
        return None
    # Read before the report, so a judgment added while it runs makes it stale, not missing.
    computed_at = timezone.now()
    last_id = Judgment.objects.filter(item__project=run.project).aggregate(last=Max("pk"))["last"]
    try:
        payload, read = _compute(run)
    except Exception as exc:
        log.exception("report run %s (%s) failed", run_id, run.kind)
        ReportRun.mark_failed(run_id, exc)
        ReportRun.objects.filter(pk=run_id).update(last_judgment_id=last_id)
    else:
        ReportRun.objects.filter(pk=run_id).update(
            status=ReportRun.Status.SUCCEEDED,
            payload=payload,
            judgments=read,
            last_judgment_id=last_id,
            computed_at=computed_at,
            progress=100,
            error="",
            finished_at=timezone.now(),
        )
    run.refresh_from_db()
    return run
