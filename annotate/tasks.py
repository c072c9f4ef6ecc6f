"""Celery tasks of the default queue. Each takes ids, claims its row, and calls a service."""

from __future__ import annotations

from celery import shared_task

from annotate.models import ImportBatch
from annotate.services.imports import import_batch_run


@shared_task(name="annotate.tasks.import_file")
def import_file(batch_id: int) -> None:
    """Import an uploaded file. Safe to deliver twice: only the delivery that claims the row runs."""
    claimed = ImportBatch.objects.filter(pk=batch_id, status=ImportBatch.Status.QUEUED).update(
        status=ImportBatch.Status.RUNNING
    )
    if not claimed:
        return
    import_batch_run(
        batch=ImportBatch.objects.select_related("project", "created_by").get(pk=batch_id)
    )


@shared_task(name="annotate.tasks.export_dataset")
def export_dataset(export_id: int) -> None:
    """Write one export's files. Only the delivery that claims the queued row runs; its outcome
    (rows, files, error) is recorded on the Export row, not in the result backend."""
    from annotate.services.exports import export_claim, export_run

    export = export_claim(export_id=export_id)
    if export is None:
        return
    export_run(export=export)


@shared_task(name="annotate.tasks.compute_final_labels")
def compute_final_labels(run_id: int) -> None:
    """Compute a project's final labels for one LabelRun. Its outcome (summary or error) is
    recorded on the row; a row that is gone or already finished is left alone. No automatic
    retry: a failure is a fact about the data, shown to the user, not a transient error."""
    from annotate.services.labels import label_run_execute

    label_run_execute(run_id=run_id)


@shared_task(name="annotate.tasks.compute_report")
def compute_report(run_id: int) -> None:
    """Compute one ReportRun (a quality report or a leaderboard) and store it on the row; a row
    that is gone or already finished is left alone. No automatic retry, as for final labels: a
    failure is recorded on the row and shown, and the page offers to compute again."""
    from annotate.services.reports import report_run_execute

    report_run_execute(run_id=run_id)


@shared_task(name="annotate.tasks.compute_routing_preview")
def compute_routing_preview(run_id: int) -> None:
    """Compute one RoutingRun's preview (scores, decisions, curve) and store it on the row; a
    row that is gone or already finished is left alone. No automatic retry: a failure is
    recorded on the row and shown, and the page offers to preview again."""
    from annotate.services.routing import routing_run_execute

    routing_run_execute(run_id=run_id)
