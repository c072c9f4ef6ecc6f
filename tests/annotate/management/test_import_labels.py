"""`manage.py import_labels`: exit status, the summary line on stdout, bad rows on stderr."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from annotate.models import Judge, Judgment

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def var_dir(settings: Any, tmp_path: Path) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.VAR_DIR = tmp_path / "var"


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_labels", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def labels_file(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_ai_labels_import_as_a_judge_and_print_the_summary_line(
    tmp_path: Path, make_project: Any
) -> None:
    make_project("p", items=3)
    path = labels_file(tmp_path, [{"id": str(i), "label": "A"} for i in range(3)])
    out, err = run(str(path), "--project", "p", "--source", "gpt-4o")
    assert out.strip() == "labels.jsonl: created 3, already present 0, invalid 0"
    assert err == ""
    assert Judgment.objects.filter(judge__name="gpt-4o", kind="ai").count() == 3
    again, _ = run(str(path), "--project", "p", "--source", "gpt-4o")
    assert "created 0, already present 3, invalid 0" in again


def test_human_labels_import_with_kind_human(tmp_path: Path, make_project: Any) -> None:
    make_project("p", items=2)
    path = labels_file(tmp_path, [{"id": "0", "label": "B"}, {"id": "1", "label": "tie"}])
    out, _ = run(str(path), "--project", "p", "--source", "vendor-1", "--kind", "human")
    assert "created 2" in out
    assert set(Judgment.objects.values_list("kind", "external_annotator")) == {
        ("human", "vendor-1")
    }
    assert not Judge.objects.exists()


def test_gpt35_garbage_fails_with_exit_status_1_and_names_every_line(
    shared_data: Path, tmp_path: Path
) -> None:
    call_command(
        "import_items",
        str(shared_data / "pandalm" / "testset-v1.json"),
        "--project",
        "pandalm",
        *["--map", "id=idx", "--map", "response_1=response1", "--map", "response_2=response2"],
        *["--map", "prompt=instruction+input"],
        stdout=io.StringIO(),
    )
    path = str(shared_data / "pandalm" / "gpt-3.5-turbo-testset-v1.json")
    args = [path, "--project", "pandalm", "--source", "gpt-3.5-turbo"]
    args += ["--map", "id=idx", "--map", "label=gpt_result"]
    err = io.StringIO()
    with pytest.raises(CommandError) as exc:
        call_command("import_labels", *args, stderr=err)
    assert exc.value.returncode == 1
    assert "nothing imported: 25 invalid rows" in str(exc.value)
    bad_lines = [
        line for line in err.getvalue().splitlines() if "'garbage' is not a verdict" in line
    ]
    assert len(bad_lines) == 25
    assert all(line.startswith("gpt-3.5-turbo-testset-v1.json: line ") for line in bad_lines)
    assert not Judgment.objects.exists()

    out, err2 = run(*args, "--skip-invalid")
    assert "created 974, already present 0, invalid 25" in out
    assert "Rejected rows written to" in err2


def test_an_unknown_project_fails(tmp_path: Path) -> None:
    path = labels_file(tmp_path, [{"id": "0", "label": "A"}])
    with pytest.raises(CommandError, match="no project 'nope': import its items first"):
        run(str(path), "--project", "nope", "--source", "gpt-4")


def test_an_unknown_item_id_is_named_on_stderr(tmp_path: Path, make_project: Any) -> None:
    make_project("p", items=1)
    path = labels_file(tmp_path, [{"id": "0", "label": "A"}, {"id": "ghost", "label": "A"}])
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_labels", str(path), "--project", "p", "--source", "x", stderr=err)
    assert "labels.jsonl: line 2: id: no item 'ghost' in project 'p'" in err.getvalue()


def test_an_aspect_the_project_lacks_fails(tmp_path: Path, make_project: Any) -> None:
    make_project("p", items=1)
    path = labels_file(tmp_path, [{"id": "0", "label": "A"}])
    with pytest.raises(CommandError, match="aspect 'style' is not one of the project's"):
        run(str(path), "--project", "p", "--source", "x", "--aspect", "style")
