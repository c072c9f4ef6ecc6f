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
