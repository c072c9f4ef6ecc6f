"""The project list and the project page."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_home_lists_only_the_projects_the_user_belongs_to(
    client: Client, member: Any, project: Any, make_project: Any
) -> None:
    make_project("secret-project")
    client.force_login(member)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    assert [p.slug for p, _ in response.context["projects"]] == ["proj"]


def test_a_superuser_sees_every_project_as_admin(
    client: Client, make_user: Any, project: Any, make_project: Any
) -> None:
    make_project("another")
    client.force_login(make_user("root", is_superuser=True))
    projects = client.get(reverse("home")).context["projects"]
    assert sorted((p.slug, role) for p, role in projects) == [
        ("another", "admin"),
        ("proj", "admin"),
    ]


def test_the_owner_sees_the_project_with_research_and_manage_rights(
    client: Client, owner: Any, project: Any
) -> None:
    client.force_login(owner)
    response = client.get(reverse("project", args=[project.slug]))
    assert response.status_code == 200
    assert response.context["role"] == "admin"
    assert response.context["can_research"] and response.context["can_manage"]
    assert response.context["items"]["total"] == 5
    assert project.name.encode() in response.content


def test_an_annotator_member_sees_the_project_without_research_rights(
    client: Client, member: Any, project: Any
) -> None:
    client.force_login(member)
    response = client.get(reverse("project", args=[project.slug]))
    assert response.status_code == 200
    assert response.context["role"] == "annotator"
    assert not response.context["can_research"] and not response.context["can_manage"]


def test_an_outsider_gets_404_for_a_project_and_for_one_that_does_not_exist(
    client: Client, outsider: Any, project: Any
) -> None:
    client.force_login(outsider)
    assert client.get(reverse("project", args=[project.slug])).status_code == 404
    assert client.get(reverse("project", args=["no-such-project"])).status_code == 404


def test_an_anonymous_visitor_is_sent_to_log_in(client: Client, project: Any) -> None:
    for url in (reverse("home"), reverse("project", args=[project.slug])):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
