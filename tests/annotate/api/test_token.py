from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_a_token_is_issued_for_a_username_and_password(owner: Any, project: Any) -> None:
    response = APIClient().post(
        "/api/token/", {"username": "owner", "password": "pw-owner"}, format="json"
    )
    assert response.status_code == 200
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert client.get("/api/projects/").json()[0]["slug"] == "proj"


def test_a_wrong_password_gets_no_token(owner: Any) -> None:
    response = APIClient().post(
        "/api/token/", {"username": "owner", "password": "nope"}, format="json"
    )
    assert response.status_code == 400


def test_requests_without_a_token_are_refused(project: Any) -> None:
    assert APIClient().get(f"/api/projects/{project.slug}/items/").status_code in (401, 403)


def test_the_command_prints_a_token_and_rotates_it(owner: Any, capsys: Any) -> None:
    call_command("api_token", "owner")
    first = capsys.readouterr().out.strip()
    call_command("api_token", "owner")
    assert capsys.readouterr().out.strip() == first
    call_command("api_token", "owner", "--rotate")
    assert capsys.readouterr().out.strip() != first


def test_the_docs_serve_swagger_ui_from_our_own_static_files(client: Any, owner: Any) -> None:
    client.force_login(owner)
    for url in ("/api/docs/", "/api/redoc/"):
        html = client.get(url).content.decode()
        assert "/static/drf_spectacular_sidecar/" in html
        assert "cdn." not in html and "unpkg" not in html and "jsdelivr" not in html
