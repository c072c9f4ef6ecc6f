from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from tests.factories import label_every_item

pytestmark = pytest.mark.django_db


@pytest.fixture
def rated(project: Any) -> Any:
    return label_every_item(project, strength=2)


def url(project: Any, **query: str) -> str:
    base = reverse("leaderboard", args=[project.slug])
    return base + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def test_it_rates_the_models_with_intervals(client: Any, owner: Any, rated: Any) -> None:
    client.force_login(owner)
    response = client.get(url(rated, labels="human", rounds="20"))
    assert response.status_code == 200
    html = response.content.decode()
    assert html.index("model-0") < html.index("model-1")  # model-0 won every battle
    assert 'class="interval"' in html
    assert "openskill" in html


def test_final_labels_are_the_default(client: Any, owner: Any, rated: Any) -> None:
    from annotate.services.labels import final_labels_compute

    final_labels_compute(project=rated)
    client.force_login(owner)
    response = client.get(url(rated))
    assert response.status_code == 200
    assert "5 labels" in response.content.decode()


def test_a_bad_choice_shows_an_error_not_a_crash(client: Any, owner: Any, rated: Any) -> None:
    client.force_login(owner)
    response = client.get(url(rated, labels="crowd", rounds="many"))
    assert response.status_code == 200
    assert "not one of" in response.content.decode()


def test_researchers_can_see_it(client: Any, member: Any, set_role: Any, rated: Any) -> None:
    set_role(rated, member, "researcher")
    client.force_login(member)
    assert client.get(url(rated)).status_code == 200


def test_it_forbids_annotators(client: Any, member: Any, rated: Any) -> None:
    client.force_login(member)
    assert client.get(url(rated)).status_code == 403


def test_it_hides_the_project_from_outsiders(client: Any, outsider: Any, rated: Any) -> None:
    client.force_login(outsider)
    assert client.get(url(rated)).status_code == 404
