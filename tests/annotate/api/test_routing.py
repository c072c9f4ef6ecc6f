from __future__ import annotations

from typing import Any

import pytest

from annotate.models import Item, Judge, Judgment, RoutingRun
from annotate.services.routing import routing_run_execute
from tests.annotate.api.clients import token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def prelabelled(project: Any) -> Any:
    judge = Judge.objects.create(name="judge-1", backend="imported")
    project.judges.add(judge)
    for n, item in enumerate(project.items.order_by("pk")):
        p_a = [0.95, 0.55, 0.5, 0.1, 0.8][n]
        Judgment.objects.create(
            item=item,
            kind="ai",
            source="judge-1",
            judge=judge,
            prompt_version="v1",
            task_type="pairwise",
            value={"strength": 1 if p_a >= 0.5 else -1},
            probabilities={"a": p_a, "b": 1 - p_a, "tie": 0.0},
            confidence=max(p_a, 1 - p_a),
        )
    return project


def preview(client: Any, project: Any, **body: Any) -> Any:
    return client.post(
        f"/api/projects/{project.slug}/routing/runs/",
        {"policy": "uncertainty", "budget": 2, **body},
        format="json",
    )


def test_a_preview_records_a_run_with_decisions_and_apply_routes_items(
    owner: Any, prelabelled: Any
) -> None:
    client = token_client(owner)
    response = preview(client, prelabelled)
    assert response.status_code == 202, response.json()
    queued = response.json()
    assert (queued["status"], queued["progress"], queued["estimate"]) == ("queued", 0, {})
    url = f"/api/projects/{prelabelled.slug}/routing/runs/{queued['id']}/"
    assert client.get(url).json()["status"] == "queued"
    routing_run_execute(run_id=queued["id"])  # what the worker does
    run = client.get(url).json()
    assert (run["status"], run["human_items"], run["progress"]) == ("preview", 2, 100)
    assert run["estimate"]["chosen"]["share"] == 0.4 and run["error"] == ""
    decisions = client.get(
        f"/api/projects/{prelabelled.slug}/routing/runs/{run['id']}/decisions/"
    ).json()
    assert decisions["count"] == 5
    humans = client.get(
        f"/api/projects/{prelabelled.slug}/routing/runs/{run['id']}/decisions/?route=human"
    ).json()
    assert humans["count"] == 2
    # The least sure AI verdicts (p = .5 and .55) go to humans.
    assert {d["item_external_id"] for d in humans["results"]} == {"1", "2"}
    assert client.get(f"/api/projects/{prelabelled.slug}/routing/runs/").json()["count"] == 1
    assert (
        client.get(f"/api/projects/{prelabelled.slug}/routing/runs/{run['id']}/").json()["policy"]
        == "uncertainty"
    )
    applied = client.post(f"/api/projects/{prelabelled.slug}/routing/runs/{run['id']}/apply/")
    assert applied.json() == {"to_human": 2, "to_ai": 3}
    assert Item.objects.filter(project=prelabelled, route="human").count() == 2
    again = client.post(f"/api/projects/{prelabelled.slug}/routing/runs/{run['id']}/apply/")
    assert again.status_code == 400


def test_a_second_preview_while_one_computes_is_a_409(owner: Any, prelabelled: Any) -> None:
    client = token_client(owner)
    first = preview(client, prelabelled).json()
    second = preview(client, prelabelled, policy="random")
    assert second.status_code == 409 and f"run #{first['id']}" in second.json()["detail"]
    applied = client.post(f"/api/projects/{prelabelled.slug}/routing/runs/{first['id']}/apply/")
    assert applied.status_code == 400 and "not a finished preview" in str(applied.json())
    routing_run_execute(run_id=first["id"])
    assert preview(client, prelabelled).status_code == 202


def test_a_failed_preview_reports_its_error(owner: Any, prelabelled: Any) -> None:
    client = token_client(owner)
    run_id = preview(client, prelabelled).json()["id"]
    Judgment.objects.filter(item__project=prelabelled).delete()
    routing_run_execute(run_id=run_id)
    run = client.get(f"/api/projects/{prelabelled.slug}/routing/runs/{run_id}/").json()
    assert run["status"] == "failed" and run["error"].startswith("no AI verdicts yet")


def test_bad_previews_are_a_400(owner: Any, project: Any, prelabelled: Any) -> None:
    client = token_client(owner)
    assert preview(client, prelabelled, policy="psychic").status_code == 400
    assert preview(client, prelabelled, budget=-1).status_code == 400
    assert not RoutingRun.objects.exists()


def test_routing_without_ai_verdicts_explains_why(owner: Any, make_project: Any) -> None:
    empty = make_project("empty", items=3)
    response = preview(token_client(owner), empty)
    assert response.status_code == 400 and "AI verdicts" in str(response.json())


@pytest.mark.parametrize("role", ["researcher", "annotator"])
def test_only_admins_route(member: Any, set_role: Any, prelabelled: Any, role: str) -> None:
    set_role(prelabelled, member, role)
    client = token_client(member)
    assert preview(client, prelabelled).status_code == 403
    assert not RoutingRun.objects.exists()
    assert client.get(f"/api/projects/{prelabelled.slug}/routing/runs/").status_code == 403
    run = RoutingRun.objects.create(project=prelabelled, policy="random", budget=2)
    assert client.get(f"/api/projects/{prelabelled.slug}/routing/runs/{run.pk}/").status_code == 403


def test_outsiders_see_nothing(owner: Any, outsider: Any, prelabelled: Any) -> None:
    run_id = preview(token_client(owner), prelabelled).json()["id"]
    routing_run_execute(run_id=run_id)
    client = token_client(outsider)
    for path in ("", f"{run_id}/", f"{run_id}/decisions/"):
        assert (
            client.get(f"/api/projects/{prelabelled.slug}/routing/runs/{path}").status_code == 404
        )
    assert (
        client.post(f"/api/projects/{prelabelled.slug}/routing/runs/{run_id}/apply/").status_code
        == 404
    )
    assert preview(client, prelabelled).status_code == 404
    assert RoutingRun.objects.get().status == "preview"  # nothing started, nothing applied
