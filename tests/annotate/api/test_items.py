from __future__ import annotations

from typing import Any

import pytest

from annotate.models import Item
from tests.annotate.api.clients import token_client

pytestmark = pytest.mark.django_db


def test_it_lists_items_a_page_at_a_time(owner: Any, project: Any) -> None:
    response = token_client(owner).get(f"/api/projects/{project.slug}/items/?limit=2")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 5 and len(body["results"]) == 2 and body["next"]
    assert body["results"][0]["responses"][0]["model"] == "model-0"


def test_it_filters_by_route_gold_and_external_id(owner: Any, project: Any) -> None:
    Item.objects.filter(project=project, external_id="3").update(route="human", is_gold=True)
    client = token_client(owner)
    assert [
        i["external_id"]
        for i in client.get(f"/api/projects/{project.slug}/items/?route=human").json()["results"]
    ] == ["3"]
    assert client.get(f"/api/projects/{project.slug}/items/?is_gold=true").json()["count"] == 1
    assert client.get(f"/api/projects/{project.slug}/items/?external_id=4").json()["count"] == 1
    assert client.get(f"/api/projects/{project.slug}/items/?route=robots").status_code == 400


def test_it_shows_one_item(owner: Any, project: Any) -> None:
    item = project.items.get(external_id="1")
    response = token_client(owner).get(f"/api/projects/{project.slug}/items/{item.pk}/")
    assert response.json()["prompt"] == "Prompt number 1: explain something."


def test_an_item_of_another_project_is_not_found(
    owner: Any, project: Any, make_project: Any
) -> None:
    other = make_project("other", items=1)
    item = other.items.get()
    assert (
        token_client(owner).get(f"/api/projects/{project.slug}/items/{item.pk}/").status_code == 404
    )


def test_researchers_may_read_items(member: Any, set_role: Any, project: Any) -> None:
    set_role(project, member, "researcher")
    assert token_client(member).get(f"/api/projects/{project.slug}/items/").status_code == 200


def test_annotators_are_forbidden(member: Any, project: Any) -> None:
    item = project.items.first()
    client = token_client(member)
    assert client.get(f"/api/projects/{project.slug}/items/").status_code == 403
    assert client.get(f"/api/projects/{project.slug}/items/{item.pk}/").status_code == 403


def test_outsiders_see_nothing(outsider: Any, project: Any) -> None:
    item = project.items.first()
    client = token_client(outsider)
    assert client.get(f"/api/projects/{project.slug}/items/").status_code == 404
    assert client.get(f"/api/projects/{project.slug}/items/{item.pk}/").status_code == 404
