from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from annotate.models import Export
from annotate.services import exports as service
from tests.factories import label_every_item

pytestmark = pytest.mark.django_db


@pytest.fixture
def labelled(project: Any) -> Any:
    return label_every_item(project, strength=1)


@pytest.fixture
def done(labelled: Any) -> Export:
    export = service.export_create(
        project=labelled, shape="dpo", file_format="jsonl", enqueue=False
    )
    return service.export_run(export=service.export_claim(export_id=export.pk))


def test_the_page_shows_the_form_and_the_exports(client: Any, owner: Any, done: Export) -> None:
    client.force_login(owner)
    response = client.get(reverse("exports", args=[done.project.slug]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="shape"' in html and 'name="min_agreement"' in html
    assert "DPO / TRL pairs" in html and "succeeded" in html


def test_starting_an_export_queues_it_after_commit(
    client: Any,
    owner: Any,
    labelled: Any,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: Any,
) -> None:
    queued: list[int] = []
    monkeypatch.setattr(service, "_enqueue", queued.append)
    client.force_login(owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("exports", args=[labelled.slug]),
            {
                "shape": "reward",
                "file_format": "parquet",
                "source": "human",
                "test_fraction": "0.2",
                "keep_ties": "on",
            },
        )
    assert response.status_code == 302
    export = Export.objects.get()
    assert queued == [export.pk]
    assert (export.shape, export.file_format, export.created_by) == ("reward", "parquet", owner)
    assert export.filters["test_fraction"] == 0.2 and export.filters["keep_ties"] is True


def test_invalid_options_redisplay_the_form(client: Any, owner: Any, labelled: Any) -> None:
    client.force_login(owner)
    response = client.post(
        reverse("exports", args=[labelled.slug]), {"shape": "sft", "file_format": "jsonl"}
    )
    assert response.status_code == 200
    assert not Export.objects.exists()


def test_the_list_partial_stops_polling_when_nothing_runs(
    client: Any, owner: Any, done: Export
) -> None:
    client.force_login(owner)
    response = client.get(
        reverse("export_list", args=[done.project.slug]), headers={"HX-Request": "true"}
    )
    assert response.status_code == 286
    Export.objects.filter(pk=done.pk).update(status="running")
    response = client.get(
        reverse("export_list", args=[done.project.slug]), headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert 'hx-trigger="every 1s"' in response.content.decode()


def test_the_detail_page_shows_the_card_and_files(client: Any, owner: Any, done: Export) -> None:
    client.force_login(owner)
    response = client.get(reverse("export_detail", args=[done.project.slug, done.pk]))
    html = response.content.decode()
    assert "Dataset card" in html and "train.jsonl" in html and "README.md" in html


def test_a_file_downloads(client: Any, owner: Any, done: Export) -> None:
    client.force_login(owner)
    response = client.get(
        reverse("export_download", args=[done.project.slug, done.pk, "train.jsonl"])
    )
    assert response.status_code == 200
    assert b"".join(response.streaming_content).count(b"\n") == 5
    assert "attachment" in response["Content-Disposition"]


def test_a_name_outside_the_export_is_not_found(client: Any, owner: Any, done: Export) -> None:
    client.force_login(owner)
    for name in ("../../../etc/passwd", "nope.jsonl"):
        assert (
            client.get(
                reverse("export_download", args=[done.project.slug, done.pk, name])
            ).status_code
            == 404
        )


def test_the_zip_holds_every_file(client: Any, owner: Any, done: Export) -> None:
    client.force_login(owner)
    response = client.get(reverse("export_download_zip", args=[done.project.slug, done.pk]))
    assert response.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).namelist()
    assert sorted(names) == ["README.md", "train.jsonl"]


def test_researchers_can_download(client: Any, member: Any, set_role: Any, done: Export) -> None:
    set_role(done.project, member, "researcher")
    client.force_login(member)
    assert (
        client.get(
            reverse("export_download", args=[done.project.slug, done.pk, "train.jsonl"])
        ).status_code
        == 200
    )


@pytest.mark.parametrize(
    "name, args",
    [
        ("exports", []),
        ("export_list", []),
        ("export_detail", ["pk"]),
        ("export_download", ["pk", "train.jsonl"]),
        ("export_download_zip", ["pk"]),
    ],
)
def test_annotators_are_forbidden_and_outsiders_see_nothing(
    client: Any, member: Any, outsider: Any, done: Export, name: str, args: list
) -> None:
    target = reverse(name, args=[done.project.slug, *(done.pk if a == "pk" else a for a in args)])
    client.force_login(member)
    assert client.get(target).status_code == 403
    client.force_login(outsider)
    assert client.get(target).status_code == 404


def test_an_export_of_another_project_is_not_found(
    client: Any, owner: Any, done: Export, make_project: Any
) -> None:
    other = make_project("other")
    client.force_login(owner)
    assert client.get(reverse("export_detail", args=[other.slug, done.pk])).status_code == 404


def test_delete_removes_the_export_and_its_files(client: Any, owner: Any, done: Export) -> None:
    client.force_login(owner)
    folder = Path(done.path)
    response = client.post(reverse("export_delete", args=[done.project.slug, done.pk]))
    assert response.status_code == 302
    assert not Export.objects.exists() and not folder.exists()


def test_delete_forbids_annotators(client: Any, member: Any, done: Export) -> None:
    client.force_login(member)
    assert (
        client.post(reverse("export_delete", args=[done.project.slug, done.pk])).status_code == 403
    )
    assert Export.objects.exists()


def test_the_project_page_links_researchers_to_the_new_pages(
    client: Any, owner: Any, member: Any, project: Any
) -> None:
    client.force_login(owner)
    html = client.get(reverse("project", args=[project.slug])).content.decode()
    for name in ("quality", "leaderboard", "exports"):
        assert reverse(name, args=[project.slug]) in html
    client.force_login(member)
    html = client.get(reverse("project", args=[project.slug])).content.decode()
    assert reverse("exports", args=[project.slug]) not in html
