"""The Celery app. Two queues: `default` for bookkeeping, `gpu` for anything that runs a model."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("hybridpref")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_default_queue="default",
    # Model tasks go to their own worker (`-Q gpu`, concurrency 1) so a model in memory never
    # blocks imports or exports.
    task_routes={"models_gpu.tasks.*": {"queue": "gpu"}},
    # A judge batch is long and idempotent: acknowledge after it finishes, take one at a time,
    # so a crashed worker's batch is redelivered rather than lost.
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_reject_on_worker_lost=True,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)
app.autodiscover_tasks(["annotate", "models_gpu"])
