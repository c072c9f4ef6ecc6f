from __future__ import annotations

from typing import Any

import pytest

from annotate.models import Judge, Judgment, RoutingRun
from annotate.services.routing import routing_run_execute
from tests.factories import add_imported_judges

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged(project: Any) -> Any:
    judge = Judge.objects.create(name="gpt", backend=Judge.Backend.IMPORTED)
    for i, item in enumerate(project.items.all()):
        Judgment.objects.create(
            item=item,
            kind="ai",
            source="gpt",
            task_type="pairwise",
            value={"strength": 1 if i % 2 else -1},
            judge=judge,
            prompt_version="imported",
        )
    return project


def preview(client: Any, project: Any, **data: str) -> Any:
    return client.post(
        f"/p/{project.slug}/routing/preview/", {"policy": "random", "budget": "2", **data}
    )


def test_the_owner_previews_and_applies_a_routing(
    client: Any, owner: Any, judged: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(owner)
    with django_capture_on_commit_callbacks() as queued:
        response = preview(client, judged)
    run = RoutingRun.objects.get()
    assert len(queued) == 1  # the worker task, sent once the run is committed
    assert response.status_code == 302 and response["Location"].endswith(f"?run={run.pk}")
    assert run.status == "queued" and not run.embed
    # While it is computed the page follows the run; nothing is computed in the request.
    page = client.get(response["Location"])
    assert page.status_code == 200 and b"<polyline" not in page.content
    assert f'hx-get="/p/{judged.slug}/routing/{run.pk}/"'.encode() in page.content
    routing_run_execute(run_id=run.pk)
    page = client.get(response["Location"])
    assert page.status_code == 200 and b"<polyline" in page.content and b"chosen" in page.content
    assert b"Apply: send 2 items" in page.content and b"hx-get" not in page.content
    client.post(f"/p/{judged.slug}/routing/{run.pk}/apply/")
    run.refresh_from_db()
    assert run.status == RoutingRun.Status.APPLIED
    assert judged.items.filter(route="human").count() == 2


def test_the_polled_panel_shows_progress_then_the_preview_and_stops(
    client: Any, owner: Any, judged: Any
) -> None:
    client.force_login(owner)
    preview(client, judged)
    run = RoutingRun.objects.get()
    RoutingRun.objects.filter(pk=run.pk).update(status="running", progress=45)
    url = f"/p/{judged.slug}/routing/{run.pk}/"
    polled = client.get(url, HTTP_HX_REQUEST="true")
    assert polled.status_code == 200 and b"45 %" in polled.content and b"hx-get" in polled.content
    RoutingRun.objects.filter(pk=run.pk).update(status="queued")
    routing_run_execute(run_id=run.pk)
    done = client.get(url, HTTP_HX_REQUEST="true")
    assert done.status_code == 286  # HTMX stops polling
    assert b"<polyline" in done.content and b"Apply: send 2 items" in done.content
    assert b"<table>" in done.content and b"hx-get" not in done.content
    # The list of runs below is refreshed out of band: it no longer says "queued".
    html = done.content.decode()
    runs_list = html[html.index('id="routing-runs"') :]
    assert 'hx-swap-oob="true"' in runs_list
    assert "<td>preview</td>" in runs_list and "<td>queued</td>" not in runs_list


def test_a_failed_preview_shows_its_message(client: Any, owner: Any, judged: Any) -> None:
    client.force_login(owner)
    preview(client, judged)
    run = RoutingRun.objects.get()
    Judgment.objects.filter(item__project=judged).delete()
    routing_run_execute(run_id=run.pk)
    page = client.get(f"/p/{judged.slug}/routing/?run={run.pk}")
    assert b"No preview: no AI verdicts yet" in page.content and b"Apply:" not in page.content
    polled = client.get(f"/p/{judged.slug}/routing/{run.pk}/", HTTP_HX_REQUEST="true")
    assert polled.status_code == 286 and b"no AI verdicts yet" in polled.content


def test_the_embeddings_checkbox_is_recorded_on_the_run(
    client: Any, owner: Any, judged: Any
) -> None:
    client.force_login(owner)
    preview(client, judged, embed="on")
    assert RoutingRun.objects.get().embed


def test_a_second_preview_waits_for_the_first(client: Any, owner: Any, judged: Any) -> None:
    client.force_login(owner)
    preview(client, judged)
    first = RoutingRun.objects.get()
    response = client.post(
        f"/p/{judged.slug}/routing/preview/", {"policy": "learned", "budget": "4"}, follow=True
    )
    assert b"already being computed (run #" in response.content
    assert RoutingRun.objects.get() == first


def test_a_preview_still_computing_cannot_be_applied(client: Any, owner: Any, judged: Any) -> None:
    client.force_login(owner)
    preview(client, judged)
    run = RoutingRun.objects.get()
    response = client.post(f"/p/{judged.slug}/routing/{run.pk}/apply/", follow=True)
    assert b"not a finished preview" in response.content
    assert not judged.items.filter(route="human").exists()


def test_a_bad_budget_shows_an_error_and_routes_nothing(
    client: Any, owner: Any, judged: Any
) -> None:
    client.force_login(owner)
    response = client.post(
        f"/p/{judged.slug}/routing/preview/", {"policy": "random", "budget": "lots"}, follow=True
    )
    assert b"No preview" in response.content
    assert not RoutingRun.objects.exists()


@pytest.mark.parametrize("role", ["annotator", "researcher"])
def test_routing_is_for_project_admins_only(
    client: Any, member: Any, judged: Any, set_role: Any, role: str
) -> None:
    set_role(judged, member, role)
    client.force_login(member)
    assert client.get(f"/p/{judged.slug}/routing/").status_code == 403
    assert preview(client, judged).status_code == 403
    assert not RoutingRun.objects.exists()
    run = RoutingRun.objects.create(project=judged, policy="random", budget=2)
    assert client.get(f"/p/{judged.slug}/routing/{run.pk}/").status_code == 403
    assert client.post(f"/p/{judged.slug}/routing/{run.pk}/apply/").status_code == 403


def test_outsiders_do_not_learn_the_project_exists(client: Any, outsider: Any, judged: Any) -> None:
    run = RoutingRun.objects.create(project=judged, policy="random", budget=2)
    client.force_login(outsider)
    assert client.get(f"/p/{judged.slug}/routing/").status_code == 404
    assert preview(client, judged).status_code == 404
    assert client.get(f"/p/{judged.slug}/routing/{run.pk}/").status_code == 404
    assert client.post(f"/p/{judged.slug}/routing/{run.pk}/apply/").status_code == 404
    assert RoutingRun.objects.get() == run  # nothing started


def test_the_preview_shows_the_weight_of_each_judge_in_a_panel_of_three(
    client: Any, owner: Any, make_project: Any
) -> None:
    project = add_imported_judges(
        make_project("three", items=60), {"gpt": 0.9, "pl": 0.85, "weak": 0.55}
    )
    client.force_login(owner)
    preview(client, project)
    run = RoutingRun.objects.get()
    routing_run_execute(run_id=run.pk)
    page = client.get(f"/p/{project.slug}/routing/?run={run.pk}").content.decode()
    run.refresh_from_db()
    weights = run.estimate["judge_weights"]
    assert "weighed by how often they agree" in page
    assert f"weak {weights['weak']}" in page
