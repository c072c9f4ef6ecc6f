"""Importing items and labels: one service behind the command, the upload page and the API.

Rows stream from `annotate.records` and are written in chunks. Idempotency needs no memory that
grows with the file: each chunk asks the database which of its ids exist (rows written by earlier
chunks of the same file are visible inside the transaction). By default one invalid row aborts the
whole import (nothing is written, every invalid row is reported); `skip_invalid` imports the valid
rows and writes the rejected ones, with their reasons, to a rejects file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, models, reset_queries, transaction
from django.utils import timezone
from django.utils.text import slugify
from psycopg.types.json import set_json_dumps

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
    with _recorded(batch, result, rejects), transaction.atomic():
        failing = False
        chunk: list[tuple[int, records.CanonicalItem]] = []
        for row, item in _valid_items(path, fmt, field_maps, project, adopt_k, result, rejects):
            if item is None:
                failing = failing or not skip_invalid
                continue
            if failing:
                continue  # keep validating to report every bad row, but write nothing more
            chunk.append((row, item))
            if len(chunk) >= chunk_size:
                _write_items(project, batch, chunk, result)
                chunk.clear()
                _forget_queries()
                if progress:
                    progress(result.created + result.skipped + result.invalid)
        if failing:
            raise _Rollback
        if chunk:
            _write_items(project, batch, chunk, result)
    return result


def _valid_items(
    path: str,
    fmt: str | None,
    field_maps: list[records.FieldMap],
    project: Project,
    adopt_k: bool,
    result: ImportResult,
    rejects: _Rejects | None,
) -> Iterator[tuple[int, records.CanonicalItem | None]]:
    k: int | None = None if adopt_k else project.num_responses
    for row in records.read_records(path, fmt):
        error = row.error
        item = None
        if error is None:
            try:
                item = records.normalise(records.apply_maps(row.data, field_maps), k=k)
                if item.gold_label is not None:
                    item.gold_label = _verdict(project, item.gold_label, "gold_label")
                if item.label is not None and project.task_type != TaskType.PAIRWISE:
                    raise records.RecordError(
                        "chosen", "a chosen/rejected pair needs a pairwise project"
                    )
                if (
                    item.label is not None
                    and item.label["strength"] == 0
                    and not project.allow_ties
                ):
                    raise records.RecordError("chosen", "tie label in a project without ties")
            except records.RecordError as exc:
                error, item = exc, None
        if error is not None:
            result.add_error(row.line, error)
            if rejects:
                rejects.write(row.line, error, row.data)
            yield row.line, None
            continue
        if k is None:
            k = _adopt_k(project, len(item.responses))
        yield row.line, item


def _adopt_k(project: Project, k: int) -> int:
    project.num_responses = k
    if k > 2 and project.task_type == TaskType.PAIRWISE:
        project.task_type = TaskType.RANKING
    project.save(update_fields=["num_responses", "task_type"])
    return k


def _write_items(
    project: Project,
    batch: ImportBatch,
    chunk: list[tuple[int, records.CanonicalItem]],
    result: ImportResult,
) -> None:
    ids = {item.external_id for _, item in chunk}
    existing = set(
        Item.objects.filter(project=project, external_id__in=ids).values_list(
            "external_id", flat=True
        )
    )
    now = timezone.now()
    new: list[records.CanonicalItem] = []
    for _, c in chunk:
        if c.external_id in existing:
            result.skipped += 1
            continue
        existing.add(c.external_id)  # a repeat inside the same chunk is also "already present"
        new.append(c)
    if not new:
        return
    if connection.vendor == "postgresql":
        _copy_items(project, batch, new, now)
        labelled = [c for c in new if c.label is not None]
        # COPY returns no ids; the labels need them.
        item_pks = (
            dict(
                Item.objects.filter(
                    project=project, external_id__in=[c.external_id for c in labelled]
                ).values_list("external_id", "pk")
            )
            if labelled
            else {}
        )
    else:
        items = [
            Item(
                project=project,
                external_id=c.external_id,
                content_hash=c.content_hash,
                prompt=c.prompt,
                responses=c.responses,
                metadata=c.metadata,
                is_gold=c.is_gold,
                gold_label=c.gold_label,
                import_batch=batch,
                created_at=now,
            )
            for c in new
        ]
        Item.objects.bulk_create(items, batch_size=len(items))
        labelled = [c for c in new if c.label is not None]
        item_pks = {
            item.external_id: item.pk for item, c in zip(items, new, strict=True) if c.label
        }
    result.created += len(new)
    if labelled:
        Judgment.objects.bulk_create(
            [
                Judgment(
                    item_id=item_pks[c.external_id],
                    aspect=project.aspects[0] if project.aspects else "overall",
                    kind=Judgment.Kind.HUMAN,
                    source="imported",
                    task_type=project.task_type,
                    value=c.label,
                    import_batch=batch,
                    created_at=now,
                )
                for c in labelled
            ],
            batch_size=len(labelled),
        )
        result.labels += len(labelled)


# The item columns an import fills from each row; every other column gets its model default.
_ITEM_ROW_FIELDS = (
    "external_id",
    "content_hash",
    "prompt",
    "responses",
    "metadata",
    "is_gold",
    "gold_label",
)


def _copy_items(
    project: Project, batch: ImportBatch, new: list[records.CanonicalItem], now: Any
) -> None:
    """Write new items with PostgreSQL's COPY (binary): bulk_create's INSERT … UNNEST spends most
    of its time quoting wide JSON values into arrays (profile of bench/import.py).

    Columns come from the model, so a column added later gets its default as with bulk_create.
    JSON values go to psycopg as Python objects (its jsonb dumper encodes them; a str would be
    stored as a JSON string), and None as SQL NULL, as JSONField writes it.
    """
    fields = [f for f in Item._meta.concrete_fields if not f.primary_key]
    fixed = {"project_id": project.pk, "import_batch_id": batch.pk, "created_at": now}
    plan: list[tuple[str | None, Any]] = []  # (attribute of the row, or None: a constant)
    for f in fields:
        if f.attname in _ITEM_ROW_FIELDS:
            plan.append((f.attname, None))
        else:
            plan.append((None, fixed[f.attname] if f.attname in fixed else f.get_default()))
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    table = connection.ops.quote_name(Item._meta.db_table)
    sql = f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        # orjson encodes the JSON columns several times faster than psycopg's default json.dumps
        # (the largest Python cost in a profile of bench/import.py).
        set_json_dumps(_orjson_dumps, context=cursor.cursor)
        copy.set_types([_copy_type(f) for f in fields])
        for c in new:
            copy.write_row(
                [constant if attr is None else getattr(c, attr) for attr, constant in plan]
            )


def _orjson_dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def _copy_type(f: models.Field) -> str:
    """The type name psycopg's binary COPY needs: the column type without its length."""
    return f.db_type(connection).split("(")[0]


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
    ids = {parsed["id"] for _, parsed in chunk}
    item_pks = dict(
        Item.objects.filter(project=project, external_id__in=ids).values_list("external_id", "pk")
    )
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
