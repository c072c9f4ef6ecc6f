from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from annotate.models import Export, Item, Judge, Judgment, RoutingRun
from annotate.records import hash_content
from annotate.services import export_copy, exports
from annotate.services.exports import ExportError, export_create, export_run
from annotate.services.labels import final_labels_compute
from config.celery import app as celery_app

pytestmark = pytest.mark.django_db


def human(item: Item, who: str, value: dict, aspect: str = "overall", user: Any = None) -> Judgment:
    return Judgment.objects.create(
        item=item,
        aspect=aspect,
        kind="human",
        source="annotate" if user else who,
        annotator=user,
        external_annotator="" if user else who,
        task_type=item.project.task_type,
        value=value,
        time_spent_ms=1200,
    )


def run(project: Any, shape: str, fmt: str = "jsonl", **filters: Any) -> Export:
    export = export_create(
        project=project, shape=shape, file_format=fmt, filters=filters, enqueue=False
    )
    export = exports.export_claim(export_id=export.pk)
    export = export_run(export=export)
    assert export.status == "succeeded", export.error
    return export


def read_jsonl(export: Export, split: str = "train") -> list[dict]:
    path = Path(export.path) / f"{split}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def labelled(project: Any) -> Any:
    """Items 0-2 judged by two humans each: A much better, B slightly better, a tie."""
    for ext, s in (("0", 2), ("1", -1), ("2", 0)):
        item = project.items.get(external_id=ext)
        human(item, "x", {"strength": s})
        human(item, "y", {"strength": s})
    final_labels_compute(project=project)
    return project


def test_dpo_rows_have_prompt_chosen_rejected_and_margin(labelled: Any) -> None:
    export = run(labelled, "dpo")
    rows = {r["item_id"]: r for r in read_jsonl(export)}
    assert set(rows) == {"0", "1"}  # the tie is dropped by default
    assert rows["0"]["prompt"] == "Prompt number 0: explain something."
    assert rows["0"]["chosen"] == "Response 0 to prompt 0."
    assert rows["0"]["rejected"] == "Response 1 to prompt 0."
    assert rows["0"]["margin"] == 2.0
    assert (rows["1"]["chosen_model"], rows["1"]["margin"]) == ("model-1", 1.0)
    assert rows["1"]["label_source"] == "human"
    assert rows["1"]["agreement"] == 1.0
    assert export.rows == 2
    assert export.stats["ties_dropped"] == 1


def test_ties_can_be_kept_with_margin_zero(labelled: Any) -> None:
    rows = read_jsonl(run(labelled, "dpo", keep_ties=True))
    assert sorted(r["margin"] for r in rows) == [0.0, 1.0, 2.0]


def test_reward_pairs_carry_the_prompt_inside_each_side(labelled: Any) -> None:
    row = next(r for r in read_jsonl(run(labelled, "reward")) if r["item_id"] == "0")
    assert row["chosen"] == "Prompt number 0: explain something.\n\nResponse 0 to prompt 0."
    assert "prompt" not in row
    assert row["margin"] == 2.0


def test_conversational_dpo_uses_chat_messages(labelled: Any) -> None:
    row = next(
        r for r in read_jsonl(run(labelled, "dpo", conversational=True)) if r["item_id"] == "0"
    )
    assert row["prompt"] == [{"role": "user", "content": "Prompt number 0: explain something."}]
    assert row["chosen"] == [{"role": "assistant", "content": "Response 0 to prompt 0."}]


def test_rankings_expand_to_every_pair(make_project: Any) -> None:
    project = make_project("rank", items=1, task_type="ranking", k=3)
    human(project.items.get(), "x", {"ranks": [2, 1, 3]})
    final_labels_compute(project=project)
    rows = read_jsonl(run(project, "dpo"))
    pairs = {(r["chosen_model"], r["rejected_model"], r["margin"]) for r in rows}
    assert pairs == {
        ("model-1", "model-0", 1.0),
        ("model-1", "model-2", 2.0),
        ("model-0", "model-2", 1.0),
    }


def test_best_worst_expands_without_inventing_pairs_between_middles(make_project: Any) -> None:
    project = make_project("bw", items=1, task_type="kwise", k=4)
    human(project.items.get(), "x", {"best": 2, "worst": 0})
    final_labels_compute(project=project)
    rows = read_jsonl(run(project, "dpo"))
    assert len(rows) == 5  # best>worst, best>2 middles, 2 middles>worst
    assert {("model-1", "model-3"), ("model-3", "model-1")}.isdisjoint(
        {(r["chosen_model"], r["rejected_model"]) for r in rows}
    )


def test_listwise_rows_rank_the_k_responses(make_project: Any) -> None:
    project = make_project("rank", items=1, task_type="ranking", k=3)
    human(project.items.get(), "x", {"ranks": [2, 1, 3]})
    final_labels_compute(project=project)
    (row,) = read_jsonl(run(project, "listwise"))
    assert row["ranks"] == [2, 1, 3]
    assert row["models"] == ["model-0", "model-1", "model-2"]
    assert len(row["responses"]) == len(row["scores"]) == 3


def test_raw_has_every_judgment_with_pseudonymised_annotators(labelled: Any, member: Any) -> None:
    judge = Judge.objects.create(name="judge-1", backend="imported")
    item = labelled.items.get(external_id="3")
    Judgment.objects.create(
        item=item,
        kind="ai",
        source="judge-1",
        judge=judge,
        prompt_version="v1",
        task_type="pairwise",
        value={"strength": 1},
        probabilities={"a": 0.7, "b": 0.2, "tie": 0.1},
        confidence=0.7,
    )
    human(item, "", {"strength": -2}, user=member)
    export = run(labelled, "raw")
    text = (Path(export.path) / "train.jsonl").read_text()
    rows = [json.loads(line) for line in text.splitlines()]
    assert len(rows) == 8
    assert "member" not in text and '"x"' not in text and '"y"' not in text
    humans = [r for r in rows if r["kind"] == "human"]
    assert {r["source"] for r in humans} == {"annotate", "imported"}
    assert all(r["annotator"].startswith("annotator-") for r in humans)
    assert len({r["annotator"] for r in humans}) == 3
    ai_row = next(r for r in rows if r["kind"] == "ai")
    assert ai_row["judge"] == "judge-1"
    assert ai_row["value"] == {"strength": 1}
    assert ai_row["probabilities"] == {"a": 0.7, "b": 0.2, "tie": 0.1}
    # Stable: a second export names the same people the same way.
    again = {r["id"]: r["annotator"] for r in read_jsonl(run(labelled, "raw"))}
    assert all(again[r["id"]] == r["annotator"] for r in humans)


def test_pseudonyms_differ_between_projects(project: Any, make_project: Any) -> None:
    other = make_project("other")
    assert exports.pseudonym(project=project, key="ext:x") != exports.pseudonym(
        project=other, key="ext:x"
    )


def test_source_filter_keeps_only_that_source(labelled: Any) -> None:
    judge = Judge.objects.create(name="j", backend="imported")
    labelled.judges.add(judge)
    item = labelled.items.get(external_id="4")
    Judgment.objects.create(
        item=item,
        kind="ai",
        source="j",
        judge=judge,
        prompt_version="v1",
        task_type="pairwise",
        value={"strength": -2},
        confidence=0.9,
    )
    final_labels_compute(project=labelled)
    assert {r["item_id"] for r in read_jsonl(run(labelled, "dpo", source="ai"))} == {"4"}
    assert {r["item_id"] for r in read_jsonl(run(labelled, "dpo", source="human"))} == {"0", "1"}


def test_min_agreement_drops_disputed_and_unmeasured_labels(labelled: Any) -> None:
    item = labelled.items.get(external_id="3")
    for who, s in (("x", 2), ("y", 1), ("z", -2)):
        human(item, who, {"strength": s})
    final_labels_compute(project=labelled)
    assert {r["item_id"] for r in read_jsonl(run(labelled, "dpo"))} == {"0", "1", "3"}
    assert {r["item_id"] for r in read_jsonl(run(labelled, "dpo", min_agreement=0.9))} == {"0", "1"}


def test_aspect_filter(labelled: Any) -> None:
    human(labelled.items.get(external_id="0"), "x", {"strength": -2}, aspect="harmlessness")
    final_labels_compute(project=labelled)
    rows = read_jsonl(run(labelled, "dpo", aspect="harmlessness"))
    assert [(r["aspect"], r["chosen_model"]) for r in rows] == [("harmlessness", "model-1")]


def test_bad_filters_are_refused(project: Any) -> None:
    for filters in (
        {"source": "robots"},
        {"min_agreement": 2},
        {"aspect": "nope"},
        {"test_fraction": 1},
    ):
        with pytest.raises(ExportError):
            export_create(
                project=project, shape="dpo", file_format="jsonl", filters=filters, enqueue=False
            )
    with pytest.raises(ExportError):
        export_create(project=project, shape="sft", file_format="jsonl", enqueue=False)


def test_the_split_never_puts_one_prompt_on_both_sides(make_project: Any) -> None:
    project = make_project("split")
    for n in range(200):
        prompt = f"Shared prompt {n // 2}"  # two items per prompt, different responses
        responses = [{"model": "m0", "text": f"a{n}"}, {"model": "m1", "text": f"b{n}"}]
        item = Item.objects.create(
            project=project,
            external_id=str(n),
            content_hash=hash_content(prompt, responses),
            prompt=prompt if n % 4 else f"  {prompt}\n",
            responses=responses,
        )
        human(item, "x", {"strength": 1})
    final_labels_compute(project=project)
    export = run(project, "dpo", test_fraction=0.3)
    train, test = read_jsonl(export, "train"), read_jsonl(export, "test")
    assert {" ".join(r["prompt"].split()) for r in train}.isdisjoint(
        {" ".join(r["prompt"].split()) for r in test}
    )
    assert 0.15 < len(test) / 200 < 0.45
    assert export.stats["rows"] == {"train": len(train), "test": len(test)}
    assert exports.split_of("p", test_fraction=0.3, seed="a") in {"train", "test"}


def test_parquet_is_written_in_row_groups_and_matches_jsonl(
    labelled: Any, monkeypatch: Any
) -> None:
    for n in range(5, 45):
        prompt = f"more {n}"
        responses = [{"model": "m0", "text": "a"}, {"model": "m1", "text": "b"}]
        item = Item.objects.create(
            project=labelled,
            external_id=str(n),
            content_hash=hash_content(prompt, responses),
            prompt=prompt,
            responses=responses,
        )
        human(item, "x", {"strength": 2})
    final_labels_compute(project=labelled)
    monkeypatch.setattr(exports, "ROW_GROUP_ROWS", 10)
    parquet = run(labelled, "dpo", "parquet")
    pf = pq.ParquetFile(Path(parquet.path) / "train.parquet")
    assert pf.metadata.num_row_groups == 5
    assert pf.read().to_pylist() == read_jsonl(run(labelled, "dpo", "jsonl"))


def test_raw_parquet_keeps_verdicts_as_json_text(labelled: Any) -> None:
    table = pq.read_table(Path(run(labelled, "raw", "parquet").path) / "train.parquet")
    assert {json.loads(v)["strength"] for v in table.column("value").to_pylist()} == {2, -1, 0}
    assert table.num_rows == 6


def test_hf_folder_loads_with_datasets_and_has_a_card(labelled: Any) -> None:
    import datasets

    export = run(labelled, "dpo", "hf", test_fraction=0.5, split_seed="a")
    folder = Path(export.path)
    loaded = datasets.load_from_disk(str(folder))
    assert sorted(loaded) == ["test", "train"]
    assert sum(len(loaded[s]) for s in loaded) == 2
    assert set(loaded["test"].column_names) >= {"prompt", "chosen", "rejected", "margin"}
    card = (folder / "README.md").read_text()
    assert "Krippendorff" in card and "| **total** | 2 |" in card
    assert not (folder / "_parquet").exists() and not (folder / "_cache").exists()
    assert any(f["name"] == "README.md" for f in export.files)


def test_the_card_names_the_routing_policy_and_budget(labelled: Any) -> None:
    RoutingRun.objects.create(
        project=labelled,
        policy="uncertainty",
        policy_version="v2",
        budget=300,
        status="applied",
        human_items=150,
        estimate={"accuracy": 0.91, "curve": [1, 2]},
    )
    export = run(labelled, "dpo")
    card = (Path(export.path) / "README.md").read_text()
    assert "Policy `uncertainty` (v2), budget 300 judgments; 150 items went to humans." in card
    assert "accuracy = 0.91" in card
    assert "configs:" in card and "path: train.jsonl" in card


def test_labels_are_computed_when_the_project_has_none(project: Any) -> None:
    human(project.items.get(external_id="0"), "x", {"strength": 2})
    assert len(read_jsonl(run(project, "dpo"))) == 1


def test_the_task_runs_the_export_after_commit_with_progress(
    labelled: Any, django_capture_on_commit_callbacks: Any
) -> None:
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            export = export_create(project=labelled, shape="dpo", file_format="jsonl")
    finally:
        celery_app.conf.task_always_eager = eager
    export.refresh_from_db()
    assert export.status == "succeeded"
    assert (export.total, export.processed, export.rows, export.percent) == (3, 3, 2, 100)
    assert export.started_at and export.finished_at


def test_a_second_delivery_of_the_task_does_nothing(labelled: Any) -> None:
    from annotate.tasks import export_dataset

    export = export_create(project=labelled, shape="dpo", file_format="jsonl", enqueue=False)
    export_dataset(export.pk)
    Export.objects.filter(pk=export.pk).update(rows=99)
    export_dataset(export.pk)
    assert Export.objects.get(pk=export.pk).rows == 99
    export_dataset(123456)  # gone: exits quietly


def test_a_failing_export_records_why(labelled: Any, monkeypatch: Any) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(exports, "_JsonlSink", boom)
    export = export_create(project=labelled, shape="dpo", file_format="jsonl", enqueue=False)
    export = export_run(export=exports.export_claim(export_id=export.pk))
    assert export.status == "failed"
    assert "disk full" in export.error


def test_file_paths_stay_inside_the_export(labelled: Any) -> None:
    export = run(labelled, "dpo")
    assert exports.export_file_path(export=export, name="train.jsonl").name == "train.jsonl"
    for name in ("../../etc/passwd", "missing.jsonl", "/etc/passwd"):
        with pytest.raises(ExportError):
            exports.export_file_path(export=export, name=name)


def test_the_zip_stream_holds_every_file(labelled: Any) -> None:
    export = run(labelled, "dpo", "hf")
    data = b"".join(exports.export_zip_stream(export=export))
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "README.md" in names and "dataset_dict.json" in names
    assert sorted(names) == sorted(f["name"] for f in export.files)


# --- PostgreSQL COPY fast path for raw JSONL ------------------------------------------------------

TRICKY = (
    'quote " backslash \\ slash / newline \n tab \t cr \r bell \x07 unit \x1f é ü 中文 😀 \\n \\"'
)


@pytest.fixture
def on_postgres() -> None:
    from django.conf import settings
    from django.db import connection

    from tests.conftest import need_service

    db = settings.DATABASES["default"]
    if connection.vendor != "postgresql":
        pytest.skip("the COPY fast path runs on PostgreSQL only")
    need_service("PostgreSQL", db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432))


@pytest.fixture
def tricky(project: Any, member: Any) -> Any:
    """Judgments of every kind with strings that JSON and COPY escape: quotes, backslashes,
    newlines, tabs, control characters, non-ASCII; a chat prompt; empty and missing fields."""
    chat = [{"role": "system", "content": TRICKY}, {"content": "no role"}, {"role": "user"}]
    Item.objects.create(
        project=project,
        external_id=f"chat {TRICKY}",
        content_hash=hash_content("chat", []),
        prompt=chat,
        responses=[{"model": "m\\1", "text": TRICKY}, {"text": ""}],
    )
    Item.objects.filter(project=project, external_id="1").update(
        prompt=TRICKY, responses=[{"model": "é", "text": "a\nb"}, {"model": "x", "text": None}]
    )
    judge = Judge.objects.create(name=f"judge {TRICKY}", backend="imported")
    for n, item in enumerate(project.items.order_by("pk")):
        human(item, f"ext {TRICKY}" if n % 2 else "plain", {"strength": n % 5 - 2})
        human(item, "", {"strength": 1}, aspect="harmlessness", user=member)
        Judgment.objects.create(
            item=item,
            kind="ai",
            source=f"src {TRICKY}",
            judge=judge,
            prompt_version=TRICKY[:40],
            task_type="pairwise",
            value={"strength": -1, "note": TRICKY},
            probabilities={"a": 0.7, "b": 0.2, "tie": 0.1} if n % 2 else None,
            confidence=[1.0, 0.1, None, 1e-7, 0.0, 0.333333333333][n % 6],
            signals={"margin": 0.25, "t": TRICKY} if n % 3 else {},
            rationale=TRICKY,
            confidence_label="high",
            time_spent_ms=None if n % 2 else 5,
        )
    return project


@contextmanager
def slow_path(monkeypatch: Any) -> Iterator[None]:
    """Exports take the Python path (the reference) on any database while this lasts."""
    with monkeypatch.context() as m:
        m.setattr(export_copy, "raw_copy_fast_path", lambda *a: False)
        yield


def both_paths(
    project: Any, monkeypatch: Any, fmt: str = "jsonl", **filters: Any
) -> tuple[Export, Export]:
    fast = run(project, "raw", fmt, **filters)
    with slow_path(monkeypatch):
        slow = run(project, "raw", fmt, **filters)
    return fast, slow


def file_of(export: Export, split: str = "train") -> Path:
    return Path(export.path) / f"{split}.{export.file_format}"


def assert_same_rows(fast: bytes, slow: bytes) -> list[dict]:
    fast_lines, slow_lines = fast.splitlines(), slow.splitlines()
    assert len(fast_lines) == len(slow_lines) > 0
    for f, s in zip(fast_lines, slow_lines, strict=True):
        f_row, s_row = json.loads(f), json.loads(s)
        assert f_row == s_row
        assert list(f_row) == list(s_row)  # same keys in the same order
        for key, value in s_row.items():  # 1.0 stays a float, not the integer 1
            assert type(f_row[key]) is type(value), key
    return [json.loads(line) for line in slow_lines]


def assert_same_table(fast: Path, slow: Path) -> list[dict]:
    fast_table, slow_table = pq.read_table(fast), pq.read_table(slow)
    assert fast_table.schema == slow_table.schema
    assert fast_table.num_rows == slow_table.num_rows > 0
    fast_rows, slow_rows = fast_table.to_pylist(), slow_table.to_pylist()
    for f_row, s_row in zip(fast_rows, slow_rows, strict=True):
        assert f_row == s_row
    return slow_rows


def assert_same_files(fast: Export, slow: Export, split: str = "train") -> list[dict]:
    if fast.file_format == "parquet":
        return assert_same_table(file_of(fast, split), file_of(slow, split))
    return assert_same_rows(file_of(fast, split).read_bytes(), file_of(slow, split).read_bytes())


FORMATS = pytest.mark.parametrize("fmt", ["jsonl", "parquet"])


@FORMATS
def test_copy_fast_path_writes_the_same_rows_as_the_python_path(
    tricky: Any, on_postgres: None, monkeypatch: Any, fmt: str
) -> None:
    calls: list[int] = []
    real = export_copy._plan
    monkeypatch.setattr(export_copy, "_plan", lambda *a: calls.append(1) or real(*a))
    fast_export, slow_export = both_paths(tricky, monkeypatch, fmt)
    assert calls == [1]  # the fast run went through COPY (the slow one is patched off)
    rows = assert_same_files(fast_export, slow_export)
    assert any(TRICKY in r["prompt"] for r in rows) and any(TRICKY in r["item_id"] for r in rows)
    assert any(r["time_spent_ms"] is None for r in rows) and any(r["probabilities"] for r in rows)
    if fmt == "jsonl":
        fast, slow = file_of(fast_export).read_bytes(), file_of(slow_export).read_bytes()
        assert fast.endswith(b"\n") and fast.count(b"\n") == len(rows)
        # Everything but float spelling is byte-identical (PostgreSQL and orjson escape alike).
        assert fast.replace(b"1e-07", b"1e-7") == slow
    else:
        assert pq.read_schema(file_of(fast_export)) == pq.read_schema(file_of(slow_export))
    assert fast_export.rows == slow_export.rows == fast_export.total == len(rows)
    assert fast_export.processed == len(rows)
    for key in ("rows", "judgments_by_kind", "aspects", "annotators", "judge_judgments"):
        assert fast_export.stats[key] == slow_export.stats[key], key


@FORMATS
def test_copy_fast_path_pseudonyms_are_the_python_ones(
    tricky: Any, on_postgres: None, monkeypatch: Any, fmt: str
) -> None:
    fast, _ = both_paths(tricky, monkeypatch, fmt)
    rows = read_jsonl(fast) if fmt == "jsonl" else pq.read_table(file_of(fast)).to_pylist()
    humans = [r for r in rows if r["kind"] == "human"]
    expected = {
        exports.pseudonym(project=tricky, key=k) for k in ("ext:plain", f"ext:ext {TRICKY}")
    } | {
        exports.pseudonym(
            project=tricky,
            key=f"user:{Judgment.objects.filter(annotator__isnull=False).first().annotator_id}",
        )
    }
    assert {r["annotator"] for r in humans} == expected
    assert all(r["annotator"] is None for r in rows if r["kind"] == "ai")
    assert f"ext {TRICKY}".encode() not in file_of(fast).read_bytes()


@FORMATS
@pytest.mark.parametrize(
    "filters", [{"source": "human"}, {"source": "ai"}, {"aspect": "harmlessness"}]
)
def test_copy_fast_path_respects_filters(
    tricky: Any, on_postgres: None, monkeypatch: Any, filters: dict, fmt: str
) -> None:
    fast, slow = both_paths(tricky, monkeypatch, fmt, **filters)
    rows = assert_same_files(fast, slow)
    if "source" in filters:
        assert {r["kind"] for r in rows} == {filters["source"]}
    else:
        assert {r["aspect"] for r in rows} == {"harmlessness"}
    assert fast.rows == len(rows)


@FORMATS
def test_copy_fast_path_leaves_out_other_projects(
    tricky: Any, make_project: Any, on_postgres: None, monkeypatch: Any, fmt: str
) -> None:
    other = make_project("other", items=3)
    for n, item in enumerate(other.items.all()):  # ids interleaved with the tricky project's
        human(item, "someone", {"strength": 1})
        human(tricky.items.first(), f"late-{n}", {"strength": 0})
    monkeypatch.setattr(export_copy, "COPY_BATCH", 3)
    fast, slow = both_paths(tricky, monkeypatch, fmt)
    rows = assert_same_files(fast, slow)
    assert not {r["item_id"] for r in rows} & set(
        other.items.values_list("external_id", flat=True)
    ) - set(tricky.items.values_list("external_id", flat=True))
    assert len(rows) == Judgment.objects.filter(item__project=tricky).count()


@FORMATS
def test_copy_fast_path_spans_several_batches(
    tricky: Any, on_postgres: None, monkeypatch: Any, fmt: str
) -> None:
    monkeypatch.setattr(export_copy, "COPY_BATCH", 2)
    fast, slow = both_paths(tricky, monkeypatch, fmt)
    rows = assert_same_files(fast, slow)
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert fast.processed == fast.rows == len(rows)


@FORMATS
def test_copy_fast_path_items_whose_judgments_interleave(
    tricky: Any, on_postgres: None, monkeypatch: Any, fmt: str
) -> None:
    # A judge run over every item, then another: each row's item differs from the row before
    # and every item comes back after the others; then the first and the last item by turns,
    # so that small batches hold items far apart.
    judge = Judge.objects.create(name="round-robin", backend="imported")
    items = list(tricky.items.order_by("pk"))
    runs = [("v1", items), ("v2", items), ("v3", [items[0], items[-1]] * 4)]
    for version, judged in runs:
        for n, item in enumerate(judged):
            Judgment.objects.create(
                item=item,
                kind="ai",
                source="rr",
                judge=judge,
                prompt_version=f"{version}-{n}" if version == "v3" else version,
                task_type="pairwise",
                value={"strength": 1},
                confidence=0.5,
            )
    monkeypatch.setattr(export_copy, "COPY_BATCH", 4)
    fast, slow = both_paths(tricky, monkeypatch, fmt)
    rows = assert_same_files(fast, slow)
    assert len(rows) == Judgment.objects.filter(item__project=tricky).count()


def test_copy_fast_path_handles_a_group_that_appears_after_counting(
    tricky: Any, on_postgres: None, monkeypatch: Any
) -> None:
    # A judgment by a new annotator arrives between the GROUP BY and the COPY: its group's
    # columns are made from its key as the others are (pseudonymised, not left out).
    real = export_copy._plan

    def plan_then_insert(*args: Any) -> Any:
        plan = real(*args)
        human(tricky.items.first(), "late annotator", {"strength": 2})
        return plan

    monkeypatch.setattr(export_copy, "_plan", plan_then_insert)
    rows = read_jsonl(run(tricky, "raw"))
    late = [
        r
        for r in rows
        if r["annotator"] == exports.pseudonym(project=tricky, key="ext:late annotator")
    ]
    assert len(late) == 1 and late[0]["source"] == "imported"
    assert b"late annotator" not in json.dumps(rows).encode()


@FORMATS
def test_copy_fast_path_odd_items_and_a_test_split(
    tricky: Any, on_postgres: None, monkeypatch: Any, fmt: str
) -> None:
    # Item text is made by the Python path's own code, whatever the prompt's shape.
    Item.objects.filter(project=tricky, external_id="2").update(
        prompt=[{"role": None, "content": 5}]
    )
    fast, slow = both_paths(tricky, monkeypatch, fmt, test_fraction=0.5, split_seed="s")
    sizes = {split: len(assert_same_files(fast, slow, split)) for split in ("train", "test")}
    assert all(sizes.values())  # both sides hold rows
    assert fast.stats["rows"] == slow.stats["rows"] == sizes
    if fmt == "jsonl":
        rows = read_jsonl(fast, "train") + read_jsonl(fast, "test")
    else:
        rows = [r for s in ("train", "test") for r in pq.read_table(file_of(fast, s)).to_pylist()]
    assert any(r["prompt"] == "None: 5" for r in rows)


def test_copy_fast_path_writes_the_hf_folder_too(
    tricky: Any, on_postgres: None, monkeypatch: Any
) -> None:
    import datasets

    fast, slow = both_paths(tricky, monkeypatch, "hf")
    fast_rows = datasets.load_from_disk(fast.path)["train"].to_list()
    assert fast_rows == datasets.load_from_disk(slow.path)["train"].to_list()
    assert len(fast_rows) == fast.rows > 0


def test_a_failing_parquet_batch_fails_the_export(
    tricky: Any, on_postgres: None, monkeypatch: Any
) -> None:
    def broken(self: Any, *batch: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_copy._ParquetBatches, "write", broken)
    monkeypatch.setattr(export_copy, "COPY_BATCH", 2)  # several batches queue behind the worker
    export = export_create(project=tricky, shape="raw", file_format="parquet", enqueue=False)
    export = export_run(export=exports.export_claim(export_id=export.pk))
    assert export.status == "failed"
    assert "disk full" in export.error


def test_copy_fast_path_restores_the_jit_setting(tricky: Any, on_postgres: None) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SET jit = on")
        run(tricky, "raw", "parquet")
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "on"


def test_only_raw_exports_take_the_fast_path(tricky: Any) -> None:
    from django.db import connection

    assert not export_copy.raw_copy_fast_path("dpo", "jsonl")
    assert not export_copy.raw_copy_fast_path("listwise", "parquet")
    on_postgres = connection.vendor == "postgresql"
    assert export_copy.raw_copy_fast_path("raw", "parquet") is on_postgres
    assert export_copy.raw_copy_fast_path("raw", "jsonl") is on_postgres


@FORMATS
def test_copy_fast_path_exports_a_project_without_judgments(
    project: Any, on_postgres: None, monkeypatch: Any, fmt: str
) -> None:
    fast, slow = both_paths(project, monkeypatch, fmt)
    assert fast.rows == slow.rows == 0
    if fmt == "jsonl":
        assert file_of(fast).read_bytes() == file_of(slow).read_bytes() == b""
    else:
        assert pq.read_table(file_of(fast)).num_rows == 0
        assert pq.read_schema(file_of(fast)) == pq.read_schema(file_of(slow))


def test_an_export_gives_the_garbage_collector_its_thresholds_back(labelled: Any) -> None:
    import gc

    before = gc.get_threshold()
    run(labelled, "dpo")
    assert gc.get_threshold() == before


@pytest.mark.django_db(transaction=True)
@FORMATS
def test_a_database_error_during_copy_fails_the_export_and_the_connection_goes_on(
    tricky: Any, on_postgres: None, monkeypatch: Any, fmt: str
) -> None:
    # Division by zero at one judgment, in the middle of the stream (autocommit, as a worker
    # runs: the failed COPY must not leave the connection busy for the next statement).
    second = Judgment.objects.filter(item__project=tricky).order_by("pk")[1].pk
    template = "_LINE_SQL" if fmt == "jsonl" else "_COLUMNS_SQL"
    sql = getattr(export_copy, template)
    broken = sql.replace("j.id,", f"j.id + 0 * (1 / (j.id - {second})),", 1)
    assert broken != sql
    monkeypatch.setattr(export_copy, template, broken)
    export = export_create(project=tricky, shape="raw", file_format=fmt, enqueue=False)
    export = export_run(export=exports.export_claim(export_id=export.pk))
    assert export.status == "failed"
    assert "division by zero" in export.error
    assert Judgment.objects.filter(item__project=tricky).count() > 0  # the connection works
