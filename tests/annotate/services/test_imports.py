"""annotate.services.imports on real data (PandaLM, hh-rlhf), on broken files, and on the demo."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, reset_queries

from annotate.models import ImportBatch, Item, Judge, Judgment, Project
from annotate.services import imports
from annotate.services.imports import (
    ImportRefused,
    ImportRejected,
    items_import,
    labels_import,
    project_ensure,
)

pytestmark = pytest.mark.django_db

PANDALM_MAPS = [
    "prompt=instruction+input",
    "id=idx",
    "response_1=response1",
    "response_2=response2",
    "model_1=cmp_key|split:_:0",
    "model_2=cmp_key|split:_:1",
]
DEMO = Path(__file__).resolve().parents[3] / "annotate" / "demo"


@pytest.fixture(autouse=True)
def var_dir(settings: Any, tmp_path: Path) -> Path:
    """Rejects files go to a temporary folder, not the repository's var/; users are made with a
    fast password hasher (the default one costs a second per user here)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.VAR_DIR = tmp_path / "var"
    return settings.VAR_DIR


def row(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"q{i}",
        "prompt": f"Question {i}?",
        "responses": [{"model": "m1", "text": f"yes {i}"}, {"model": "m2", "text": f"no {i}"}],
        **extra,
    }


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), "utf-8"
    )
    return path


@pytest.fixture
def pandalm(shared_data: Path) -> Project:
    project, _ = project_ensure(slug="pandalm")
    items_import(
        project=project, path=shared_data / "pandalm" / "testset-v1.json", maps=PANDALM_MAPS
    )
    return project


# --- Real data ----------------------------------------------------------------------------------


def test_pandalm_imports_as_999_pairwise_items_and_a_second_import_adds_none(
    shared_data: Path,
) -> None:
    project, created = project_ensure(slug="pandalm")
    assert created and project.task_type == "pairwise" and project.num_responses == 2
    path = shared_data / "pandalm" / "testset-v1.json"

    first = items_import(project=project, path=path, maps=PANDALM_MAPS, adopt_k=True)
    assert (first.created, first.skipped, first.invalid) == (999, 0, 0)
    assert project.items.count() == 999

    item = project.items.get(external_id="0")
    assert item.prompt.startswith("The sentence you are given might be too wordy")
    assert item.prompt.endswith("please let me know.")  # instruction + blank line + input
    assert "\n\nIf you have any questions" in item.prompt
    assert item.responses == [
        {
            "model": "bloom-7b",
            "text": "If you have any questions about my rate, please let me know.",
        },
        {"model": "llama-7b", "text": "If you have any questions, please let me know."},
    ]
    assert item.metadata == {
        "motivation_app": "Grammarly",
        "annotator1": 2,
        "annotator2": 2,
        "annotator3": 2,
    }
    batch = ImportBatch.objects.get(pk=first.batch_id)
    assert batch.status == ImportBatch.Status.SUCCEEDED and batch.created == 999
    assert project.items.filter(import_batch=batch).count() == 999

    second = items_import(project=project, path=path, maps=PANDALM_MAPS)
    assert (second.created, second.skipped, second.invalid) == (0, 999, 0)
    assert project.items.count() == 999


def test_pandalm_items_with_a_blank_input_get_the_instruction_alone(
    pandalm: Project, shared_data: Path
) -> None:
    # The stored copy has blank strings, not the NaN tokens some copies have (test_records
    # covers NaN): both are skipped by the join.
    source = json.loads((shared_data / "pandalm" / "testset-v1.json").read_text("utf-8"))
    blank = [r for r in source if not str(r["input"]).strip() or r["input"] != r["input"]]
    assert blank
    for original in blank[:5]:
        item = pandalm.items.get(external_id=str(original["idx"]))
        assert item.prompt == original["instruction"]


def test_hh_rlhf_imports_2312_items_each_with_an_imported_human_label(shared_data: Path) -> None:
    project, _ = project_ensure(slug="hh")
    result = items_import(
        project=project,
        path=shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz",
        adopt_k=True,
    )
    assert (result.created, result.invalid, result.labels) == (2312, 0, 2312)
    labels = Judgment.objects.filter(item__project=project)
    assert labels.count() == 2312
    assert set(labels.values_list("kind", "source", "task_type", "aspect").distinct()) == {
        ("human", "imported", "pairwise", "overall")
    }
    strengths = set(labels.values_list("value__strength", flat=True))
    assert strengths == {1, -1}  # chosen lands on both sides

    item = project.items.order_by("pk").first()
    assert item.is_chat and item.prompt[0]["role"] == "user"
    assert item.prompt[-1]["role"] == "user"  # the prompt ends where the answers begin
    assert item.external_id.startswith("sha256:")


# --- All or nothing, and --skip-invalid --------------------------------------------------------


def test_a_file_whose_line_17_is_broken_fails_naming_line_17_and_adds_nothing(
    make_project: Any, tmp_path: Path
) -> None:
    project = make_project("p")
    rows: list[Any] = [row(i) for i in range(30)]
    rows[16] = '{"id": "q16", "prompt": "broken'  # line 17
    path = write_jsonl(tmp_path / "items.jsonl", rows)

    with pytest.raises(ImportRejected) as exc:
        items_import(project=project, path=path, chunk_size=5)  # earlier chunks were written
    result = exc.value.result
    assert [(e.line, e.field) for e in result.errors] == [(17, "json")]
    assert result.invalid == 1 and "invalid 1" in str(exc.value)
    assert project.items.count() == 0
    batch = ImportBatch.objects.get(pk=result.batch_id)
    assert batch.status == ImportBatch.Status.FAILED
    assert batch.errors == [{"line": 17, "field": "json", "reason": result.errors[0].reason}]
    assert batch.message.startswith("nothing imported")


def test_every_invalid_row_is_reported_not_just_the_first(
    make_project: Any, tmp_path: Path
) -> None:
    project = make_project("p")
    rows: list[Any] = [row(i) for i in range(10)]
    rows[2] = {"id": "bad-prompt", "responses": ["a", "b"]}
    rows[7] = row(7, responses=["only one"])
    with pytest.raises(ImportRejected) as exc:
        items_import(project=project, path=write_jsonl(tmp_path / "items.jsonl", rows))
    assert [(e.line, e.field) for e in exc.value.result.errors] == [
        (3, "prompt"),
        (8, "responses"),
    ]


def test_skip_invalid_imports_the_valid_rows_and_writes_a_rejects_file(
    make_project: Any, tmp_path: Path, var_dir: Path
) -> None:
    project = make_project("p")
    rows: list[Any] = [row(i) for i in range(10)]
    rows[3] = "not json at all"
    rows[5] = row(5, responses=[{"model": "m", "text": "a"}, {"model": "m"}])
    result = items_import(
        project=project,
        path=write_jsonl(tmp_path / "items.jsonl", rows),
        skip_invalid=True,
        chunk_size=3,
    )
    assert (result.created, result.invalid) == (8, 2)
    assert project.items.count() == 8
    assert not project.items.filter(external_id="q5").exists()
    assert Path(result.rejects_path).parent == var_dir / "imports"
    rejects = [json.loads(line) for line in Path(result.rejects_path).read_text().splitlines()]
    assert [(r["line"], r["field"]) for r in rejects] == [(4, "json"), (6, "responses[1].text")]
    assert all(r["reason"] for r in rejects)
    assert rejects[1]["row"]["id"] == "q5"  # the rejected row itself, to fix and re-import
    assert ImportBatch.objects.get(pk=result.batch_id).rejects_path == result.rejects_path


def test_skip_invalid_with_nothing_invalid_leaves_no_rejects_file(
    make_project: Any, tmp_path: Path, var_dir: Path
) -> None:
    result = items_import(
        project=make_project("p"),
        path=write_jsonl(tmp_path / "items.jsonl", [row(1)]),
        skip_invalid=True,
    )
    assert result.rejects_path == ""
    assert not list((var_dir / "imports").glob("*"))


# --- Idempotency --------------------------------------------------------------------------------


def test_an_id_less_file_imported_twice_is_matched_on_content(
    make_project: Any, tmp_path: Path
) -> None:
    project = make_project("p")
    rows = [{"prompt": f"p{i}", "responses": [f"a{i}", f"b{i}"]} for i in range(6)]
    path = write_jsonl(tmp_path / "items.jsonl", rows)
    assert items_import(project=project, path=path).created == 6
    again = items_import(project=project, path=path, chunk_size=4)
    assert (again.created, again.skipped) == (0, 6)
    assert project.items.count() == 6
    assert all(i.external_id == f"sha256:{i.content_hash[:40]}" for i in project.items.all())


def test_a_repeated_row_inside_one_file_is_created_once(make_project: Any, tmp_path: Path) -> None:
    project = make_project("p")
    path = write_jsonl(tmp_path / "items.jsonl", [row(1), row(2), row(1)])
    result = items_import(project=project, path=path)
    assert (result.created, result.skipped) == (2, 1)


def test_the_same_ids_in_another_project_are_separate_items(
    make_project: Any, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "items.jsonl", [row(1), row(2)])
    assert items_import(project=make_project("a"), path=path).created == 2
    assert items_import(project=make_project("b"), path=path).created == 2


def test_imported_items_keep_their_json_fields_intact(make_project: Any, tmp_path: Path) -> None:
    """Read back from the database: the PostgreSQL COPY path must store objects, not strings."""
    project = make_project("p")
    chat = [{"role": "user", "content": 'Hi "there"\n\\ é 😀'}]
    path = write_jsonl(
        tmp_path / "items.jsonl",
        [
            row(1, prompt=chat, metadata={"n": 1, "tags": ["a"]}, gold_label={"strength": -2}),
            row(2),
        ],
    )
    items_import(project=project, path=path)
    one, two = (Item.objects.get(project=project, external_id=i) for i in ("q1", "q2"))
    assert one.prompt == chat and one.is_chat
    assert one.responses == [{"model": "m1", "text": "yes 1"}, {"model": "m2", "text": "no 1"}]
    assert one.metadata == {"n": 1, "tags": ["a"]}
    assert one.is_gold and one.gold_label == {"strength": -2}
    assert two.gold_label is None and not two.is_gold
    assert two.route == Item.Route.PENDING and two.flags == {} and two.human_assigned == 0
    assert Item.objects.filter(project=project, responses__0__model="m1").count() == 2


def test_a_debug_mode_import_does_not_keep_the_sql_of_every_chunk(
    make_project: Any, tmp_path: Path, settings: Any
) -> None:
    settings.DEBUG = True  # Django then logs every query, each chunk's INSERT in full
    path = write_jsonl(tmp_path / "items.jsonl", [row(i) for i in range(40)])
    reset_queries()
    items_import(project=make_project("p"), path=path, chunk_size=2)
    assert len(connection.queries) < 10  # 20 chunks, each with a lookup and an insert


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's text types")
def test_a_nul_character_postgresql_cannot_store_is_an_invalid_row_naming_its_field(
    make_project: Any, tmp_path: Path
) -> None:
    project = make_project("p")
    rows: list[Any] = [row(i) for i in range(6)]
    rows[1] = row(1, metadata={"note": "a\x00b"})
    rows[3] = row(3, responses=["a", "b\x00"])
    rows[4] = row(4, id="q\x004")
    rows[5] = row(5, prompt="a literal backslash-u0000: \\u0000")  # storable: imported
    path = write_jsonl(tmp_path / "items.jsonl", rows)
    with pytest.raises(ImportRejected) as exc:
        items_import(project=project, path=path)
    assert [(e.line, e.field) for e in exc.value.result.errors] == [
        (2, "metadata"),
        (4, "responses"),
        (5, "id"),
    ]
    assert all("NUL" in e.reason for e in exc.value.result.errors)
    result = items_import(project=project, path=path, skip_invalid=True)
    assert (result.created, result.invalid) == (3, 3)
    assert project.items.get(external_id="q5").prompt.endswith("\\u0000")


def test_an_error_while_writing_stops_the_reading_thread(
    make_project: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(self: Any, chunk: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(imports._ItemWriter, "write", fail)
    path = write_jsonl(tmp_path / "items.jsonl", [row(i) for i in range(50)])
    project = make_project("p")
    with pytest.raises(RuntimeError, match="disk full"):
        items_import(project=project, path=path, chunk_size=2)
    assert not [t for t in threading.enumerate() if t.name == "import-reader"]
    batch = ImportBatch.objects.get(project=project)  # not left "running" for the upload page
    assert (batch.status, batch.message) == (
        ImportBatch.Status.FAILED,
        "nothing imported: disk full",
    )


def test_an_import_racing_another_on_the_same_ids_fails_cleanly_and_can_be_rerun(
    make_project: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project("p")
    path = write_jsonl(tmp_path / "items.jsonl", [row(i) for i in range(5)])
    items_import(project=project, path=write_jsonl(tmp_path / "other.jsonl", [row(3)]))
    # As if q3 had been written by an import that committed after this one looked.
    real = imports._item_pks
    monkeypatch.setattr(imports, "_item_pks", lambda project, ids: {})
    with pytest.raises(ImportRefused, match="at the same time") as exc:
        items_import(project=project, path=path)
    assert "import the file again" in str(exc.value)
    assert project.items.count() == 1
    assert ImportBatch.objects.filter(status=ImportBatch.Status.FAILED).count() == 1
    monkeypatch.setattr(imports, "_item_pks", real)
    result = items_import(project=project, path=path)
    assert (result.created, result.skipped) == (4, 1)


def test_an_error_while_reading_reaches_the_caller(
    make_project: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        yield from ()
        raise OSError("the disk went away")

    monkeypatch.setattr(imports.records, "read_records", broken)
    project = make_project("p")
    with pytest.raises(OSError, match="went away"):
        items_import(project=project, path=write_jsonl(tmp_path / "i.jsonl", [row(0)]))
    assert project.items.count() == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's deferred checks")
def test_after_an_import_foreign_keys_are_checked_at_commit_again(
    make_project: Any, tmp_path: Path
) -> None:
    project = make_project("p")
    items_import(project=project, path=write_jsonl(tmp_path / "i.jsonl", [row(0)]))
    # The import checks them after each COPY; code after it in the same transaction must get
    # Django's usual deferred checks back (a row may point at one created later).
    later = Project.objects.order_by("-pk").first().pk + 1000
    Item.objects.create(project_id=later, external_id="later", prompt="p", responses=[])
    Project.objects.create(pk=later, slug="later", name="Later")


def test_deleting_a_batch_keeps_its_items_and_unlinks_them(
    make_project: Any, tmp_path: Path
) -> None:
    project = make_project("p")
    result = items_import(project=project, path=write_jsonl(tmp_path / "i.jsonl", [row(0)]))
    ImportBatch.objects.get(pk=result.batch_id).delete()
    assert project.items.get().import_batch_id is None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL storage options")
def test_item_rows_of_a_few_kilobytes_are_stored_whole_and_uncompressed() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'annotate_item'")
        (options,) = cursor.fetchone()
    assert "toast_tuple_target=8160" in options


# --- Refusals -----------------------------------------------------------------------------------


def test_a_file_over_the_size_limit_is_refused_with_a_clear_message(
    make_project: Any, tmp_path: Path, settings: Any
) -> None:
    settings.IMPORT_MAX_BYTES = 100
    path = write_jsonl(tmp_path / "items.jsonl", [row(i) for i in range(5)])
    with pytest.raises(ImportRefused) as exc:
        items_import(project=make_project("p"), path=path)
    message = str(exc.value)
    assert "items.jsonl" in message and "over the import limit of 100 bytes" in message
    assert "IMPORT_MAX_BYTES" in message
    assert not ImportBatch.objects.exists()


def test_a_missing_file_is_refused(make_project: Any, tmp_path: Path) -> None:
    with pytest.raises(ImportRefused, match="cannot read the file"):
        items_import(project=make_project("p"), path=tmp_path / "nope.jsonl")


def test_a_malformed_map_is_refused_before_reading(make_project: Any, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "items.jsonl", [row(1)])
    with pytest.raises(ImportRefused, match="--map"):
        items_import(project=make_project("p"), path=path, maps=["prompt"])


def test_an_unreadable_file_fails_its_batch_and_is_refused(
    make_project: Any, tmp_path: Path
) -> None:
    path = tmp_path / "items.txt"
    path.write_text("hello")
    with pytest.raises(ImportRefused, match="cannot tell the format"):
        items_import(project=make_project("p"), path=path)
    assert ImportBatch.objects.get().status == ImportBatch.Status.FAILED


# --- K ------------------------------------------------------------------------------------------


def test_rows_with_the_wrong_number_of_responses_name_the_field(
    make_project: Any, tmp_path: Path
) -> None:
    project = make_project("k4", task_type="ranking", k=4)
    with pytest.raises(ImportRejected) as exc:
        items_import(project=project, path=write_jsonl(tmp_path / "items.jsonl", [row(1)]))
    (problem,) = exc.value.result.errors
    assert problem.field == "responses"
    assert "expected 4 responses (the project's K), got 2" in problem.reason


def test_a_new_project_adopts_k_from_the_first_row(tmp_path: Path) -> None:
    project, _ = project_ensure(slug="four")
    rows = [{"id": str(i), "prompt": "p", "responses": ["a", "b", "c", "d"]} for i in range(3)]
    result = items_import(
        project=project, path=write_jsonl(tmp_path / "items.jsonl", rows), adopt_k=True
    )
    assert result.created == 3
    project.refresh_from_db()
    assert (project.num_responses, project.task_type) == (4, "ranking")


def test_an_adopted_k_binds_the_rest_of_the_file(tmp_path: Path) -> None:
    project, _ = project_ensure(slug="mixed")
    rows = [
        {"id": "1", "prompt": "p", "responses": ["a", "b", "c"]},
        {"id": "2", "prompt": "p", "responses": ["a", "b"]},
    ]
    with pytest.raises(ImportRejected) as exc:
        items_import(
            project=project, path=write_jsonl(tmp_path / "items.jsonl", rows), adopt_k=True
        )
    assert [(e.line, e.field) for e in exc.value.result.errors] == [(2, "responses")]
    project.refresh_from_db()
    assert project.num_responses == 2  # the adoption was rolled back with the rest


def test_project_ensure_refuses_a_different_task_type_for_an_existing_project(
    make_project: Any,
) -> None:
    make_project("p")
    with pytest.raises(ImportRefused, match="is pairwise, not ranking"):
        project_ensure(slug="p", task_type="ranking")


def test_a_chosen_rejected_pair_is_refused_in_a_ranking_project(
    make_project: Any, tmp_path: Path
) -> None:
    project = make_project("r", task_type="ranking", k=2)
    path = write_jsonl(tmp_path / "items.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "b"}])
    with pytest.raises(ImportRejected) as exc:
        items_import(project=project, path=path)
    assert exc.value.result.errors[0].field == "chosen"
    assert "pairwise project" in exc.value.result.errors[0].reason


def test_a_gold_label_is_checked_against_the_project(make_project: Any, tmp_path: Path) -> None:
    project = make_project("p", allow_ties=False)
    path = write_jsonl(tmp_path / "items.jsonl", [row(1, gold_label={"strength": 0})])
    with pytest.raises(ImportRejected) as exc:
        items_import(project=project, path=path)
    assert exc.value.result.errors[0].field == "gold_label"
    assert "does not allow ties" in exc.value.result.errors[0].reason


# --- Labels -------------------------------------------------------------------------------------


def test_gpt35_labels_with_garbage_verdicts_are_rejected_by_default(
    pandalm: Project, shared_data: Path
) -> None:
    with pytest.raises(ImportRejected) as exc:
        labels_import(
            project=pandalm,
            path=shared_data / "pandalm" / "gpt-3.5-turbo-testset-v1.json",
            source="gpt-3.5-turbo",
            maps=["id=idx", "label=gpt_result"],
        )
    result = exc.value.result
    assert result.invalid == 25
    assert {e.field for e in result.errors} == {"label"}
    assert all("'garbage' is not a verdict" in e.reason for e in result.errors)
    assert not Judgment.objects.filter(item__project=pandalm).exists()
    assert not pandalm.judges.exists()  # a rejected import leaves no empty judge on the panel


def test_gpt35_labels_with_skip_invalid_import_974_as_an_imported_judge_idempotently(
    pandalm: Project, shared_data: Path
) -> None:
    def run() -> Any:
        return labels_import(
            project=pandalm,
            path=shared_data / "pandalm" / "gpt-3.5-turbo-testset-v1.json",
            source="gpt-3.5-turbo",
            maps=["id=idx", "label=gpt_result", "rationale=gpt_reason"],
            skip_invalid=True,
        )

    result = run()
    assert (result.created, result.invalid) == (974, 25)
    judge = Judge.objects.get(name="gpt-35-turbo")
    assert judge.is_imported and list(pandalm.judges.all()) == [judge]
    judgments = Judgment.objects.filter(judge=judge)
    assert judgments.count() == 974
    assert set(judgments.values_list("kind", "prompt_version", "source").distinct()) == {
        ("ai", "imported", "gpt-3.5-turbo")
    }
    first = judgments.get(item__external_id="0")
    assert first.value == {"strength": 1}  # "1": response 1 is better
    assert first.rationale.startswith("Response 1 is better")
    assert set(judgments.values_list("value__strength", flat=True)) == {1, 0, -1}

    again = run()
    assert (again.created, again.skipped, again.invalid) == (0, 974, 25)
    assert judgments.count() == 974


def test_pandalm_7b_labels_import_999_and_a_rerun_adds_none(
    pandalm: Project, shared_data: Path
) -> None:
    path = shared_data / "pandalm" / "pandalm-7b-testset-v1.json"
    maps = ["id=idx", "label=pandalm_result"]
    first = labels_import(project=pandalm, path=path, source="PandaLM-7B", maps=maps)
    assert (first.created, first.invalid) == (999, 0)
    judge = Judge.objects.get(name="pandalm-7b")
    assert judge.backend == Judge.Backend.IMPORTED and pandalm.judges.filter(pk=judge.pk).exists()
    second = labels_import(project=pandalm, path=path, source="PandaLM-7B", maps=maps)
    assert (second.created, second.skipped) == (0, 999)
    assert Judgment.objects.filter(judge=judge).count() == 999


def test_human_labels_import_as_an_external_annotator(pandalm: Project, shared_data: Path) -> None:
    result = labels_import(
        project=pandalm,
        path=shared_data / "pandalm" / "testset-v1.json",
        source="annotator1",
        kind="human",
        maps=["id=idx", "label=annotator1"],
    )
    assert result.created == 999
    labels = Judgment.objects.filter(item__project=pandalm)
    assert set(labels.values_list("kind", "source", "external_annotator").distinct()) == {
        ("human", "annotator1", "annotator1")
    }
    assert not labels.filter(judge__isnull=False).exists()
    assert not pandalm.judges.exists()
    # PandaLM's 2 means "response 2 is better": B, a negative strength.
    assert labels.get(item__external_id="0").value == {"strength": -1}
    again = labels_import(
        project=pandalm,
        path=shared_data / "pandalm" / "testset-v1.json",
        source="annotator1",
        kind="human",
        maps=["id=idx", "label=annotator1"],
    )
    assert (again.created, again.skipped) == (0, 999)


def test_a_label_for_an_unknown_item_names_the_id_and_imports_nothing(
    make_project: Any, tmp_path: Path
) -> None:
    project = make_project("p", items=3)
    path = write_jsonl(
        tmp_path / "labels.jsonl",
        [{"id": "0", "label": "A"}, {"id": "no-such-item", "label": "B"}],
    )
    with pytest.raises(ImportRejected) as exc:
        labels_import(project=project, path=path, source="gpt-4")
    (problem,) = exc.value.result.errors
    assert (problem.line, problem.field) == (2, "id")
    assert "'no-such-item'" in problem.reason and "'p'" in problem.reason
    assert not Judgment.objects.exists()


def test_unknown_ids_with_skip_invalid_are_rejected_and_later_rows_still_import(
    make_project: Any, tmp_path: Path
) -> None:
    project = make_project("p", items=5)
    rows = [{"id": "missing", "label": "1"}] + [{"id": str(i), "label": "2"} for i in range(5)]
    result = labels_import(
        project=project,
        path=write_jsonl(tmp_path / "labels.jsonl", rows),
        source="gpt-4",
        skip_invalid=True,
        chunk_size=2,
    )
    assert (result.created, result.invalid) == (5, 1)
    assert Judgment.objects.filter(judge__name="gpt-4").count() == 5
    rejects = [json.loads(line) for line in Path(result.rejects_path).read_text().splitlines()]
    assert [(r["line"], r["field"]) for r in rejects] == [(1, "id")]


@pytest.mark.parametrize(
    ("label", "strength"),
    [("A>>B", 2), ("a>b", 1), ("A=B", 0), ("tie", 0), ("B>A", -1), ("B>>A", -2), ("b", -1)],
)
def test_graded_and_winner_labels_map_onto_the_five_point_scale(
    make_project: Any, tmp_path: Path, label: str, strength: int
) -> None:
    project = make_project("p", items=1)
    path = write_jsonl(tmp_path / "labels.jsonl", [{"id": "0", "label": label}])
    labels_import(project=project, path=path, source="vendor", kind="human")
    assert Judgment.objects.get().value == {"strength": strength}


def test_label_rows_check_aspect_and_confidence(make_project: Any, tmp_path: Path) -> None:
    project = make_project("p", items=2)
    rows = [
        {"id": "0", "label": "A", "aspect": "style"},
        {"id": "1", "label": "A", "confidence": 3},
    ]
    with pytest.raises(ImportRejected) as exc:
        labels_import(project=project, path=write_jsonl(tmp_path / "l.jsonl", rows), source="gpt-4")
    assert [(e.line, e.field) for e in exc.value.result.errors] == [
        (1, "aspect"),
        (2, "confidence"),
    ]


def test_labels_for_a_ranking_project_take_ranks(make_project: Any, tmp_path: Path) -> None:
    project = make_project("r", items=1, task_type="ranking", k=3)
    path = write_jsonl(tmp_path / "l.jsonl", [{"id": "0", "ranks": [2, 1, 3]}])
    labels_import(project=project, path=path, source="gpt-4")
    assert Judgment.objects.get().value == {"ranks": [2, 1, 3]}


def test_a_label_source_that_names_a_model_judge_is_refused(
    make_project: Any, tmp_path: Path
) -> None:
    Judge.objects.create(name="smollm", backend=Judge.Backend.LLM_PAIRWISE)
    path = write_jsonl(tmp_path / "l.jsonl", [{"id": "0", "label": "A"}])
    with pytest.raises(ImportRefused, match="a model judge named 'smollm' exists"):
        labels_import(project=make_project("p", items=1), path=path, source="SmolLM")
    assert not ImportBatch.objects.exists()


def test_an_unknown_label_kind_and_a_blank_source_are_refused(
    make_project: Any, tmp_path: Path
) -> None:
    project = make_project("p", items=1)
    path = write_jsonl(tmp_path / "l.jsonl", [{"id": "0", "label": "A"}])
    with pytest.raises(ImportRefused, match="--kind"):
        labels_import(project=project, path=path, source="x", kind="robot")
    with pytest.raises(ImportRefused, match="--source is required"):
        labels_import(project=project, path=path, source="  ")


# --- Demo data ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "task_type", "k", "count"),
    [("pairwise.jsonl", "pairwise", 2, 24), ("ranking.jsonl", "ranking", 4, 12)],
)
def test_the_demo_files_import_cleanly(filename: str, task_type: str, k: int, count: int) -> None:
    project, _ = project_ensure(slug=f"demo-{task_type}", task_type=task_type)
    result = items_import(project=project, path=DEMO / filename, adopt_k=True)
    assert (result.created, result.invalid) == (count, 0)
    project.refresh_from_db()
    assert (project.task_type, project.num_responses) == (task_type, k)
    models = {m for item in project.items.all() for m in item.model_names}
    assert len(models) >= 4 and "" not in models  # a leaderboard needs named, recurring models
    assert project.items.filter(prompt__0__role="user").exists()  # some prompts are chats
    if task_type == "pairwise":
        gold = project.items.filter(is_gold=True)
        assert 2 <= gold.count() <= 3
        assert all(item.gold_label for item in gold)
