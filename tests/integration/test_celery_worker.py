"""A real `celery worker` process picks up work that the app enqueues, on each supported broker.

CI runs this on Redis (REQUIRE_SERVICES=1 makes a missing Redis fail the run); the embedded
filesystem broker, which the README's demo uses, is tested the same way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from tests.conftest import REPO, need_service

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


def _database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    user = s.get("USER") or "postgres"
    return f"postgres://{user}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


@pytest.fixture(params=["redis", "filesystem"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Point this process's Celery app at the broker, and yield what a worker needs to join it."""
    from config.celery import app

    if request.param == "redis":
        need_service("Redis", "127.0.0.1", 6379)
        url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
        options: dict[str, Any] = {"visibility_timeout": 3600}
        env = {"CELERY_BROKER_URL": url}
    else:
        url = "filesystem://"
        folder = tmp_path / "broker"
        for sub in ("in", "processed", "control"):
            (folder / sub).mkdir(parents=True)
        options = {
            "data_folder_in": str(folder / "in"),
            "data_folder_out": str(folder / "in"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
        }
        env = {"CELERY_BROKER_URL": url, "HYBRIDPREF_VAR_DIR": str(tmp_path)}
    saved = (app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_always_eager)
    app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_always_eager = (
        url,
        options,
        False,
    )
    _drop_connections(app)
    if request.param == "filesystem":
        # the worker reads its folders from settings, so give it the same var dir
        env["HYBRIDPREF_VAR_DIR"] = str(tmp_path)
    yield {"name": request.param, "env": env}
    app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_always_eager = saved
    _drop_connections(app)


def _drop_connections(app: Any) -> None:
    """Forget pooled connections and producers made for the previous broker."""
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def worker(broker: dict[str, Any], tmp_path: Path) -> Iterator[subprocess.Popen]:
    env = {
        **os.environ,
        **broker["env"],
        "DATABASE_URL": _database_url(),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        # Share the converted-model cache with the rest of the suite, wherever the var dir is.
        "HYBRIDPREF_MODEL_CACHE": str(settings.MODEL_CACHE_DIR),
    }
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            "default,gpu",
            "--concurrency",
            "1",
            "--pool",
            "prefork",
            "--loglevel",
            "INFO",
            "-n",
            f"test-{broker['name']}@%h",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _wait_for(predicate: Any, *, seconds: float, worker: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        if worker.poll() is not None:
            break
        time.sleep(0.3)
    pytest.fail(f"the worker did not finish in {seconds:.0f}s; its log:\n{log.read_text()[-4000:]}")


def test_a_real_worker_runs_an_uploaded_import(
    project: Any, owner: Any, worker: subprocess.Popen, tmp_path: Path
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from annotate.models import ImportBatch
    from annotate.services.imports import import_upload_accept

    lines = b"".join(
        b'{"id": "w%d", "prompt": "Say %d.", "responses": [{"text": "%d"}, {"text": "no"}]}\n'
        % (i, i, i)
        for i in range(25)
    )
    batch = import_upload_accept(
        project=project, upload=SimpleUploadedFile("items.jsonl", lines), options={}, user=owner
    )

    def finished() -> bool:
        batch.refresh_from_db()
        return batch.status in (ImportBatch.Status.SUCCEEDED, ImportBatch.Status.FAILED)

    _wait_for(finished, seconds=60, worker=worker, log=tmp_path / "worker.log")
    assert batch.status == ImportBatch.Status.SUCCEEDED, batch.message
    assert (batch.created, batch.skipped, batch.invalid) == (25, 0, 0)
    assert project.items.filter(external_id__startswith="w").count() == 25


def test_a_real_worker_computes_final_labels_for_a_run(
    project: Any, owner: Any, worker: subprocess.Popen, tmp_path: Path
) -> None:
    from annotate.models import FinalLabel, LabelRun
    from annotate.services.labels import label_run_start
    from tests.factories import label_every_item

    label_every_item(project, strength=1)
    run = label_run_start(project=project, user=owner)

    def finished() -> bool:
        run.refresh_from_db()
        return run.is_finished

    _wait_for(finished, seconds=60, worker=worker, log=tmp_path / "worker.log")
    assert run.status == LabelRun.Status.SUCCEEDED, run.error
    assert (
        run.summary["total"] == 5 and FinalLabel.objects.filter(item__project=project).count() == 5
    )


def test_a_real_worker_computes_reports_and_a_routing_preview(
    project: Any, owner: Any, worker: subprocess.Popen, tmp_path: Path
) -> None:
    from annotate.models import Judge, Judgment, ReportRun, RoutingRun
    from annotate.services.reports import report_run_start
    from annotate.services.routing import routing_run_start

    for name, flips in (("gpt", set()), ("pl", {0, 1})):
        judge = Judge.objects.create(name=name, backend=Judge.Backend.IMPORTED)
        for n, item in enumerate(project.items.order_by("pk")):
            Judgment.objects.create(
                item=item,
                kind="ai",
                source=name,
                task_type="pairwise",
                value={"strength": -1 if n in flips else 1},
                judge=judge,
                prompt_version="imported",
            )
    runs = [
        report_run_start(project=project, params={"kind": "quality"}, user=owner),
        report_run_start(
            project=project, params={"kind": "leaderboard", "labels": "ai"}, user=owner
        ),
    ]
    routed = routing_run_start(project=project, policy="uncertainty", budget=2, user=owner)

    def finished() -> bool:
        for run in (*runs, routed):
            run.refresh_from_db()
        return all(run.is_finished for run in (*runs, routed))

    _wait_for(finished, seconds=90, worker=worker, log=tmp_path / "worker.log")
    quality, board = runs
    assert quality.status == ReportRun.Status.SUCCEEDED, quality.error
    assert quality.judgments == 10
    assert board.status == ReportRun.Status.SUCCEEDED, board.error
    assert {m["model"] for m in board.payload["models"]} == {"model-0", "model-1"}
    assert routed.status == RoutingRun.Status.PREVIEW, routed.error
    humans = routed.decisions.filter(route="human").values_list("item__external_id", flat=True)
    assert set(humans) == {"0", "1"}  # the two items the judges disagree on


@pytest.mark.slow
def test_a_real_gpu_queue_worker_prelabels_items_with_the_bundled_judge(
    project: Any, worker: subprocess.Popen, tmp_path: Path
) -> None:
    """The README's main job: a judge run enqueued by the app, done by a worker process with
    the bundled SmolLM2 (on the CPU here), stored as AI judgments with both orders' probabilities."""
    from annotate.models import Judge, JudgeRun, Judgment
    from annotate.services import judging

    judge = Judge.objects.create(
        name="smollm2", max_length=512, items_per_task=2, aspect_mode="overall_only"
    )
    project.items.filter(external_id__in=["3", "4"]).delete()
    run = judging.judge_run_start(project=project, judge=judge)

    def finished() -> bool:
        run.refresh_from_db()
        return run.is_finished

    _wait_for(finished, seconds=300, worker=worker, log=tmp_path / "worker.log")
    assert run.status == JudgeRun.Status.SUCCEEDED, run.error
    assert (run.done, run.failed, run.batches_done) == (3, 0, 2)
    verdicts = Judgment.objects.filter(judge=judge, kind="ai")
    assert verdicts.count() == 3
    for j in verdicts:
        assert j.probabilities["a"] + j.probabilities["b"] + j.probabilities[
            "tie"
        ] == pytest.approx(1.0)
        assert set(j.raw) >= {"order_ab", "order_ba"}
