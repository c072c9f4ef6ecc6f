from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from annotate.models import ReportRun
from annotate.services import reports as reports_service
from tests.factories import label_every_item

pytestmark = pytest.mark.django_db


@pytest.fixture
def rated(project: Any) -> Any:
    return label_every_item(project, strength=2)


def url(project: Any, **query: str) -> str:
    base = reverse("leaderboard", args=[project.slug])
    return base + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def store(project: Any, **params: Any) -> ReportRun:
    """Compute one leaderboard as the worker does."""
    run = reports_service.report_run_start(
        project=project, params={"kind": "leaderboard", **params}, enqueue=False
    )
    return reports_service.report_run_execute(run_id=run.pk)


def test_it_shows_the_stored_ratings_with_intervals(client: Any, owner: Any, rated: Any) -> None:
    store(rated, labels="human", rounds=20)
    client.force_login(owner)
    response = client.get(url(rated, labels="human", rounds="20"))
    assert response.status_code == 200
    html = response.content.decode()
    assert html.index("model-0") < html.index("model-1")  # model-0 won every battle
    assert 'class="interval"' in html
    assert "openskill" in html and "20 bootstrap rounds" in html
    assert "Computed at" in html and "from 5 judgments" in html
    assert ReportRun.objects.count() == 1  # fresh: opening the page starts nothing


def test_final_labels_are_the_default(client: Any, owner: Any, rated: Any) -> None:
    from annotate.services.labels import final_labels_compute

    final_labels_compute(project=rated)
    store(rated)
    client.force_login(owner)
    response = client.get(url(rated))
    assert response.status_code == 200
    html = response.content.decode()
    assert "5 labels" in html and "from 5 final labels" in html


def test_each_selection_is_its_own_stored_report(client: Any, owner: Any, rated: Any) -> None:
    store(rated, labels="human", rounds=20)
    client.force_login(owner)
    html = client.get(url(rated, labels="ai", rounds="20")).content.decode()
    assert "not computed yet" in html and "model-0" not in html
    run = ReportRun.objects.get(status="queued")  # opening the page queued the selection
    assert (run.labels, run.aspect, run.rounds, run.created_by) == ("ai", "overall", 20, owner)


def test_it_never_computes_in_the_request(
    client: Any, owner: Any, rated: Any, monkeypatch: Any
) -> None:
    def no(**kwargs: Any) -> Any:
        raise AssertionError("computed inside the request")

    monkeypatch.setattr(reports_service, "leaderboard_compute", no)
    client.force_login(owner)
    html = client.get(url(rated, labels="human")).content.decode()
    assert "not computed yet" in html and "being computed now" in html
    assert 'id="report-run"' in html and "hx-get" in html


def test_while_another_selection_runs_the_page_says_so_and_starts_nothing(
    client: Any, owner: Any, rated: Any
) -> None:
    busy = reports_service.report_run_start(
        project=rated, params={"kind": "leaderboard", "labels": "human"}, enqueue=False
    )
    client.force_login(owner)
    html = client.get(url(rated, labels="ai")).content.decode()
    assert f"Another leaderboard of this project is being computed now (run #{busy.pk})" in html
    assert list(ReportRun.objects.values_list("pk", flat=True)) == [busy.pk]


def test_a_bad_choice_shows_an_error_not_a_crash(client: Any, owner: Any, rated: Any) -> None:
    client.force_login(owner)
    response = client.get(url(rated, labels="crowd", rounds="many"))
    assert response.status_code == 200
    assert "not one of" in response.content.decode()
    assert not ReportRun.objects.exists()


def test_compute_starts_the_selected_leaderboard_on_a_worker(
    client: Any,
    owner: Any,
    rated: Any,
    monkeypatch: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    queued: list[int] = []
    monkeypatch.setattr(reports_service, "_enqueue", queued.append)
    client.force_login(owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("leaderboard_compute", args=[rated.slug]),
            {"labels": "human", "aspect": "overall", "rounds": "7"},
        )
    assert response.status_code == 302
    assert response["Location"] == url(rated, labels="human", aspect="overall", rounds="7")
    run = ReportRun.objects.get()
    assert queued == [run.pk] and (run.labels, run.rounds, run.status) == ("human", 7, "queued")
    html = client.get(response["Location"]).content.decode()
    assert f"Computing the leaderboard (run #{run.pk})" in html


def test_the_run_computes_it_on_the_worker(
    client: Any, owner: Any, rated: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from config.celery import app as celery_app

    client.force_login(owner)
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            client.post(
                reverse("leaderboard_compute", args=[rated.slug]),
                {"labels": "human", "rounds": "5"},
            )
    finally:
        celery_app.conf.task_always_eager = eager
    run = ReportRun.objects.get()
    assert run.status == "succeeded" and run.payload["models"][0]["model"] == "model-0"
    html = client.get(url(rated, labels="human", rounds="5")).content.decode()
    assert html.index("model-0") < html.index("model-1")


def test_the_run_partial_polls_then_stops_and_shows_failures(
    client: Any, owner: Any, rated: Any, monkeypatch: Any
) -> None:
    run = reports_service.report_run_start(
        project=rated, params={"kind": "leaderboard", "labels": "human"}, enqueue=False
    )
    partial = reverse("leaderboard_run", args=[rated.slug])
    client.force_login(owner)
    response = client.get(partial, headers={"HX-Request": "true"})
    assert response.status_code == 200 and "queued" in response.content.decode()

    def boom(**kwargs: Any) -> Any:
        raise RuntimeError("choix did not converge")

    monkeypatch.setattr(reports_service, "leaderboard_compute", boom)
    reports_service.report_run_execute(run_id=run.pk)
    response = client.get(partial, headers={"HX-Request": "true"})
    assert response.status_code == 286
    assert "failed" in response.content.decode()
    assert "choix did not converge" in response.content.decode()
    assert "HX-Refresh" not in response  # a failure stays on the page with its message


def test_when_the_selection_shown_is_computed_the_page_reloads_to_show_it(
    client: Any, owner: Any, rated: Any
) -> None:
    run = reports_service.report_run_start(
        project=rated, params={"kind": "leaderboard", "labels": "human"}, enqueue=False
    )
    client.force_login(owner)
    page = client.get(url(rated, labels="human")).content.decode()
    partial = reverse("leaderboard_run", args=[rated.slug])
    assert f'hx-get="{partial}?labels=human&amp;aspect=overall&amp;rounds=100"' in page
    reports_service.report_run_execute(run_id=run.pk)
    hx = {"HX-Request": "true"}
    same = client.get(partial, {"labels": "human", "aspect": "overall", "rounds": 100}, headers=hx)
    assert same.status_code == 286 and same["HX-Refresh"] == "true"
    other = client.get(partial, {"labels": "ai"}, headers=hx)
    assert other.status_code == 286 and "HX-Refresh" not in other


def test_researchers_can_see_and_compute_it(
    client: Any, member: Any, set_role: Any, rated: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(reports_service, "_enqueue", lambda run_id: None)
    set_role(rated, member, "researcher")
    client.force_login(member)
    assert client.get(url(rated)).status_code == 200
    assert client.post(reverse("leaderboard_compute", args=[rated.slug])).status_code == 302
    assert client.get(reverse("leaderboard_run", args=[rated.slug])).status_code == 200


def test_it_forbids_annotators(client: Any, member: Any, rated: Any) -> None:
    client.force_login(member)
    assert client.get(url(rated)).status_code == 403
    assert client.post(reverse("leaderboard_compute", args=[rated.slug])).status_code == 403
    assert client.get(reverse("leaderboard_run", args=[rated.slug])).status_code == 403
    assert not ReportRun.objects.exists()


def test_it_hides_the_project_from_outsiders(client: Any, outsider: Any, rated: Any) -> None:
    client.force_login(outsider)
    assert client.get(url(rated)).status_code == 404
    assert client.post(reverse("leaderboard_compute", args=[rated.slug])).status_code == 404
    assert client.get(reverse("leaderboard_run", args=[rated.slug])).status_code == 404
    assert not ReportRun.objects.exists()


def test_compute_requires_post(client: Any, owner: Any, rated: Any) -> None:
    client.force_login(owner)
    assert client.get(reverse("leaderboard_compute", args=[rated.slug])).status_code == 405
