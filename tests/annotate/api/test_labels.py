from __future__ import annotations

from typing import Any

import pytest

from annotate.models import FinalLabel, Judgment, LabelRun, ReportRun
from annotate.services import labels as labels_service
from annotate.services import reports as reports_service
from config.celery import app as celery_app
from tests.annotate.api.clients import token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged(project: Any) -> Any:
    for item in project.items.all():
        for who, s in (("x", 2), ("y", 2 if item.external_id != "0" else -2)):
            Judgment.objects.create(
                item=item,
                kind="human",
                source=who,
                external_annotator=who,
                task_type="pairwise",
                value={"strength": s},
            )
    return project


@pytest.fixture
def eager() -> Any:
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = before


def compute(client: Any, project: Any, capture: Any, body: dict | None = None) -> Any:
    """POST labels/compute/ and run what it queued after commit (eager: the task runs here)."""
    with capture(execute=True):
        return client.post(
            f"/api/projects/{project.slug}/labels/compute/", body or {}, format="json"
        )


def test_compute_answers_202_with_the_run_and_the_worker_writes_the_labels(
    owner: Any, judged: Any, eager: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client = token_client(owner)
    response = compute(client, judged, django_capture_on_commit_callbacks, {"method": "majority"})
    assert response.status_code == 202
    body = response.json()
    run = LabelRun.objects.get()
    assert body["id"] == run.pk and body["status"] == "queued" and body["summary"] is None
    assert body["url"] == f"http://testserver/api/projects/{judged.slug}/labels/runs/{run.pk}/"
    assert FinalLabel.objects.count() == 5
    detail = client.get(body["url"])
    assert detail.status_code == 200
    assert detail.json()["status"] == "succeeded" and detail.json()["method"] == "majority"
    summary = detail.json()["summary"]
    assert summary["total"] == 5 and summary["human"] == 5 and summary["ai"] == 0


def test_compute_does_not_compute_inside_the_request(
    owner: Any, judged: Any, monkeypatch: Any, django_capture_on_commit_callbacks: Any
) -> None:
    queued: list[int] = []
    monkeypatch.setattr(labels_service, "_enqueue", queued.append)
    response = compute(token_client(owner), judged, django_capture_on_commit_callbacks)
    assert response.status_code == 202 and queued == [response.json()["id"]]
    assert not FinalLabel.objects.exists()


def test_a_second_compute_while_one_runs_is_a_409(owner: Any, judged: Any) -> None:
    first = labels_service.label_run_start(project=judged, enqueue=False)
    response = token_client(owner).post(
        f"/api/projects/{judged.slug}/labels/compute/", {}, format="json"
    )
    assert response.status_code == 409
    assert f"run #{first.pk}" in response.json()["detail"]
    assert LabelRun.objects.count() == 1


def test_a_failed_run_shows_its_error(owner: Any, judged: Any, monkeypatch: Any) -> None:
    def boom(**kwargs: Any) -> Any:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(labels_service, "final_labels_compute", boom)
    run = labels_service.label_run_start(project=judged, enqueue=False)
    labels_service.label_run_execute(run_id=run.pk)
    body = token_client(owner).get(f"/api/projects/{judged.slug}/labels/runs/{run.pk}/").json()
    assert body["status"] == "failed" and body["error"] == "RuntimeError: out of memory"
    assert body["summary"] is None


def test_a_run_of_another_project_is_a_404(owner: Any, judged: Any, make_project: Any) -> None:
    other = labels_service.label_run_start(project=make_project("other"), enqueue=False)
    client = token_client(owner)
    assert client.get(f"/api/projects/{judged.slug}/labels/runs/{other.pk}/").status_code == 404
    assert client.get(f"/api/projects/{judged.slug}/labels/runs/999999/").status_code == 404


def test_the_run_status_forbids_annotators_and_hides_from_outsiders(
    member: Any, outsider: Any, set_role: Any, judged: Any
) -> None:
    run = labels_service.label_run_start(project=judged, enqueue=False)
    url = f"/api/projects/{judged.slug}/labels/runs/{run.pk}/"
    assert token_client(member).get(url).status_code == 403
    assert token_client(outsider).get(url).status_code == 404
    set_role(judged, member, "researcher")
    assert token_client(member).get(url).status_code == 200


def test_compute_refuses_an_unknown_method(owner: Any, judged: Any) -> None:
    response = token_client(owner).post(
        f"/api/projects/{judged.slug}/labels/compute/", {"method": "vibes"}, format="json"
    )
    assert response.status_code == 400


def test_labels_list_with_provenance_and_filters(
    owner: Any, judged: Any, eager: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client = token_client(owner)
    compute(client, judged, django_capture_on_commit_callbacks)
    rows = client.get(f"/api/projects/{judged.slug}/labels/").json()["results"]
    assert {r["source"] for r in rows} == {"human"} and rows[0]["num_humans"] == 2
    assert client.get(f"/api/projects/{judged.slug}/labels/?min_agreement=0.9").json()["count"] == 4
    assert client.get(f"/api/projects/{judged.slug}/labels/?source=ai").json()["count"] == 0
    assert client.get(f"/api/projects/{judged.slug}/labels/?min_agreement=abc").status_code == 400


def test_agreement_returns_the_stored_report_alpha_annotators_and_disputes(
    owner: Any, judged: Any, eager: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client = token_client(owner)
    compute(client, judged, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(f"/api/projects/{judged.slug}/agreement/", {}, format="json")
    assert started.status_code == 202
    run = started.json()
    assert run["kind"] == "quality" and run["status"] == "queued"
    assert run["url"] == f"http://testserver/api/projects/{judged.slug}/reports/runs/{run['id']}/"
    detail = client.get(run["url"]).json()
    assert detail["status"] == "succeeded" and detail["progress"] == 100
    body = client.get(f"/api/projects/{judged.slug}/agreement/").json()
    assert set(body["alpha"]) == set(judged.aspects)
    assert {a["annotator"] for a in body["annotators"]} == {"x", "y"}
    assert body["disputed"][0]["external_id"] == "0"
    assert body["judgments"] == 10 and body["computed_at"] and body["run"] == run["id"]
    assert body["stale"] is False


def test_agreement_before_any_report_is_a_404_that_says_so(owner: Any, judged: Any) -> None:
    response = token_client(owner).get(f"/api/projects/{judged.slug}/agreement/")
    assert response.status_code == 404
    assert "not computed yet" in response.json()["detail"] and response.json()["run"] is None
    assert not ReportRun.objects.exists()  # a GET starts nothing


def test_agreement_post_does_not_compute_inside_the_request(
    owner: Any, judged: Any, monkeypatch: Any, django_capture_on_commit_callbacks: Any
) -> None:
    queued: list[int] = []
    monkeypatch.setattr(reports_service, "_enqueue", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        response = token_client(owner).post(f"/api/projects/{judged.slug}/agreement/")
    assert response.status_code == 202 and queued == [response.json()["id"]]
    assert ReportRun.objects.get().payload == {}
    busy = token_client(owner).post(f"/api/projects/{judged.slug}/agreement/")
    assert busy.status_code == 409 and f"run #{queued[0]}" in busy.json()["detail"]


def test_a_failed_report_run_shows_its_error(owner: Any, judged: Any, monkeypatch: Any) -> None:
    def boom(**kwargs: Any) -> Any:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(reports_service, "quality_report", boom)
    run = reports_service.report_run_start(
        project=judged, params={"kind": "quality"}, enqueue=False
    )
    reports_service.report_run_execute(run_id=run.pk)
    client = token_client(owner)
    body = client.get(f"/api/projects/{judged.slug}/reports/runs/{run.pk}/").json()
    assert body["status"] == "failed" and body["error"] == "RuntimeError: out of memory"
    missing = client.get(f"/api/projects/{judged.slug}/agreement/")
    assert missing.status_code == 404 and missing.json()["run"]["status"] == "failed"


def test_a_report_run_of_another_project_is_a_404(
    owner: Any, judged: Any, make_project: Any
) -> None:
    other = reports_service.report_run_start(
        project=make_project("other"), params={"kind": "quality"}, enqueue=False
    )
    client = token_client(owner)
    assert client.get(f"/api/projects/{judged.slug}/reports/runs/{other.pk}/").status_code == 404


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "labels/"),
        ("post", "labels/compute/"),
        ("get", "agreement/"),
        ("post", "agreement/"),
        ("get", "reports/runs/{run}/"),
    ],
)
def test_annotators_are_forbidden_and_outsiders_see_nothing(
    member: Any, outsider: Any, judged: Any, method: str, path: str
) -> None:
    stored = reports_service.report_run_start(
        project=judged, params={"kind": "quality"}, enqueue=False
    )
    reports_service.report_run_execute(run_id=stored.pk)
    url = f"/api/projects/{judged.slug}/{path.format(run=stored.pk)}"
    assert getattr(token_client(member), method)(url, {}, format="json").status_code == 403
    assert getattr(token_client(outsider), method)(url, {}, format="json").status_code == 404
    assert not FinalLabel.objects.exists() and not LabelRun.objects.exists()
    assert ReportRun.objects.get() == stored


def test_researchers_may_compute(member: Any, set_role: Any, judged: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(labels_service, "_enqueue", lambda run_id: None)
    set_role(judged, member, "researcher")
    assert (
        token_client(member)
        .post(f"/api/projects/{judged.slug}/labels/compute/", {}, format="json")
        .status_code
        == 202
    )
