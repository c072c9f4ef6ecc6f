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


# The token lookup on a project endpoint also reads the project and the caller's role (one
# statement on PostgreSQL); each refusal keeps its status code.


def _client(user: Any) -> APIClient:
    from rest_framework.authtoken.models import Token

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_a_bad_token_is_a_401_on_a_project_endpoint(project: Any) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert client.get(f"/api/projects/{project.slug}/items/").status_code == 401


def test_an_inactive_users_token_is_a_401(project: Any, member: Any) -> None:
    client = _client(member)
    member.is_active = False
    member.save()
    response = client.post(f"/api/projects/{project.slug}/assignments/next/")
    assert response.status_code == 401


def test_an_outsiders_token_gets_404_and_an_unknown_project_404(
    project: Any, outsider: Any, member: Any
) -> None:
    assert _client(outsider).get(f"/api/projects/{project.slug}/items/").status_code == 404
    assert _client(member).get("/api/projects/no-such-project/items/").status_code == 404


def test_a_member_without_the_role_gets_403(project: Any, member: Any) -> None:
    # member is an annotator: the item list is for researchers and admins.
    assert _client(member).get(f"/api/projects/{project.slug}/items/").status_code == 403


def test_a_superuser_acts_as_admin_without_a_membership(project: Any, make_user: Any) -> None:
    root = make_user("root", is_superuser=True)
    assert _client(root).get(f"/api/projects/{project.slug}/items/").status_code == 200


def test_the_project_read_with_the_token_answers_only_the_first_ask(
    project: Any, member: Any
) -> None:
    """A later ask in the same request reads again: the request may have changed a role."""
    from rest_framework.authtoken.models import Token

    from annotate import fastsql
    from annotate.models import Membership

    if not fastsql.enabled():
        pytest.skip("the combined statement is PostgreSQL's")
    key = Token.objects.create(user=member).key
    user, token = fastsql.token_user(key, slug=project.slug)
    assert token.key == key and user.pk == member.pk
    Membership.objects.filter(project=project, user=member).update(role="researcher")
    assert fastsql.project_and_role(project.slug, user) == (project, "annotator")
    assert fastsql.project_and_role(project.slug, user) == (project, "researcher")
    user, _ = fastsql.token_user(key, slug="no-such-project")
    assert fastsql.project_and_role("no-such-project", user) == (None, None)
    assert fastsql.token_user("0" * 40, slug=project.slug) is None


def test_the_assignment_read_with_the_token_answers_only_the_first_ask(
    project: Any, member: Any
) -> None:
    from rest_framework.authtoken.models import Token

    from annotate import fastsql
    from annotate.services.queue import assignment_next

    if not fastsql.enabled():
        pytest.skip("the combined statement is PostgreSQL's")
    held = assignment_next(project=project, annotator=member)
    key = Token.objects.create(user=member).key
    user, _ = fastsql.token_user(key, slug=project.slug, assignment_id=held.pk)
    held.__class__.objects.filter(pk=held.pk).update(status="skipped")
    first = fastsql.assignment(assignment_id=held.pk, project=project, user=user)
    again = fastsql.assignment(assignment_id=held.pk, project=project, user=user)
    assert (first.pk, first.status) == (held.pk, "active")
    assert (again.pk, again.status) == (held.pk, "skipped")
    user, _ = fastsql.token_user(key, slug=project.slug, assignment_id=held.pk + 1000)
    assert fastsql.assignment(assignment_id=held.pk + 1000, project=project, user=user) is None
