from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from annotate.models import FinalLabel, Judge, Judgment, LabelRun, ReportRun
from annotate.services import labels as labels_service
from annotate.services import reports as reports_service

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged(project: Any) -> Any:
    judge = Judge.objects.create(name="gpt-judge", backend="imported")
    project.judges.add(judge)
    for item in project.items.all():
        for who, s in (("ann-a", 2), ("ann-b", 1 if item.external_id != "0" else -2)):
            Judgment.objects.create(
                item=item,
                kind="human",
                source=who,
                external_annotator=who,
                task_type="pairwise",
                value={"strength": s},
                time_spent_ms=4000,
            )
        Judgment.objects.create(
            item=item,
            kind="ai",
            source="gpt-judge",
            judge=judge,
            prompt_version="v1",
            task_type="pairwise",
            value={"strength": 1},
            confidence=0.8,
        )
    return project


def url(project: Any) -> str:
    return reverse("quality", args=[project.slug])


def store_report(project: Any) -> ReportRun:
    """Compute the quality report as the worker does."""
    run = reports_service.report_run_start(
        project=project, params={"kind": "quality"}, enqueue=False
    )
    return reports_service.report_run_execute(run_id=run.pk)


def test_it_shows_the_stored_report_agreement_annotators_judges_and_charts(
    client: Any, owner: Any, judged: Any
) -> None:
    from annotate.services.labels import final_labels_compute

    final_labels_compute(project=judged)
    stored = store_report(judged)
    client.force_login(owner)
    response = client.get(url(judged))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Krippendorff" in html
    assert "ann-a" in html and "ann-b" in html
    assert "gpt-judge" in html
    assert "<svg" in html and "<rect" in html
    assert "Most disputed items" in html and "<code>0</code>" in html
    assert "from 15 judgments" in html and "Computed at" in html and "Recompute" in html
    assert "cdn" not in html.lower()
    assert ReportRun.objects.get() == stored  # fresh: opening the page starts nothing


def test_it_never_computes_in_the_request(
    client: Any, owner: Any, judged: Any, monkeypatch: Any
) -> None:
    def no(**kwargs: Any) -> Any:
        raise AssertionError("computed inside the request")

    monkeypatch.setattr(reports_service, "quality_report", no)
    client.force_login(owner)
    html = client.get(url(judged)).content.decode()
    assert "not computed yet" in html and "being computed now" in html
    run = ReportRun.objects.get()  # opening the page queued a run
    assert (run.kind, run.status, run.created_by) == ("quality", "queued", owner)
    assert 'id="report-run"' in html and reverse("quality_report_run", args=[judged.slug]) in html


def test_it_recomputes_a_report_older_than_the_newest_judgment(
    client: Any, owner: Any, judged: Any
) -> None:
    stored = store_report(judged)
    Judgment.objects.create(
        item=judged.items.first(),
        kind="human",
        source="ann-c",
        external_annotator="ann-c",
        task_type="pairwise",
        value={"strength": 0},
    )
    client.force_login(owner)
    html = client.get(url(judged)).content.decode()
    assert "from 15 judgments" in html  # the stored report, while the new one is computed
    assert ReportRun.objects.exclude(pk=stored.pk).get().status == "queued"


def test_it_works_on_an_empty_project(client: Any, owner: Any, project: Any) -> None:
    store_report(project)
    client.force_login(owner)
    response = client.get(url(project))
    assert response.status_code == 200
    assert "No human judgments yet" in response.content.decode()


def test_researchers_can_see_it(client: Any, member: Any, set_role: Any, judged: Any) -> None:
    set_role(judged, member, "researcher")
    client.force_login(member)
    assert client.get(url(judged)).status_code == 200


def test_it_forbids_annotators(client: Any, member: Any, judged: Any) -> None:
    client.force_login(member)
    assert client.get(url(judged)).status_code == 403


def test_it_hides_the_project_from_outsiders(client: Any, outsider: Any, judged: Any) -> None:
    client.force_login(outsider)
    assert client.get(url(judged)).status_code == 404


def test_it_requires_login(client: Any, judged: Any) -> None:
    response = client.get(url(judged))
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_compute_starts_a_run_on_a_worker_and_says_so(
    client: Any,
    owner: Any,
    judged: Any,
    monkeypatch: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    queued: list[int] = []
    monkeypatch.setattr(labels_service, "_enqueue", queued.append)
    client.force_login(owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("quality_compute", args=[judged.slug]), {"method": "dawid_skene"}
        )
    assert response.status_code == 302 and response["Location"] == url(judged)
    run = LabelRun.objects.get()
    assert queued == [run.pk]
    assert (run.method, run.status, run.created_by) == ("dawid_skene", "queued", owner)
    assert not FinalLabel.objects.exists()  # nothing computed inside the request
    html = client.get(url(judged)).content.decode()
    assert f"Computing final labels by dawid_skene (run #{run.pk})" in html
    assert 'id="label-run"' in html and "hx-get" in html and "queued" in html


def test_the_run_computes_the_labels_on_the_worker(
    client: Any, owner: Any, judged: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from config.celery import app as celery_app

    client.force_login(owner)
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            client.post(reverse("quality_compute", args=[judged.slug]), {"method": "dawid_skene"})
    finally:
        celery_app.conf.task_always_eager = eager
    assert FinalLabel.objects.filter(item__project=judged).count() == 5
    assert set(FinalLabel.objects.values_list("method", flat=True)) == {"dawid_skene"}
    html = client.get(url(judged)).content.decode()
    assert "succeeded" in html and "5 final labels" in html


def test_a_second_compute_is_refused_while_one_runs(client: Any, owner: Any, judged: Any) -> None:
    first = labels_service.label_run_start(project=judged, enqueue=False)
    client.force_login(owner)
    response = client.post(reverse("quality_compute", args=[judged.slug]), follow=True)
    assert f"already being computed (run #{first.pk}" in response.content.decode()
    assert LabelRun.objects.count() == 1


def test_compute_refuses_an_unknown_method(client: Any, owner: Any, judged: Any) -> None:
    client.force_login(owner)
    response = client.post(
        reverse("quality_compute", args=[judged.slug]), {"method": "vibes"}, follow=True
    )
    assert "not one of" in response.content.decode()
    assert not LabelRun.objects.exists() and not FinalLabel.objects.exists()


def run_url(project: Any) -> str:
    return reverse("quality_label_run", args=[project.slug])


def test_the_run_partial_keeps_polling_while_the_run_is_active(
    client: Any, owner: Any, judged: Any
) -> None:
    labels_service.label_run_start(project=judged, enqueue=False)
    client.force_login(owner)
    response = client.get(run_url(judged), headers={"HX-Request": "true"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "queued" in html and "hx-get" in html and "<html" not in html


def test_the_run_partial_stops_polling_with_the_summary_when_done(
    client: Any, owner: Any, judged: Any
) -> None:
    run = labels_service.label_run_start(project=judged, enqueue=False)
    labels_service.label_run_execute(run_id=run.pk)
    client.force_login(owner)
    response = client.get(run_url(judged), headers={"HX-Request": "true"})
    assert response.status_code == 286
    html = response.content.decode()
    assert "succeeded" in html and "5 final labels" in html and "hx-get" not in html


def test_the_run_partial_shows_why_a_run_failed(
    client: Any, owner: Any, judged: Any, monkeypatch: Any
) -> None:
    def boom(**kwargs: Any) -> Any:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(labels_service, "final_labels_compute", boom)
    run = labels_service.label_run_start(project=judged, enqueue=False)
    labels_service.label_run_execute(run_id=run.pk)
    client.force_login(owner)
    response = client.get(run_url(judged), headers={"HX-Request": "true"})
    assert response.status_code == 286
    assert "failed" in response.content.decode() and "out of memory" in response.content.decode()


def test_the_run_partial_with_no_run_stops_polling(client: Any, owner: Any, judged: Any) -> None:
    client.force_login(owner)
    assert client.get(run_url(judged), headers={"HX-Request": "true"}).status_code == 286
    assert client.get(run_url(judged)).status_code == 200  # without HTMX, a plain page part


def test_researchers_can_start_and_follow_a_run(
    client: Any, member: Any, set_role: Any, judged: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(labels_service, "_enqueue", lambda run_id: None)
    set_role(judged, member, "researcher")
    client.force_login(member)
    assert client.post(reverse("quality_compute", args=[judged.slug])).status_code == 302
    assert LabelRun.objects.get().created_by == member
    assert client.get(run_url(judged)).status_code == 200


def test_the_run_partial_forbids_annotators_and_hides_from_outsiders(
    client: Any, member: Any, outsider: Any, judged: Any
) -> None:
    labels_service.label_run_start(project=judged, enqueue=False)
    client.force_login(member)
    assert client.get(run_url(judged)).status_code == 403
    client.force_login(outsider)
    assert client.get(run_url(judged)).status_code == 404


def test_compute_requires_post(client: Any, owner: Any, judged: Any) -> None:
    client.force_login(owner)
    assert client.get(reverse("quality_compute", args=[judged.slug])).status_code == 405


def test_compute_forbids_annotators_and_hides_from_outsiders(
    client: Any, member: Any, outsider: Any, judged: Any
) -> None:
    client.force_login(member)
    assert client.post(reverse("quality_compute", args=[judged.slug])).status_code == 403
    client.force_login(outsider)
    assert client.post(reverse("quality_compute", args=[judged.slug])).status_code == 404
    assert not LabelRun.objects.exists() and not FinalLabel.objects.exists()


def report_run_url(project: Any) -> str:
    return reverse("quality_report_run", args=[project.slug])


def test_a_report_run_that_finishes_while_the_page_polls_reloads_the_page(
    client: Any, owner: Any, judged: Any
) -> None:
    run = reports_service.report_run_start(
        project=judged, params={"kind": "quality"}, enqueue=False
    )
    client.force_login(owner)
    hx = {"HX-Request": "true"}
    polled = client.get(report_run_url(judged), headers=hx)
    assert polled.status_code == 200 and "HX-Refresh" not in polled
    reports_service.report_run_execute(run_id=run.pk)
    done = client.get(report_run_url(judged), headers=hx)
    assert done.status_code == 286 and done["HX-Refresh"] == "true"
    page = client.get(url(judged)).content.decode()
    assert "Computed at" in page and 'hx-get="' + report_run_url(judged) not in page


def test_recompute_starts_a_report_run_on_a_worker(
    client: Any,
    owner: Any,
    judged: Any,
    monkeypatch: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    store_report(judged)
    queued: list[int] = []
    monkeypatch.setattr(reports_service, "_enqueue", queued.append)
    client.force_login(owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("quality_report_compute", args=[judged.slug]))
    assert response.status_code == 302 and response["Location"] == url(judged)
    run = ReportRun.objects.filter(status="queued").get()
    assert queued == [run.pk] and run.created_by == owner
    html = client.get(url(judged)).content.decode()
    assert f"Computing the quality report (run #{run.pk})" in html
    assert "hx-get" in html and "queued" in html


def test_the_report_run_computes_it_on_the_worker(
    client: Any, owner: Any, judged: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from config.celery import app as celery_app

    client.force_login(owner)
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            client.post(reverse("quality_report_compute", args=[judged.slug]))
    finally:
        celery_app.conf.task_always_eager = eager
    run = ReportRun.objects.get()
    assert run.status == "succeeded" and run.judgments == 15
    assert {a["annotator"] for a in run.payload["annotators"]} == {"ann-a", "ann-b"}
    html = client.get(url(judged)).content.decode()
    assert "from 15 judgments" in html and "ann-a" in html


def test_a_second_report_run_is_refused_while_one_runs(
    client: Any, owner: Any, judged: Any
) -> None:
    first = reports_service.report_run_start(
        project=judged, params={"kind": "quality"}, enqueue=False
    )
    client.force_login(owner)
    response = client.post(reverse("quality_report_compute", args=[judged.slug]), follow=True)
    assert f"already being computed (run #{first.pk}" in response.content.decode()
    assert ReportRun.objects.count() == 1


def test_the_report_run_partial_polls_with_progress_while_active(
    client: Any, owner: Any, judged: Any
) -> None:
    run = reports_service.report_run_start(
        project=judged, params={"kind": "quality"}, enqueue=False
    )
    ReportRun.objects.filter(pk=run.pk).update(status="running", progress=40)
    client.force_login(owner)
    response = client.get(report_run_url(judged), headers={"HX-Request": "true"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "running" in html and "40 %" in html and "hx-get" in html and "<html" not in html


def test_the_report_run_partial_stops_polling_when_done(
    client: Any, owner: Any, judged: Any
) -> None:
    store_report(judged)
    client.force_login(owner)
    response = client.get(report_run_url(judged), headers={"HX-Request": "true"})
    assert response.status_code == 286
    html = response.content.decode()
    assert "succeeded" in html and "15 judgments" in html and "hx-get" not in html


def test_the_report_run_partial_shows_why_a_run_failed(
    client: Any, owner: Any, judged: Any, monkeypatch: Any
) -> None:
    def boom(**kwargs: Any) -> Any:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(reports_service, "quality_report", boom)
    store_report(judged)
    client.force_login(owner)
    response = client.get(report_run_url(judged), headers={"HX-Request": "true"})
    assert response.status_code == 286
    assert "failed" in response.content.decode() and "out of memory" in response.content.decode()
    # The page shows the error and a button; opening it does not start the same failure again.
    html = client.get(url(judged)).content.decode()
    assert "out of memory" in html and "not computed yet" in html
    assert ReportRun.objects.count() == 1


def test_researchers_can_recompute_and_follow_the_report(
    client: Any, member: Any, set_role: Any, judged: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(reports_service, "_enqueue", lambda run_id: None)
    set_role(judged, member, "researcher")
    client.force_login(member)
    assert client.post(reverse("quality_report_compute", args=[judged.slug])).status_code == 302
    assert ReportRun.objects.get().created_by == member
    assert client.get(report_run_url(judged)).status_code == 200


def test_report_compute_requires_post(client: Any, owner: Any, judged: Any) -> None:
    client.force_login(owner)
    assert client.get(reverse("quality_report_compute", args=[judged.slug])).status_code == 405


def test_the_report_views_forbid_annotators_and_hide_from_outsiders(
    client: Any, member: Any, outsider: Any, judged: Any
) -> None:
    compute = reverse("quality_report_compute", args=[judged.slug])
    client.force_login(member)
    assert client.post(compute).status_code == 403
    assert client.get(report_run_url(judged)).status_code == 403
    client.force_login(outsider)
    assert client.post(compute).status_code == 404
    assert client.get(report_run_url(judged)).status_code == 404
    assert not ReportRun.objects.exists()
