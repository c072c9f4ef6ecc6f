from __future__ import annotations

from typing import Any

import pytest

from annotate.models import Judgment, ReportRun
from annotate.services import reports
from annotate.services.labels import label_run_execute, label_run_start, quality_report
from annotate.services.leaderboard import leaderboard_compute
from config.celery import app as celery_app
from tests.factories import label_every_item

pytestmark = pytest.mark.django_db

QUALITY = {"kind": "quality"}


@pytest.fixture
def judged(project: Any) -> Any:
    label_every_item(project, strength=2)
    for item in project.items.all():
        Judgment.objects.create(
            item=item,
            kind="human",
            source="y",
            external_annotator="y",
            task_type="pairwise",
            value={"strength": 1 if item.external_id != "0" else -2},
        )
    return project


def board(project: Any, **params: Any) -> dict:
    return {"kind": "leaderboard", **params}


def execute(run: ReportRun) -> ReportRun:
    done = reports.report_run_execute(run_id=run.pk)
    assert done is not None
    return done


def test_a_quality_run_stores_the_report_and_what_it_covered(judged: Any) -> None:
    run = execute(reports.report_run_start(project=judged, params=QUALITY, enqueue=False))
    assert run.status == "succeeded" and run.progress == 100 and run.error == ""
    assert run.payload == quality_report(project=judged).as_dict()
    assert run.judgments == 10 and run.computed_at is not None
    assert run.last_judgment_id == Judgment.objects.order_by("-pk").first().pk
    assert (
        reports.report_latest(
            project=judged, params=reports.report_params(project=judged, kind="quality")
        )
        == run
    )


def test_a_leaderboard_run_stores_the_ratings_of_its_parameters(judged: Any) -> None:
    params = board(judged, labels="human", rounds=10, seed=3)
    run = execute(reports.report_run_start(project=judged, params=params, enqueue=False))
    expected = leaderboard_compute(
        project=judged, labels="human", aspect="overall", rounds=10, seed=3
    )
    payload = dict(run.payload)
    expected_dict = expected.as_dict()
    payload.pop("seconds"), expected_dict.pop("seconds")
    assert payload == expected_dict
    assert (run.labels, run.aspect, run.rounds, run.seed) == ("human", "overall", 10, 3)
    assert run.judgments == 10 and payload["models"][0]["model"] == "model-0"
    # Another selection is another report.
    assert (
        reports.report_latest(
            project=judged,
            params=reports.report_params(project=judged, kind="leaderboard", labels="ai"),
        )
        is None
    )


def test_the_task_runs_the_report_on_the_worker(
    judged: Any, django_capture_on_commit_callbacks: Any
) -> None:
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            run = reports.report_run_start(project=judged, params=QUALITY)
    finally:
        celery_app.conf.task_always_eager = before
    run.refresh_from_db()
    assert run.status == "succeeded" and run.payload["human_judgments"] == 10


def test_a_failure_is_recorded_on_the_run_with_its_message(judged: Any, monkeypatch: Any) -> None:
    def boom(**kwargs: Any) -> Any:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(reports, "quality_report", boom)
    run = execute(reports.report_run_start(project=judged, params=QUALITY, enqueue=False))
    assert run.status == "failed" and run.error == "RuntimeError: out of memory"
    assert run.finished_at is not None and run.payload == {}


def test_one_active_run_per_project_and_kind(judged: Any, make_project: Any) -> None:
    first = reports.report_run_start(project=judged, params=QUALITY, enqueue=False)
    with pytest.raises(reports.ReportRunBusy, match=f"run #{first.pk}"):
        reports.report_run_start(project=judged, params=QUALITY, enqueue=False)
    # Another kind, or another project, is not blocked.
    reports.report_run_start(project=judged, params=board(judged), enqueue=False)
    reports.report_run_start(project=make_project("other"), params=QUALITY, enqueue=False)
    execute(first)
    reports.report_run_start(project=judged, params=QUALITY, enqueue=False)


def test_a_run_lost_by_its_worker_does_not_block_the_next(judged: Any, settings: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    lost = reports.report_run_start(project=judged, params=QUALITY, enqueue=False)
    ReportRun.objects.filter(pk=lost.pk).update(
        status="running",
        started_at=timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 61),
    )
    reports.report_run_start(project=judged, params=QUALITY, enqueue=False)
    lost.refresh_from_db()
    assert lost.status == "failed" and "worker was lost" in lost.error


def test_a_finished_run_is_not_run_again(judged: Any) -> None:
    run = execute(reports.report_run_start(project=judged, params=QUALITY, enqueue=False))
    assert reports.report_run_execute(run_id=run.pk) is None
    assert reports.report_run_execute(run_id=999999) is None


@pytest.mark.parametrize(
    "params, message",
    [
        ({"kind": "vibes"}, "kind"),
        ({"kind": "leaderboard", "labels": "crowd"}, "labels"),
        ({"kind": "leaderboard", "aspect": "nope"}, "aspect"),
        ({"kind": "leaderboard", "rounds": 5000}, "rounds"),
    ],
)
def test_bad_parameters_are_refused(judged: Any, params: dict, message: str) -> None:
    with pytest.raises(reports.ReportError, match=message):
        reports.report_run_start(project=judged, params=params, enqueue=False)
    assert not ReportRun.objects.exists()


def test_a_report_is_stale_after_a_new_judgment(judged: Any) -> None:
    run = execute(
        reports.report_run_start(
            project=judged, params=board(judged, labels="human"), enqueue=False
        )
    )
    assert not reports.report_is_stale(run)
    Judgment.objects.create(
        item=judged.items.first(),
        kind="human",
        source="z",
        external_annotator="z",
        task_type="pairwise",
        value={"strength": 0},
    )
    assert reports.report_is_stale(run)


def test_a_final_labels_report_is_stale_after_final_labels_are_computed(judged: Any) -> None:
    run = execute(reports.report_run_start(project=judged, params=QUALITY, enqueue=False))
    assert not reports.report_is_stale(run)
    label_run_execute(run_id=label_run_start(project=judged, enqueue=False).pk)
    assert reports.report_is_stale(run)


def test_ensure_starts_a_run_only_when_needed(judged: Any) -> None:
    params = reports.report_params(project=judged, kind="quality")
    first = reports.report_ensure(project=judged, params=params)
    assert first is not None and first.status == "queued"
    assert reports.report_ensure(project=judged, params=params) is None  # one is active
    execute(first)
    assert reports.report_ensure(project=judged, params=params) is None  # fresh
    Judgment.objects.create(
        item=judged.items.first(),
        kind="human",
        source="z",
        external_annotator="z",
        task_type="pairwise",
        value={"strength": 0},
    )
    assert reports.report_ensure(project=judged, params=params) is not None  # stale


def test_ensure_does_not_repeat_a_failure_on_the_same_data(judged: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(reports, "quality_report", lambda **kw: 1 / 0)
    params = reports.report_params(project=judged, kind="quality")
    execute(reports.report_ensure(project=judged, params=params))
    assert reports.report_ensure(project=judged, params=params) is None


def test_progress_is_recorded_once_per_percent_point(
    judged: Any, django_assert_num_queries: Any
) -> None:
    run = reports.report_run_start(project=judged, params=QUALITY, enqueue=False)
    progress = reports._Progress(run.pk, total=200)
    with django_assert_num_queries(2):
        progress(1)  # 0 %: nothing to record
        progress(80)
        progress(81)  # still 40 %
        progress(200)  # 99 % at most until the report is stored
    run.refresh_from_db()
    assert run.progress == 99
