"""`manage.py import_items`: exit status, the summary line on stdout, bad rows on stderr."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from annotate.models import ImportBatch, Item, Project

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def var_dir(settings: Any, tmp_path: Path) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.VAR_DIR = tmp_path / "var"


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_items", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def items_file(tmp_path: Path, n: int = 3, broken: dict[int, str] | None = None) -> Path:
    lines = [
        json.dumps({"id": f"i{i}", "prompt": f"p{i}", "responses": [f"a{i}", f"b{i}"]})
        for i in range(n)
    ]
    for line_no, text in (broken or {}).items():
        lines[line_no - 1] = text
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_it_creates_the_project_and_prints_the_summary_line(tmp_path: Path) -> None:
    out, err = run(str(items_file(tmp_path)), "--project", "new-one")
    assert "Created project 'new-one' (pairwise)." in out
    assert out.strip().endswith("items.jsonl: created 3, already present 0, invalid 0")
    assert err == ""
    assert Project.objects.get(slug="new-one").items.count() == 3


def test_a_second_run_reports_everything_already_present(tmp_path: Path) -> None:
    path = str(items_file(tmp_path))
    run(path, "--project", "p")
    out, _ = run(path, "--project", "p")
    assert "Created project" not in out
    assert "created 0, already present 3, invalid 0" in out


def test_it_adopts_k_for_a_new_project(tmp_path: Path) -> None:
    path = tmp_path / "four.jsonl"
    path.write_text(json.dumps({"prompt": "p", "responses": ["a", "b", "c", "d"]}) + "\n")
    run(str(path), "--project", "four")
    project = Project.objects.get(slug="four")
    assert (project.task_type, project.num_responses) == ("ranking", 4)


def test_pandalm_with_maps_imports_999(shared_data: Path) -> None:
    maps = [
        "prompt=instruction+input",
        "id=idx",
        "response_1=response1",
        "response_2=response2",
        "model_1=cmp_key|split:_:0",
        "model_2=cmp_key|split:_:1",
    ]
    args = [str(shared_data / "pandalm" / "testset-v1.json"), "--project", "pandalm"]
    for spec in maps:
        args += ["--map", spec]
    out, _ = run(*args)
    assert "created 999, already present 0, invalid 0" in out
    assert Item.objects.get(external_id="0").model_names == ["bloom-7b", "llama-7b"]


def test_a_broken_line_fails_with_exit_status_1_naming_the_line_and_adds_no_project(
    tmp_path: Path,
) -> None:
    path = items_file(tmp_path, n=20, broken={17: '{"id": "i16", "prompt": '})
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as exc:
        call_command("import_items", str(path), "--project", "fresh", stdout=out, stderr=err)
    assert exc.value.returncode == 1
    assert "nothing imported: 1 invalid rows" in str(exc.value)
    assert "items.jsonl: line 17: json: not valid JSON" in err.getvalue()
    assert "Created project" not in out.getvalue()
    assert not Project.objects.filter(slug="fresh").exists()
    assert not Item.objects.exists() and not ImportBatch.objects.exists()


def test_a_file_over_the_size_limit_is_refused_and_adds_no_project(
    tmp_path: Path, settings: Any
) -> None:
    settings.IMPORT_MAX_BYTES = 10
    out = io.StringIO()
    with pytest.raises(CommandError, match="over the import limit of 10 bytes"):
        call_command("import_items", str(items_file(tmp_path)), "--project", "fresh", stdout=out)
    assert "Created project" not in out.getvalue()
    assert not Project.objects.exists() and not Item.objects.exists()


def test_a_rejected_import_into_an_existing_project_keeps_the_project(
    tmp_path: Path, make_project: Any
) -> None:
    make_project("kept")
    path = items_file(tmp_path, n=4, broken={2: json.dumps({"id": "x", "prompt": "p"})})
    with pytest.raises(CommandError):
        call_command("import_items", str(path), "--project", "kept", stderr=io.StringIO())
    assert Project.objects.filter(slug="kept").exists()
    assert not Item.objects.filter(project__slug="kept").exists()


def test_skip_invalid_imports_the_rest_and_names_the_skipped_lines_and_rejects_file(
    tmp_path: Path,
) -> None:
    path = items_file(tmp_path, n=5, broken={2: "nope", 4: json.dumps({"prompt": "p"})})
    out, err = run(str(path), "--project", "p", "--skip-invalid")
    assert "created 3, already present 0, invalid 2" in out
    assert "items.jsonl: skipped line 2: json:" in err
    assert "items.jsonl: skipped line 4: responses:" in err
    assert "Rejected rows written to " in err and ".rejects.jsonl" in err


def test_a_file_over_the_limit_fails_with_the_reason(tmp_path: Path, settings: Any) -> None:
    settings.IMPORT_MAX_BYTES = 10
    with pytest.raises(CommandError, match="over the import limit of 10 bytes"):
        run(str(items_file(tmp_path)), "--project", "p")


def test_a_task_type_that_contradicts_the_project_fails(tmp_path: Path, make_project: Any) -> None:
    make_project("pw")
    with pytest.raises(CommandError, match="is pairwise, not ranking"):
        run(str(items_file(tmp_path)), "--project", "pw", "--type", "ranking")


def test_a_bad_map_fails_before_reading(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="--map"):
        run(str(items_file(tmp_path)), "--project", "p", "--map", "nonsense")
