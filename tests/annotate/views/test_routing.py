from __future__ import annotations

from typing import Any

import pytest

from annotate.models import Judge, Judgment, RoutingRun

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


def test_the_owner_previews_and_applies_a_routing(client: Any, owner: Any, judged: Any) -> None:
    client.force_login(owner)
    response = client.post(
        f"/p/{judged.slug}/routing/preview/", {"policy": "random", "budget": "2"}
    )
    run = RoutingRun.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"?run={run.pk}")
    page = client.get(response["Location"])
    assert page.status_code == 200 and b"<polyline" in page.content and b"chosen" in page.content
    client.post(f"/p/{judged.slug}/routing/{run.pk}/apply/")
    run.refresh_from_db()
    assert run.status == RoutingRun.Status.APPLIED
    assert judged.items.filter(route="human").count() == 2


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
    assert (
        client.post(
            f"/p/{judged.slug}/routing/preview/", {"policy": "random", "budget": "2"}
        ).status_code
        == 403
    )


def test_outsiders_do_not_learn_the_project_exists(client: Any, outsider: Any, judged: Any) -> None:
    client.force_login(outsider)
    assert client.get(f"/p/{judged.slug}/routing/").status_code == 404
