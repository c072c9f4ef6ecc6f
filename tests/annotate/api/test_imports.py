"""POST /api/projects/<slug>/imports/ and GET …/imports/<id>/."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotate.models import ImportBatch, Membership
from config.celery import app as celery_app

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def setup(settings: Any, tmp_path: Path) -> Iterator[None]:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.VAR_DIR = tmp_path / "var"
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = eager


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def upload(rows: int = 3, name: str = "items.jsonl") -> SimpleUploadedFile:
    text = "".join(
        json.dumps({"id": f"api{i}", "prompt": f"p{i}", "responses": [f"a{i}", f"b{i}"]}) + "\n"
        for i in range(rows)
    )
    return SimpleUploadedFile(name, text.encode())


def create_url(project: Any) -> str:
    return reverse("api-import-create", args=[project.slug])


def test_the_owner_uploads_with_a_token_and_polls_the_batch(
    api: APIClient, owner: Any, project: Any, django_capture_on_commit_callbacks: Any
) -> None:
    token = Token.objects.create(user=owner)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(create_url(project), {"file": upload()}, format="multipart")
    assert response.status_code == 202
    assert response.json()["status"] == "queued"  # as accepted, before the worker ran
    batch_id = response.json()["id"]

    detail = api.get(reverse("api-import", args=[project.slug, batch_id]))
    assert detail.status_code == 200
    body = detail.json()
    assert (body["status"], body["created"], body["skipped"], body["invalid"]) == (
        "succeeded",
        3,
        0,
        0,
    )
    assert body["filename"] == "items.jsonl" and body["errors"] == []
    assert project.items.filter(external_id__startswith="api").count() == 3


def test_a_researcher_uploads_with_maps_format_and_skip_invalid(
    api: APIClient,
    member: Any,
    project: Any,
    set_role: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    set_role(project, member, Membership.Role.RESEARCHER)
    api.force_authenticate(member)
    text = (
        b'{"q": "one", "responses": ["a", "b"]}\n'
        b'{"q": "two", "responses": ["a"]}\n'
        b'{"q": "three", "responses": ["c", "d"]}\n'
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            create_url(project),
            {
                "file": SimpleUploadedFile("data.txt", text),
                "format": "jsonl",
                "maps": ["prompt=q"],
                "skip_invalid": True,
            },
            format="multipart",
        )
    assert response.status_code == 202
    batch = ImportBatch.objects.get(pk=response.json()["id"])
    assert (batch.status, batch.created, batch.invalid) == ("succeeded", 2, 1)
    assert batch.errors == [
        {"line": 2, "field": "responses", "reason": "must be a list of at least 2 responses"}
    ]
    assert batch.created_by == member


def test_invalid_input_is_a_400_naming_the_field(
    api: APIClient, owner: Any, project: Any, settings: Any
) -> None:
    api.force_authenticate(owner)
    no_file = api.post(create_url(project), {}, format="multipart")
    assert no_file.status_code == 400 and "file" in no_file.json()
    bad_map = api.post(
        create_url(project), {"file": upload(), "maps": ["nonsense"]}, format="multipart"
    )
    assert bad_map.status_code == 400 and "--map" in json.dumps(bad_map.json()["maps"])
    settings.IMPORT_MAX_BYTES = 10
    too_big = api.post(create_url(project), {"file": upload()}, format="multipart")
    assert too_big.status_code == 400
    assert "over the import limit" in too_big.json()["file"][0]
    assert not ImportBatch.objects.exists()


def test_an_annotator_member_gets_403(api: APIClient, member: Any, project: Any) -> None:
    api.force_authenticate(member)
    assert api.post(create_url(project), {"file": upload()}, format="multipart").status_code == 403
    batch = ImportBatch.objects.create(project=project, filename="f.jsonl")
    assert api.get(reverse("api-import", args=[project.slug, batch.pk])).status_code == 403
    assert ImportBatch.objects.count() == 1


def test_an_outsider_gets_404(api: APIClient, outsider: Any, project: Any) -> None:
    api.force_authenticate(outsider)
    assert api.post(create_url(project), {"file": upload()}, format="multipart").status_code == 404
    batch = ImportBatch.objects.create(project=project, filename="f.jsonl")
    assert api.get(reverse("api-import", args=[project.slug, batch.pk])).status_code == 404


def test_an_anonymous_client_gets_401(api: APIClient, project: Any) -> None:
    assert api.post(create_url(project), {"file": upload()}, format="multipart").status_code == 401
    batch = ImportBatch.objects.create(project=project, filename="f.jsonl")
    assert api.get(reverse("api-import", args=[project.slug, batch.pk])).status_code == 401


def test_a_batch_of_another_project_is_404(
    api: APIClient, owner: Any, project: Any, make_project: Any
) -> None:
    other = make_project("other")  # owner is admin there too
    batch = ImportBatch.objects.create(project=other, filename="f.jsonl")
    api.force_authenticate(owner)
    assert api.get(reverse("api-import", args=[project.slug, batch.pk])).status_code == 404
    assert api.get(reverse("api-import", args=[other.slug, batch.pk])).status_code == 200
