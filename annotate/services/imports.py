"""Importing items and labels: one service behind the command, the upload page and the API.

Rows stream from `annotate.records` and are written in chunks. Idempotency needs no memory that
grows with the file: each chunk asks the database which of its ids exist (rows written by earlier
chunks of the same file are visible inside the transaction). By default one invalid row aborts the
whole import (nothing is written, every invalid row is reported); `skip_invalid` imports the valid
rows and writes the rejected ones, with their reasons, to a rejects file.
"""

from __future__ import annotations

import functools
import json
import os
import queue
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
from django.conf import settings
from django.db import IntegrityError, connection, reset_queries, transaction
from django.utils import timezone
from django.utils.text import slugify
from psycopg.adapt import PyFormat, Transformer
from psycopg.pq import Format

from annotate import records, verdicts
from annotate.models import ImportBatch, Item, Judge, Judgment, Project, TaskType

MAX_REPORTED_ERRORS = 1000
DEFAULT_CHUNK = 2000


class ImportRefused(Exception):
    """The file as a whole is refused (too large, unreadable, bad options); nothing was read."""


class ImportRejected(Exception):
    """Some rows are invalid and `skip_invalid` is off: nothing was imported. `.result` lists them."""

    def __init__(self, result: ImportResult) -> None:
        super().__init__(result.summary())
        self.result = result


@dataclass(slots=True)
class RowProblem:
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


@dataclass
class ImportResult:
    filename: str
    created: int = 0
    skipped: int = 0
    invalid: int = 0
    labels: int = 0
    errors: list[RowProblem] = field(default_factory=list)
    rejects_path: str = ""
    batch_id: int | None = None

    def summary(self) -> str:
        text = f"{self.filename}: created {self.created}, already present {self.skipped}, invalid {self.invalid}"
        if self.labels:
            text += f" ({self.labels} labels)"
        return text

    def add_error(self, line: int, error: records.RecordError) -> None:
        self.invalid += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(RowProblem(line, error.field, error.reason))


class _Rollback(Exception):
    pass


@contextmanager
def _recorded(batch: ImportBatch, result: ImportResult, rejects: _Rejects | None) -> Iterator[None]:
    """Record an import's outcome on its batch row, whatever happens inside.

    Wraps the transaction: `_Rollback` (invalid rows, skip_invalid off) and an unreadable file
    leave the batch failed with the reason, and nothing written; success closes it with the
    summary line.
    """
    try:
        yield
    except _Rollback:
        _close_batch(
            batch, result, ImportBatch.Status.FAILED, "nothing imported: " + result.summary()
        )
        raise ImportRejected(result) from None
    except records.FileFormatError as exc:
        _close_batch(batch, result, ImportBatch.Status.FAILED, str(exc))
        raise ImportRefused(str(exc)) from None
    except IntegrityError:
        # Each chunk skips the ids already in the database, but rows of another import still
        # running are invisible to that check: when the two write the same ids, the second to
        # commit fails on the unique (project, external id) constraint.
        message = (
            "nothing imported: another import added some of these items at the same time; "
            "import the file again to add the others"
        )
        _close_batch(batch, result, ImportBatch.Status.FAILED, message)
        raise ImportRefused(f"{result.filename}: {message}") from None
    except Exception as exc:
        # Whatever else went wrong, the batch must not stay "running" (the upload page polls it).
        _close_batch(batch, result, ImportBatch.Status.FAILED, f"nothing imported: {exc}")
        raise
    finally:
        if rejects:
            rejects.close()
    if rejects and result.invalid:
        result.rejects_path = rejects.path
    _close_batch(batch, result, ImportBatch.Status.SUCCEEDED, result.summary())


# --- Projects -----------------------------------------------------------------------------------


def project_ensure(
    *, slug: str, task_type: str | None = None, name: str | None = None, user: Any = None
) -> tuple[Project, bool]:
    """The project with this slug, created if missing (K is adopted from the first imported row)."""
    project = Project.objects.filter(slug=slug).first()
    if project:
        if task_type and task_type != project.task_type:
            raise ImportRefused(f"project {slug!r} is {project.task_type}, not {task_type}")
        return project, False
    if task_type and task_type not in TaskType.values:
        raise ImportRefused(f"--type {task_type!r} is not one of {', '.join(TaskType.values)}")
    project = Project.objects.create(
        slug=slug,
        name=name or slug.replace("-", " ").title(),
        task_type=task_type or TaskType.PAIRWISE,
        num_responses=2 if (task_type or TaskType.PAIRWISE) == TaskType.PAIRWISE else 4,
        created_by=user,
    )
    return project, True


# --- Items --------------------------------------------------------------------------------------


def items_import(
    *,
    project: Project,
    path: str | os.PathLike,
    filename: str | None = None,
    fmt: str | None = None,
    maps: list[str] | None = None,
    skip_invalid: bool = False,
    adopt_k: bool = False,
    user: Any = None,
    batch: ImportBatch | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import the items of one file into `project`.

    `adopt_k`: the project was just created, so its K (and, for K > 2 with the default type, its
    task type) comes from the first valid row rather than being checked against it.
    Raises ImportRefused for a file that cannot be read at all, ImportRejected when rows are
    invalid and `skip_invalid` is off (nothing written).
    """
    path = str(path)
    filename = filename or os.path.basename(path)
    field_maps = _check_file(path, filename, maps)
    batch = _open_batch(batch, project=project, filename=filename, kind="items", user=user)
    result = ImportResult(filename=filename, batch_id=batch.pk)
    rejects = _Rejects(batch, filename) if skip_invalid else None
    writer = _ItemWriter(project, batch, result)
    k = None if adopt_k else project.num_responses
    with _recorded(batch, result, rejects), transaction.atomic():
        # Reading, checking and encoding rows is pure Python and runs in a thread while this one
        # waits on the database: with two cores, the server writes chunk n while chunk n + 1 is
        # prepared (the two take about the same time per row; in turn they took their sum).
        chunks = _valid_chunks(
            path, fmt, field_maps, project, k, result, rejects, writer.encode, chunk_size
        )
        with _in_background(chunks) as ready:
            failing = False
            for chunk, invalid in ready:
                failing = failing or (invalid and not skip_invalid)
                if failing:
                    continue  # the rest is still validated, to report every bad row
                if project.num_responses != k:
                    # The thread adopted K from the first valid row (in memory only: this
                    # thread owns the database connection).
                    k = project.num_responses
                    project.save(update_fields=["num_responses", "task_type"])
                writer.write(chunk)
                _forget_queries()
                if progress:
                    progress(result.created + result.skipped + result.invalid)
        if failing:
            raise _Rollback
        writer.close()
    return result


# A valid row ready to write: its line, external id, imported label, and what the writer needs:
# on PostgreSQL the row encoded for COPY (the parsed item is dropped at once, so the chunks in
# flight hold bytes, not Python objects), on SQLite the canonical item for bulk_create.
_Ready = tuple[int, str, dict | None, bytes | records.CanonicalItem]


def _valid_chunks(
    path: str,
    fmt: str | None,
    field_maps: list[records.FieldMap],
    project: Project,
    k: int | None,
    result: ImportResult,
    rejects: _Rejects | None,
    encode: Callable[[records.CanonicalItem], bytes | records.CanonicalItem],
    chunk_size: int,
) -> Iterator[tuple[list[_Ready], bool]]:
    """The file's valid rows in chunks, each with whether an invalid row came before its end.

    Runs in the reading thread: no database access here (`project` is read, and on adopting K
    changed in memory; the writing thread saves it).
    """
    chunk: list[_Ready] = []
    invalid = False
    for row in records.read_records(path, fmt):
        error = row.error
        if error is None:
            try:
                item = records.normalise(records.apply_maps(row.data, field_maps), k=k)
                if k is None:
                    k = _adopt_k(project, len(item.responses))
                _check_item(project, item)
                chunk.append((row.line, item.external_id, item.label, encode(item)))
            except records.RecordError as exc:
                error = exc
        if error is not None:
            invalid = True
            result.add_error(row.line, error)
            if rejects:
                rejects.write(row.line, error, row.data)
        if len(chunk) >= chunk_size:
            yield chunk, invalid
            chunk = []
    yield chunk, invalid


def _check_item(project: Project, item: records.CanonicalItem) -> None:
    if item.gold_label is not None:
        item.gold_label = _verdict(project, item.gold_label, "gold_label")
    if item.label is not None and project.task_type != TaskType.PAIRWISE:
        raise records.RecordError("chosen", "a chosen/rejected pair needs a pairwise project")
    if item.label is not None and item.label["strength"] == 0 and not project.allow_ties:
        raise records.RecordError("chosen", "tie label in a project without ties")


def _adopt_k(project: Project, k: int) -> int:
    project.num_responses = k
    if k > 2 and project.task_type == TaskType.PAIRWISE:
        project.task_type = TaskType.RANKING
    return k


_T = TypeVar("_T")
_DONE = object()


@contextmanager
def _in_background(source: Iterator[_T], depth: int = 1) -> Iterator[Iterator[_T]]:
    """Run `source` in a thread, `depth` items ahead of the consumer (memory stays bounded).

    Its exceptions are raised in the consumer; leaving the block early stops the thread.
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for value in source:
                if not put((value, None)):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            put((_DONE, exc))
            return
        finally:
            close = getattr(source, "close", None)
            if close:
                close()  # a generator's open file is closed now, not when collected
        put((_DONE, None))

    def consume() -> Iterator[_T]:
        while True:
            value, exc = handoff.get()
            if exc is not None:
                raise exc
            if value is _DONE:
                return
            yield value

    thread = threading.Thread(target=run, name="import-reader", daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        stop.set()
        thread.join()


class _ItemWriter:
    """Writes chunks of new items, skipping those already present (idempotent re-import).

    PostgreSQL: a binary COPY whose rows are encoded whole in the reading thread (`encode`), so
    this thread only joins bytes. SQLite: `bulk_create`.
    """

    def __init__(self, project: Project, batch: ImportBatch, result: ImportResult) -> None:
        self.project, self.batch, self.result = project, batch, result
        self.now = timezone.now()
        self.copy = connection.vendor == "postgresql"
        self.encode: Callable[[records.CanonicalItem], bytes | records.CanonicalItem] = _as_is
        self._copy_sql = ""
        self._foreign_keys: str | None = None  # known at the first COPY
        if self.copy:
            with connection.cursor() as cursor:
                self._copy_sql, constants = _copy_plan(cursor.cursor, project, batch, self.now)
            self.encode = functools.partial(_encode_copy_row, constants=constants)

    def close(self) -> None:
        if self._foreign_keys:
            with connection.cursor() as cursor:
                cursor.execute(f"SET CONSTRAINTS {self._foreign_keys} DEFERRED")

    def write(self, chunk: list[_Ready]) -> None:
        if not chunk:
            return
        existing = set(_item_pks(self.project, {external_id for _, external_id, _, _ in chunk}))
        new: list[_Ready] = []
        for ready in chunk:
            external_id = ready[1]
            if external_id in existing:
                self.result.skipped += 1
                continue
            existing.add(external_id)  # a repeat inside the same chunk is also "already present"
            new.append(ready)
        if not new:
            return
        if self.copy:
            self._copy(new)
        else:
            self._bulk_create(new)
        self.result.created += len(new)

    def _bulk_create(self, new: list[_Ready]) -> None:
        canonical = [c for _, _, _, c in new if isinstance(c, records.CanonicalItem)]
        items = [
            Item(
                project=self.project,
                external_id=c.external_id,
                content_hash=c.content_hash,
                prompt=c.prompt,
                responses=c.responses,
                metadata=c.metadata,
                is_gold=c.is_gold,
                gold_label=c.gold_label,
                import_batch=self.batch,
                created_at=self.now,
            )
            for c in canonical
        ]
        Item.objects.bulk_create(items, batch_size=len(items))
        self._write_labels({item.external_id: item.pk for item in items}, new)

    def _copy(self, new: list[_Ready]) -> None:
        with connection.cursor() as cursor:
            if self._foreign_keys is None:
                # Django's foreign keys are checked at commit: 100k checks in a row after the
                # last chunk, with nothing else to do. Checked after each COPY instead, they run
                # while the reading thread prepares the next chunk (same rows, same checks;
                # `close()` defers them again for the rest of an enclosing transaction).
                self._foreign_keys = ", ".join(
                    connection.ops.quote_name(name)
                    for name, info in connection.introspection.get_constraints(
                        cursor, Item._meta.db_table
                    ).items()
                    if info["foreign_key"]
                )
                if self._foreign_keys:
                    cursor.execute(f"SET CONSTRAINTS {self._foreign_keys} IMMEDIATE")
            # psycopg's own cursor, so its errors are turned into Django's here.
            with connection.wrap_database_errors, cursor.cursor.copy(self._copy_sql) as copy:
                copy.write(b"".join([_COPY_HEADER, *(row for *_, row in new), _COPY_TRAILER]))
        if any(label is not None for _, _, label, _ in new):
            # COPY returns no ids; the labels need them.
            ids = {external_id for _, external_id, label, _ in new if label is not None}
            self._write_labels(_item_pks(self.project, ids), new)

    def _write_labels(self, item_pks: dict[str, int], new: list[_Ready]) -> None:
        labelled = [(external_id, label) for _, external_id, label, _ in new if label is not None]
        if not labelled:
            return
        project = self.project
        Judgment.objects.bulk_create(
            [
                Judgment(
                    item_id=item_pks[external_id],
                    aspect=project.aspects[0] if project.aspects else "overall",
                    kind=Judgment.Kind.HUMAN,
                    source="imported",
                    task_type=project.task_type,
                    value=label,
                    import_batch=self.batch,
                    created_at=self.now,
                )
                for external_id, label in labelled
            ],
            batch_size=len(labelled),
        )
        self.result.labels += len(labelled)


# --- PostgreSQL binary COPY of items --------------------------------------------------------------
#
# bulk_create's INSERT … UNNEST spent most of its time quoting wide JSON values into arrays, and
# psycopg's row-by-row COPY (`write_row`, a dumper call per value) still cost ~30 µs per item
# (profiles of bench/import.py). Each row is encoded here instead, in PostgreSQL's binary COPY
# format: the seven columns that come from the file, then the other columns, which are the same
# for every row of an import and so are encoded once (by psycopg, from the model's fields, so a
# column added to Item later gets its default as with bulk_create).

# The item columns an import fills from each row, in the order `_encode_copy_row` writes them.
_ITEM_ROW_FIELDS = (
    "external_id",
    "content_hash",
    "prompt",
    "responses",
    "metadata",
    "is_gold",
    "gold_label",
)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_INT4 = struct.Struct(">i")
_NULL = _INT4.pack(-1)
_BOOL = {True: _INT4.pack(1) + b"\x01", False: _INT4.pack(1) + b"\x00"}
_JSONB_VERSION = b"\x01"
_HASH_LENGTH = _INT4.pack(64)
# Every row starts with its number of columns: all of Item's but the id.
_ITEM_COLUMNS = sum(1 for f in Item._meta.concrete_fields if not f.primary_key)
_FIELD_COUNT = struct.pack(">h", _ITEM_COLUMNS)


def _copy_plan(cursor: Any, project: Project, batch: ImportBatch, now: Any) -> tuple[str, bytes]:
    """The COPY statement, and the encoded values of every column not taken from the row."""
    fields = {f.attname: f for f in Item._meta.concrete_fields if not f.primary_key}
    fixed = {"project_id": project.pk, "import_batch_id": batch.pk, "created_at": now}
    others = [f for name, f in fields.items() if name not in _ITEM_ROW_FIELDS]
    values = [fixed[f.attname] if f.attname in fixed else f.get_default() for f in others]
    registry = cursor.adapters.types
    transformer = Transformer.from_context(cursor)
    transformer.set_dumper_types(
        [registry.get_oid(f.db_type(connection).split("(")[0]) for f in others], Format.BINARY
    )
    dumped = transformer.dump_sequence(values, [PyFormat.BINARY] * len(values))
    constants = b"".join(
        _NULL if value is None else _INT4.pack(len(value)) + bytes(value) for value in dumped
    )
    columns = [fields[name] for name in _ITEM_ROW_FIELDS] + others
    table = connection.ops.quote_name(Item._meta.db_table)
    names = ", ".join(connection.ops.quote_name(f.column) for f in columns)
    sql = f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)"
    if len(columns) != _ITEM_COLUMNS:
        raise RuntimeError("Item's columns changed after this module was loaded")
    return sql, constants


def _encode_copy_row(c: records.CanonicalItem, *, constants: bytes) -> bytes:
    """The row in binary COPY format: field count, the row's own columns, then `constants`; or
    RecordError naming a field PostgreSQL would refuse, so the line is reported instead of the
    whole COPY failing."""
    return b"".join(
        [
            _FIELD_COUNT,
            _text_value("id", c.external_id),
            _HASH_LENGTH,
            c.content_hash.encode(),  # 64 hexadecimal digits
            _jsonb_value("prompt", c.prompt),
            _jsonb_value("responses", c.responses),
            _jsonb_value("metadata", c.metadata),
            _BOOL[c.is_gold],
            _NULL if c.gold_label is None else _jsonb_value("gold_label", c.gold_label),
            constants,
        ]
    )


def _text_value(field_name: str, value: str) -> bytes:
    data = value.encode()
    if b"\x00" in data:
        raise records.RecordError(
            field_name, "contains a NUL character, which PostgreSQL cannot store"
        )
    return _INT4.pack(len(data)) + data


def _jsonb_value(field_name: str, value: Any) -> bytes:
    try:
        data = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError as exc:
        raise records.RecordError(field_name, f"cannot be stored as JSON ({exc})") from None
    # jsonb refuses \u0000. The byte test is a fast filter (an escaped backslash followed by
    # "u0000" also matches); the values themselves decide.
    if b"\\u0000" in data and _has_nul(value):
        raise records.RecordError(
            field_name, "contains a NUL character (\\u0000), which PostgreSQL cannot store"
        )
    return _INT4.pack(len(data) + 1) + _JSONB_VERSION + data


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False


def _as_is(c: records.CanonicalItem) -> records.CanonicalItem:
    """SQLite: rows are written with bulk_create, from the canonical item."""
    return c


# --- Labels -------------------------------------------------------------------------------------

_WINNER_WORDS = {
    "1": 1,
    "a": 1,
    "response1": 1,
    "2": -1,
    "b": -1,
    "response2": -1,
    "0": 0,
    "tie": 0,
    "=": 0,
}
_GRADED_WORDS = {"a>>b": 2, "a>b": 1, "a=b": 0, "b>a": -1, "b>>a": -2}


def parse_label(project: Project, data: dict[str, Any]) -> dict:
    """A label from a row: `value` (a verdict object), `strength` (-2..2), `ranks`, or `label`.

    `label` follows the common convention of naming the winner: 1 / A = the first response,
    2 / B = the second, 0 / tie; graded forms "A>>B", "A>B", "A=B", "B>A", "B>>A" are read as such.
    A winner without a degree becomes "slightly better" (strength 1): nothing claims "much".
    """
    if isinstance(data.get("value"), dict):
        return _verdict(project, data["value"], "value")
    if data.get("strength") is not None:
        return _verdict(project, {"strength": _int(data["strength"], "strength")}, "strength")
    if data.get("ranks") is not None:
        return _verdict(project, {"ranks": data["ranks"]}, "ranks")
    label = data.get("label")
    if label is None or (isinstance(label, float) and label != label):
        raise records.RecordError("label", "missing: give label, strength, ranks or value")
    if project.task_type != TaskType.PAIRWISE:
        if isinstance(label, list):
            return _verdict(project, {"ranks": label}, "label")
        raise records.RecordError(
            "label", f"a {project.task_type} project needs ranks or a value object"
        )
    word = str(label).strip().lower().replace(" ", "")
    if word in _GRADED_WORDS:
        strength = _GRADED_WORDS[word]
    elif word in _WINNER_WORDS:
        strength = _WINNER_WORDS[word]
    else:
        raise records.RecordError(
            "label", f"{label!r} is not a verdict: use 1/A, 2/B, 0/tie or A>>B … B>>A"
        )
    return _verdict(project, {"strength": strength}, "label")


def labels_import(
    *,
    project: Project,
    path: str | os.PathLike,
    source: str,
    kind: str = Judgment.Kind.AI,
    filename: str | None = None,
    fmt: str | None = None,
    maps: list[str] | None = None,
    aspect: str | None = None,
    skip_invalid: bool = False,
    user: Any = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> ImportResult:
    """Import existing labels keyed by item id: an external AI judge's verdicts or human labels.

    AI labels become judgments of a registered judge named after `source` (backend "imported"),
    added to the project's panel, so they count as judges everywhere.
    """
    path = str(path)
    filename = filename or os.path.basename(path)
    if kind not in Judgment.Kind.values:
        raise ImportRefused(f"--kind {kind!r} is not one of {', '.join(Judgment.Kind.values)}")
    if not source.strip():
        raise ImportRefused(
            "--source is required: the name of the judge or annotator the labels come from"
        )
    default_aspect = aspect or (project.aspects[0] if project.aspects else "overall")
    if default_aspect not in project.aspects:
        raise ImportRefused(
            f"aspect {default_aspect!r} is not one of the project's: {', '.join(project.aspects)}"
        )
    field_maps = _check_file(path, filename, maps)
    judge_name = _imported_judge_name(source) if kind == Judgment.Kind.AI else None
    batch = _open_batch(None, project=project, filename=filename, kind="labels", user=user)
    result = ImportResult(filename=filename, batch_id=batch.pk)
    rejects = _Rejects(batch, filename) if skip_invalid else None
    with _recorded(batch, result, rejects), transaction.atomic():
        # Inside the transaction: a rejected import leaves no empty judge on the panel.
        judge = _imported_judge(project, judge_name) if judge_name else None
        failing = False
        chunk: list[tuple[int, dict]] = []
        for row in records.read_records(path, fmt):
            parsed = None
            error = row.error
            if error is None:
                try:
                    parsed = _label_row(
                        project, records.apply_maps(row.data, field_maps), default_aspect
                    )
                except records.RecordError as exc:
                    error = exc
            if error is not None:
                result.add_error(row.line, error)
                if rejects:
                    rejects.write(row.line, error, row.data)
                failing = failing or not skip_invalid
                continue
            if failing:
                continue
            chunk.append((row.line, parsed))
            if len(chunk) >= chunk_size:
                # An unknown id is an invalid row like any other: with skip_invalid it is
                # rejected and the import goes on; without, nothing more is written.
                unknown = _write_labels(project, batch, judge, source, kind, chunk, result, rejects)
                failing = failing or (unknown and not skip_invalid)
                chunk.clear()
                _forget_queries()
        if chunk and not failing:
            unknown = _write_labels(project, batch, judge, source, kind, chunk, result, rejects)
            failing = unknown and not skip_invalid
        if failing and not skip_invalid:
            raise _Rollback
    return result


def _label_row(project: Project, data: dict[str, Any], default_aspect: str) -> dict:
    raw_id = data.get("id")
    if raw_id is None or (isinstance(raw_id, str) and not raw_id.strip()):
        raise records.RecordError(
            "id", "missing: labels are matched to items by id (use --map id=YOUR_KEY)"
        )
    aspect = data.get("aspect") or default_aspect
    if aspect not in project.aspects:
        raise records.RecordError(
            "aspect", f"{aspect!r} is not one of the project's: {', '.join(project.aspects)}"
        )
    confidence = data.get("confidence")
    if confidence is not None:
        try:
            confidence = float(confidence)
        except (TypeError, ValueError):
            raise records.RecordError("confidence", f"{confidence!r} is not a number") from None
        if not 0.0 <= confidence <= 1.0:
            raise records.RecordError("confidence", "must be between 0 and 1")
    probabilities = data.get("probabilities")
    if probabilities is not None and not isinstance(probabilities, dict):
        raise records.RecordError("probabilities", 'must be an object such as {"a": 0.7, "b": 0.3}')
    rationale = data.get("rationale") or data.get("reason") or ""
    return {
        "id": str(raw_id).strip(),
        "aspect": aspect,
        "value": parse_label(project, data),
        "confidence": confidence,
        "probabilities": probabilities,
        "rationale": str(rationale),
    }


def _write_labels(
    project: Project,
    batch: ImportBatch,
    judge: Judge | None,
    source: str,
    kind: str,
    chunk: list[tuple[int, dict]],
    result: ImportResult,
    rejects: _Rejects | None,
) -> bool:
    """Write one chunk of labels; return True if a row named an unknown item."""
    item_pks = _item_pks(project, {parsed["id"] for _, parsed in chunk})
    if judge is not None:
        existing_qs = Judgment.objects.filter(
            judge=judge, prompt_version="imported", item_id__in=item_pks.values()
        )
    else:
        existing_qs = Judgment.objects.filter(
            source=source,
            external_annotator=source,
            judge__isnull=True,
            assignment__isnull=True,
            item_id__in=item_pks.values(),
        )
    existing = set(existing_qs.values_list("item_id", "aspect"))
    unknown = False
    now = timezone.now()
    new: list[Judgment] = []
    for line, parsed in chunk:
        pk = item_pks.get(parsed["id"])
        if pk is None:
            error = records.RecordError(
                "id", f"no item {parsed['id']!r} in project {project.slug!r}"
            )
            result.add_error(line, error)
            if rejects:
                rejects.write(line, error, parsed)
            unknown = True
            continue
        key = (pk, parsed["aspect"])
        if key in existing:
            result.skipped += 1
            continue
        existing.add(key)
        new.append(
            Judgment(
                item_id=pk,
                aspect=parsed["aspect"],
                kind=kind,
                source=source,
                task_type=project.task_type,
                value=parsed["value"],
                judge=judge,
                prompt_version="imported" if judge else "",
                external_annotator="" if judge else source,
                confidence=parsed["confidence"],
                probabilities=parsed["probabilities"],
                rationale=parsed["rationale"],
                import_batch=batch,
                created_at=now,
            )
        )
    Judgment.objects.bulk_create(new, batch_size=len(new) or 1)
    result.created += len(new)
    return unknown


def _imported_judge_name(source: str) -> str:
    """The judge name for `source`, refused before anything is written if it cannot be used."""
    name = slugify(source)[:100]
    if not name:
        raise ImportRefused(f"--source {source!r} has no letters or digits to name a judge by")
    if Judge.objects.filter(name=name).exclude(backend=Judge.Backend.IMPORTED).exists():
        raise ImportRefused(
            f"--source {source!r}: a model judge named {name!r} exists; name the imported labels differently"
        )
    return name


def _imported_judge(project: Project, name: str) -> Judge:
    judge, _ = Judge.objects.get_or_create(name=name, defaults={"backend": Judge.Backend.IMPORTED})
    project.judges.add(judge)
    return judge


def _forget_queries() -> None:
    """With DEBUG on (the default of a development machine) Django keeps the SQL of each query,
    and a bulk INSERT of one chunk is megabytes of SQL: without this, memory grew with the file
    (226 MiB for 100k items in bench/import.py). No effect with DEBUG off."""
    if settings.DEBUG:
        reset_queries()


# --- Shared -------------------------------------------------------------------------------------


def _item_pks(project: Project, external_ids: set[str]) -> dict[str, int]:
    """The ids of the project's items with these external ids (those that exist)."""
    if connection.vendor != "postgresql":
        return dict(
            Item.objects.filter(project=project, external_id__in=external_ids).values_list(
                "external_id", "pk"
            )
        )
    # One index lookup per id, whatever the planner believes. With `external_id IN (…)` it chose
    # to scan all the project's rows through an index on the project alone, because the
    # statistics (none yet, or taken before this import) count the project's rows as a handful:
    # each chunk of an import then read every row written so far (24 µs of server time per item
    # at 100k items, growing with the file). LIMIT 1 keeps the subquery from being turned into a
    # join, so the unique (project, external_id) index answers each id.
    table = connection.ops.quote_name(Item._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT wanted.external_id, hit.id"
            " FROM unnest(%s::varchar[]) AS wanted(external_id)"
            f" CROSS JOIN LATERAL (SELECT item.id FROM {table} AS item"
            "  WHERE item.project_id = %s AND item.external_id = wanted.external_id LIMIT 1) AS hit",
            [list(external_ids), project.pk],
        )
        return dict(cursor.fetchall())


def _verdict(project: Project, value: Any, field_name: str) -> dict:
    try:
        return project.validate_verdict(value)
    except verdicts.VerdictError as exc:
        raise records.RecordError(field_name, str(exc)) from None


def _int(value: Any, field_name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise records.RecordError(field_name, f"{value!r} is not a whole number") from None


def _check_file(path: str, filename: str, maps: list[str] | None) -> list[records.FieldMap]:
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise ImportRefused(f"{filename}: cannot read the file ({exc.strerror})") from None
    limit = settings.IMPORT_MAX_BYTES
    if size > limit:
        raise ImportRefused(
            f"{filename}: {size:,} bytes is over the import limit of {limit:,} bytes (setting IMPORT_MAX_BYTES)"
        )
    try:
        return records.parse_maps(maps)
    except ValueError as exc:
        raise ImportRefused(str(exc)) from None


def _open_batch(
    batch: ImportBatch | None, *, project: Project, filename: str, kind: str, user: Any
) -> ImportBatch:
    if batch is None:
        return ImportBatch.objects.create(
            project=project, filename=filename, kind=kind, created_by=user
        )
    batch.status = ImportBatch.Status.RUNNING
    batch.save(update_fields=["status"])
    return batch


def _close_batch(batch: ImportBatch, result: ImportResult, status: str, message: str) -> None:
    batch.status = status
    batch.created, batch.skipped, batch.invalid = result.created, result.skipped, result.invalid
    batch.errors = [
        {"line": e.line, "field": e.field, "reason": e.reason} for e in result.errors[:200]
    ]
    batch.rejects_path = result.rejects_path
    batch.message = message
    batch.save()


class _Rejects:
    """The rejects file of a --skip-invalid import: each bad row, its line and why, as JSONL."""

    def __init__(self, batch: ImportBatch, filename: str) -> None:
        folder = Path(settings.VAR_DIR) / "imports"
        folder.mkdir(parents=True, exist_ok=True)
        stem = Path(filename).name
        for suffix in (".gz", ".gzip", ".jsonl", ".ndjson", ".json", ".csv", ".parquet"):
            stem = stem.removesuffix(suffix)
        self.path = str(folder / f"{stem}.batch{batch.pk}.rejects.jsonl")
        self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, line: int, error: records.RecordError, data: Any) -> None:
        record = {"line": line, "field": error.field, "reason": error.reason, "row": data}
        self._file.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")

    def close(self) -> None:
        self._file.close()
        if os.path.getsize(self.path) == 0:
            os.remove(self.path)


# --- Uploads (web page and API) ------------------------------------------------------------------


_UPLOAD_SUFFIXES = tuple(
    f"{ext}{gz}" for gz in (".gz", "") for ext in (".jsonl", ".ndjson", ".json", ".csv", ".parquet")
)


def import_upload_accept(
    *, project: Project, upload: Any, options: dict[str, Any], user: Any
) -> ImportBatch:
    """Store an uploaded file and queue its import; the worker runs `import_batch_run`.

    The file is checked against the size limit before a byte is written, and streamed to disk in
    chunks, so a large upload never sits in memory.
    """
    limit = settings.IMPORT_MAX_BYTES
    if upload.size > limit:
        raise ImportRefused(
            f"{upload.name}: {upload.size:,} bytes is over the import limit of {limit:,} bytes"
        )
    try:
        records.parse_maps(options.get("maps"))
    except ValueError as exc:
        raise ImportRefused(str(exc)) from None
    folder = Path(settings.VAR_DIR) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    batch = ImportBatch.objects.create(
        project=project,
        filename=Path(upload.name).name[:500],
        kind="items",
        status=ImportBatch.Status.QUEUED,
        options=options,
        created_by=user,
    )
    # Keep the extension: the reader tells CSV from JSON by the name when no format is given
    # (slugify alone would turn "data.csv" into "datacsv").
    original = Path(upload.name).name
    suffix = next((s for s in _UPLOAD_SUFFIXES if original.lower().endswith(s)), "")
    stem = slugify(original[: len(original) - len(suffix)])[:80] or "upload"
    target = folder / f"batch{batch.pk}-{stem}{suffix}"
    with open(target, "wb") as out:
        for piece in upload.chunks():
            out.write(piece)
    batch.upload_path = str(target)
    batch.save(update_fields=["upload_path"])
    from annotate.tasks import import_file  # the task module imports this one

    transaction.on_commit(lambda: import_file.delay(batch.pk))
    return batch


def import_batch_run(*, batch: ImportBatch) -> ImportResult | None:
    """Run a queued upload's import (called by the worker). Failures end up on the batch row."""
    options = batch.options or {}
    try:
        return items_import(
            project=batch.project,
            path=batch.upload_path,
            filename=batch.filename,
            fmt=options.get("format") or None,
            maps=options.get("maps"),
            skip_invalid=bool(options.get("skip_invalid")),
            user=batch.created_by,
            batch=batch,
        )
    except ImportRejected:
        return None  # the service already recorded every invalid row on the batch
    except ImportRefused as exc:
        batch.status, batch.message = ImportBatch.Status.FAILED, str(exc)
        batch.save(update_fields=["status", "message"])
        return None
    finally:
        Path(batch.upload_path).unlink(missing_ok=True)
