from __future__ import annotations

import json
from typing import Any

import pytest

from annotate.models import Export
from annotate.services import exports as service
from config.celery import app as celery_app
from tests.annotate.api.clients import token_client
from tests.factories import label_every_item

pytestmark = pytest.mark.django_db


@pytest.fixture
def labelled(project: Any) -> Any:
    return label_every_item(project, strength=-2)


@pytest.fixture
def eager() -> Any:
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = before


def test_an_export_runs_on_the_worker_and_its_files_download(
    owner: Any, labelled: Any, eager: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client = token_client(owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/projects/{labelled.slug}/exports/",
            {"shape": "dpo", "file_format": "jsonl", "test_fraction": 0.0},
            format="json",
        )
    assert response.status_code == 202
    export_id = response.json()["id"]
    detail = client.get(f"/api/projects/{labelled.slug}/exports/{export_id}/").json()
    assert detail["status"] == "succeeded" and detail["rows"] == 5 and detail["percent"] == 100
    assert {f["name"] for f in detail["files"]} == {"train.jsonl", "README.md"}
    download = client.get(
        f"/api/projects/{labelled.slug}/exports/{export_id}/download/?file=train.jsonl"
    )
    assert download.status_code == 200
    rows = [json.loads(line) for line in b"".join(download.streaming_content).splitlines()]
    assert rows[0]["chosen_model"] == "model-1" and rows[0]["margin"] == 2.0


def test_the_list_shows_exports_newest_first(owner: Any, labelled: Any) -> None:
    for shape in ("dpo", "raw"):
        service.export_create(project=labelled, shape=shape, file_format="jsonl", enqueue=False)
    rows = token_client(owner).get(f"/api/projects/{labelled.slug}/exports/").json()["results"]
    assert [r["shape"] for r in rows] == ["raw", "dpo"]


def test_bad_options_are_a_400(owner: Any, labelled: Any) -> None:
    client = token_client(owner)
    for body in (
        {"shape": "sft"},
        {"shape": "dpo", "min_agreement": 3},
        {"shape": "dpo", "aspect": "nope"},
    ):
        assert (
            client.post(f"/api/projects/{labelled.slug}/exports/", body, format="json").status_code
            == 400
        )
    assert not Export.objects.exists()


def test_a_missing_or_unfinished_file_is_not_found(owner: Any, labelled: Any) -> None:
    export = service.export_create(
        project=labelled, shape="dpo", file_format="jsonl", enqueue=False
    )
    client = token_client(owner)
    assert (
        client.get(
            f"/api/projects/{labelled.slug}/exports/{export.pk}/download/?file=train.jsonl"
        ).status_code
        == 404
    )
    assert client.get(f"/api/projects/{labelled.slug}/exports/999/").status_code == 404


def test_researchers_may_export(member: Any, set_role: Any, labelled: Any) -> None:
    set_role(labelled, member, "researcher")
    response = token_client(member).post(
        f"/api/projects/{labelled.slug}/exports/", {"shape": "raw"}, format="json"
    )
    assert response.status_code == 202


@pytest.mark.parametrize(
    "path", ["exports/", "exports/{id}/", "exports/{id}/download/?file=train.jsonl"]
)
def test_annotators_are_forbidden_and_outsiders_see_nothing(
    member: Any, outsider: Any, labelled: Any, path: str
) -> None:
    export = service.export_create(
        project=labelled, shape="dpo", file_format="jsonl", enqueue=False
    )
    export = service.export_run(export=service.export_claim(export_id=export.pk))
    url = f"/api/projects/{labelled.slug}/" + path.format(id=export.pk)
    assert token_client(member).get(url).status_code == 403
    assert token_client(outsider).get(url).status_code == 404
    assert (
        token_client(member)
        .post(f"/api/projects/{labelled.slug}/exports/", {"shape": "dpo"}, format="json")
        .status_code
        == 403
    )
    assert (
        token_client(outsider)
        .post(f"/api/projects/{labelled.slug}/exports/", {"shape": "dpo"}, format="json")
        .status_code
        == 404
    )
