from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from annotate.models import Export, FinalLabel
from tests.factories import label_every_item

pytestmark = pytest.mark.django_db


@pytest.fixture
def labelled(project: Any, settings: Any, tmp_path: Path) -> Any:
    settings.EXPORT_DIR = tmp_path / "exports"
    return label_every_item(project, strength=2)


def test_it_exports_in_process_and_copies_the_folder(
    labelled: Any, tmp_path: Path, capsys: Any
) -> None:
    out = tmp_path / "dataset"
    call_command(
        "export_dataset",
        "--project",
        labelled.slug,
        "--shape",
        "dpo",
        "--format",
        "jsonl",
        "--out",
        str(out),
    )
    assert "5 rows" in capsys.readouterr().out
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and (out / "README.md").exists()
    assert Export.objects.get().status == "succeeded"


def test_it_can_queue_the_export_instead(
    labelled: Any, monkeypatch: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from annotate.services import exports

    queued: list[int] = []
    monkeypatch.setattr(exports, "_enqueue", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("export_dataset", "--project", labelled.slug, "--shape", "raw", "--enqueue")
    assert queued == [Export.objects.get().pk]


def test_it_refuses_bad_options_and_unknown_projects(labelled: Any) -> None:
    with pytest.raises(CommandError):
        call_command("export_dataset", "--project", "nope")
    with pytest.raises(CommandError):
        call_command("export_dataset", "--project", labelled.slug, "--aspect", "nope")


def test_compute_labels_prints_a_summary(labelled: Any, capsys: Any) -> None:
    call_command("compute_labels", "--project", labelled.slug, "--method", "dawid_skene")
    assert (
        "5 final labels (5 human, 0 AI, 0 AI labels corrected from human labels) by dawid_skene"
        in (capsys.readouterr().out)
    )
    assert FinalLabel.objects.count() == 5
