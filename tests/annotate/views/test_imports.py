"""The upload page and the import status page (with its HTMX poll)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from annotate.models import ImportBatch, Item, Membership
from config.celery import app as celery_app

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def setup(settings: Any, tmp_path: Path) -> Iterator[None]:
    """Uploads land in a temporary folder; Celery runs the import inline."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.VAR_DIR = tmp_path / "var"
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = eager


def jsonl_upload(name: str = "items.jsonl", rows: int = 3, start: int = 100) -> SimpleUploadedFile:
    text = "".join(
        json.dumps({"id": f"u{i}", "prompt": f"p{i}", "responses": [f"a{i}", f"b{i}"]}) + "\n"
        for i in range(start, start + rows)
    )
    return SimpleUploadedFile(name, text.encode())


def upload_url(project: Any) -> str:
    return reverse("import_upload", args=[project.slug])


def post_upload(
    client: Client, project: Any, capture: Any, upload: SimpleUploadedFile, **fields: Any
) -> Any:
    with capture(execute=True):
        return client.post(upload_url(project), {"file": upload, **fields})


def test_the_owner_uploads_a_file_and_sees_it_imported(
    client: Client, owner: Any, project: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(owner)
    page = client.get(upload_url(project))
    assert page.status_code == 200 and b"Upload and import" in page.content

    response = post_upload(client, project, django_capture_on_commit_callbacks, jsonl_upload())
    batch = ImportBatch.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("import_status", args=[project.slug, batch.pk])
    assert batch.status == ImportBatch.Status.SUCCEEDED and batch.created == 3
    assert batch.created_by == owner
    assert project.items.filter(external_id__startswith="u").count() == 3
    assert not Path(batch.upload_path).exists()  # the stored upload is removed after the import

    status = client.get(response["Location"])
    assert status.status_code == 200
    assert b"succeeded" in status.content
    assert b"created 3 \xc2\xb7 already present 0 \xc2\xb7 invalid 0" in status.content


def test_a_researcher_uploads_a_csv_with_maps(
    client: Client,
    member: Any,
    project: Any,
    set_role: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    set_role(project, member, Membership.Role.RESEARCHER)
    client.force_login(member)
    csv = SimpleUploadedFile(
        "export.csv", b"question,first,second\nWhat is 2+2?,4,5\nCapital of France?,Paris,Rome\n"
    )
    maps = "prompt=question\nresponse_1=first\nresponse_2=second"
    response = post_upload(client, project, django_capture_on_commit_callbacks, csv, maps=maps)
    assert response.status_code == 302
    batch = ImportBatch.objects.get()
    assert (batch.status, batch.created, batch.created_by) == ("succeeded", 2, member)
    item = Item.objects.get(project=project, prompt="What is 2+2?")
    assert [r["text"] for r in item.responses] == ["4", "5"]


def test_an_upload_with_an_invalid_row_fails_and_the_status_page_lists_it(
    client: Client, owner: Any, project: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(owner)
    bad = SimpleUploadedFile(
        "bad.jsonl", b'{"id": "x1", "prompt": "p", "responses": ["a", "b"]}\n{"id": "x2"}\n'
    )
    response = post_upload(client, project, django_capture_on_commit_callbacks, bad)
    batch = ImportBatch.objects.get()
    assert batch.status == ImportBatch.Status.FAILED
    assert batch.errors[0]["line"] == 2
    assert not project.items.filter(external_id__startswith="x").exists()
    page = client.get(response["Location"])
    assert b"failed" in page.content and b"<td>2</td>" in page.content


def test_a_file_over_the_limit_is_refused_on_the_form(
    client: Client, owner: Any, project: Any, settings: Any
) -> None:
    settings.IMPORT_MAX_BYTES = 10
    client.force_login(owner)
    response = client.post(upload_url(project), {"file": jsonl_upload()})
    assert response.status_code == 200
    assert b"over the import limit of 10 bytes" in response.content
    assert not ImportBatch.objects.exists()


def test_a_malformed_map_is_refused_on_the_form(client: Client, owner: Any, project: Any) -> None:
    client.force_login(owner)
    response = client.post(upload_url(project), {"file": jsonl_upload(), "maps": "nonsense"})
    assert response.status_code == 200 and b"--map" in response.content
    assert not ImportBatch.objects.exists()


def test_an_annotator_member_may_not_upload(client: Client, member: Any, project: Any) -> None:
    client.force_login(member)
    assert client.get(upload_url(project)).status_code == 403
    assert client.post(upload_url(project), {"file": jsonl_upload()}).status_code == 403
    assert not ImportBatch.objects.exists()


def test_an_outsider_gets_404(client: Client, outsider: Any, project: Any) -> None:
    client.force_login(outsider)
    assert client.get(upload_url(project)).status_code == 404
    assert client.post(upload_url(project), {"file": jsonl_upload()}).status_code == 404


def test_an_anonymous_visitor_is_sent_to_log_in(client: Client, project: Any) -> None:
    response = client.get(upload_url(project))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    batch = ImportBatch.objects.create(project=project, filename="f.jsonl")
    status = client.get(reverse("import_status", args=[project.slug, batch.pk]))
    assert status.status_code == 302 and status["Location"].startswith(reverse("login"))


def status_url(project: Any, batch: ImportBatch) -> str:
    return reverse("import_status", args=[project.slug, batch.pk])


def test_the_status_poll_continues_while_running_and_stops_with_286_when_finished(
    client: Client, owner: Any, project: Any
) -> None:
    client.force_login(owner)
    batch = ImportBatch.objects.create(
        project=project, filename="f.jsonl", status=ImportBatch.Status.QUEUED
    )
    polling = client.get(status_url(project, batch), headers={"HX-Request": "true"})
    assert polling.status_code == 200
    assert b'hx-trigger="every 1s"' in polling.content
    assert b"<html" not in polling.content  # only the partial

    ImportBatch.objects.filter(pk=batch.pk).update(
        status=ImportBatch.Status.SUCCEEDED, created=7, message="f.jsonl: created 7"
    )
    done = client.get(status_url(project, batch), headers={"HX-Request": "true"})
    assert done.status_code == 286
    assert b"created 7" in done.content and b"hx-trigger" not in done.content


def test_a_failed_import_also_stops_the_poll(client: Client, owner: Any, project: Any) -> None:
    client.force_login(owner)
    batch = ImportBatch.objects.create(
        project=project, filename="f.jsonl", status=ImportBatch.Status.FAILED
    )
    assert client.get(status_url(project, batch), headers={"HX-Request": "true"}).status_code == 286


def test_the_status_page_of_another_projects_batch_is_404(
    client: Client, owner: Any, project: Any, make_project: Any
) -> None:
    other = make_project("other")
    batch = ImportBatch.objects.create(project=other, filename="f.jsonl")
    client.force_login(owner)
    assert client.get(status_url(project, batch)).status_code == 404


def test_the_status_page_follows_the_same_access_rules(
    client: Client, member: Any, outsider: Any, project: Any, set_role: Any
) -> None:
    batch = ImportBatch.objects.create(project=project, filename="f.jsonl")
    client.force_login(member)
    assert client.get(status_url(project, batch)).status_code == 403
    set_role(project, member, Membership.Role.RESEARCHER)
    assert client.get(status_url(project, batch)).status_code == 200
    client.force_login(outsider)
    assert client.get(status_url(project, batch)).status_code == 404
