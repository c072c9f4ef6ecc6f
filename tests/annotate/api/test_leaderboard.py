from __future__ import annotations

from typing import Any

import pytest

from annotate.models import ReportRun
from annotate.services import reports as reports_service
from config.celery import app as celery_app
from tests.annotate.api.clients import token_client
from tests.factories import label_every_item

pytestmark = pytest.mark.django_db


@pytest.fixture
def rated(project: Any) -> Any:
    return label_every_item(project, strength=-1)


def start(client: Any, project: Any, capture: Any, body: dict) -> Any:
    """POST leaderboard/ and run the queued task right here (eager)."""
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        with capture(execute=True):
            return client.post(f"/api/projects/{project.slug}/leaderboard/", body, format="json")
    finally:
        celery_app.conf.task_always_eager = before


def test_it_returns_the_stored_ratings_with_intervals(
    owner: Any, rated: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client = token_client(owner)
    started = start(
        client, rated, django_capture_on_commit_callbacks, {"labels": "human", "rounds": 10}
    )
    assert started.status_code == 202
    run = started.json()
    assert (run["kind"], run["labels"], run["aspect"], run["rounds"]) == (
        "leaderboard",
        "human",
        "overall",
        10,
    )
    assert client.get(run["url"]).json()["status"] == "succeeded"
    body = client.get(f"/api/projects/{rated.slug}/leaderboard/?labels=human&rounds=10").json()
    assert body["labels_used"] == 5 and body["bootstrap_rounds"] == 10
    assert body["judgments"] == 5 and body["computed_at"] and body["run"] == run["id"]
    top = body["models"][0]
    assert top["model"] == "model-1" and top["rank"] == 1
    assert (
        top["bradley_terry"]["low"]
        <= top["bradley_terry"]["rating"]
        <= top["bradley_terry"]["high"]
    )
    assert set(top["openskill"]) == {"mu", "sigma", "ordinal"}


def test_other_parameters_are_not_computed_yet(owner: Any, rated: Any) -> None:
    run = reports_service.report_run_start(
        project=rated, params={"kind": "leaderboard", "labels": "human"}, enqueue=False
    )
    reports_service.report_run_execute(run_id=run.pk)
    client = token_client(owner)
    assert client.get(f"/api/projects/{rated.slug}/leaderboard/?labels=human").status_code == 200
    missing = client.get(f"/api/projects/{rated.slug}/leaderboard/?labels=human&rounds=5")
    assert missing.status_code == 404 and "not computed yet" in missing.json()["detail"]
    assert ReportRun.objects.count() == 1  # a GET starts nothing


def test_a_second_start_while_one_runs_is_a_409(owner: Any, rated: Any) -> None:
    first = reports_service.report_run_start(
        project=rated, params={"kind": "leaderboard"}, enqueue=False
    )
    response = token_client(owner).post(
        f"/api/projects/{rated.slug}/leaderboard/", {"labels": "ai"}, format="json"
    )
    assert response.status_code == 409 and f"run #{first.pk}" in response.json()["detail"]


def test_bad_parameters_are_a_400(owner: Any, rated: Any) -> None:
    client = token_client(owner)
    base = f"/api/projects/{rated.slug}/leaderboard/"
    assert client.get(f"{base}?labels=crowd").status_code == 400
    assert client.get(f"{base}?aspect=nope").status_code == 400
    assert client.get(f"{base}?rounds=-1").status_code == 400
    assert client.post(base, {"aspect": "nope"}, format="json").status_code == 400
    assert client.post(base, {"rounds": 5000}, format="json").status_code == 400
    assert not ReportRun.objects.exists()


@pytest.mark.parametrize("method", ["get", "post"])
def test_annotators_are_forbidden_and_outsiders_see_nothing(
    member: Any, outsider: Any, rated: Any, method: str
) -> None:
    url = f"/api/projects/{rated.slug}/leaderboard/"
    assert getattr(token_client(member), method)(url, {}, format="json").status_code == 403
    assert getattr(token_client(outsider), method)(url, {}, format="json").status_code == 404
    assert not ReportRun.objects.exists()
