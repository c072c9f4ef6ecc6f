"""GET /api/projects/ and /api/projects/<slug>/."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def test_the_list_shows_only_my_projects_with_my_role(
    api: APIClient, member: Any, project: Any, make_project: Any
) -> None:
    make_project("not-mine")
    api.force_authenticate(member)
    response = api.get(reverse("api-projects"))
    assert response.status_code == 200
    assert response.json() == [
        {
            "slug": "proj",
            "name": "Proj",
            "task_type": "pairwise",
            "num_responses": 2,
            "aspects": ["overall", "helpfulness", "truthfulness", "harmlessness"],
            "allow_ties": True,
            "overlap": 1,
            "role": "annotator",
        }
    ]


def test_the_owner_reads_a_project_as_admin(api: APIClient, owner: Any, project: Any) -> None:
    api.force_authenticate(owner)
    response = api.get(reverse("api-project", args=[project.slug]))
    assert response.status_code == 200
    assert (response.json()["slug"], response.json()["role"]) == ("proj", "admin")


def test_an_annotator_member_reads_the_project(api: APIClient, member: Any, project: Any) -> None:
    api.force_authenticate(member)
    response = api.get(reverse("api-project", args=[project.slug]))
    assert response.status_code == 200 and response.json()["role"] == "annotator"


def test_an_outsider_gets_404(api: APIClient, outsider: Any, project: Any) -> None:
    api.force_authenticate(outsider)
    assert api.get(reverse("api-project", args=[project.slug])).status_code == 404
    assert api.get(reverse("api-projects")).json() == []


def test_an_anonymous_client_gets_401(api: APIClient, project: Any) -> None:
    assert api.get(reverse("api-projects")).status_code == 401
    assert api.get(reverse("api-project", args=[project.slug])).status_code == 401
