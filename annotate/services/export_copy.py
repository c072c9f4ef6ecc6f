"""PostgreSQL fast path of raw exports: the database builds the rows and streams them with COPY.

Why: the Python path spends ~18 µs of CPU per raw judgment (driver, row dict, orjson or Arrow
conversion), which caps it near 50,000 rows per CPU-second; the target is 100,000 rows/s. On
PostgreSQL the per-judgment work moves into the database (one backend, on the other core) and
Python handles bytes in blocks and the item text once per item.

When: PostgreSQL and shape ``raw`` (`raw_copy_fast_path`), any filter and test split.

- JSONL: ``COPY (SELECT …) TO STDOUT (FORMAT binary)``; each row is the judgment's part of the
  line made by SQL (`_LINE_SQL`), its item id and its group key. Python writes the line from
  five pieces: the item's parts (external id; prompt, responses, models) made once per item by
  orjson from `exports._item_values`, the Python path's own code, and the group's columns.
- Parquet (and the Parquet files behind an HF folder): ``COPY (SELECT …) TO STDOUT (FORMAT
  csv)`` of typed columns (`_COLUMNS_SQL`), parsed by pyarrow's CSV reader in C++; the item and
  group columns are Arrow ``take``s of one small array per batch, and the Parquet writer writes
  row groups. A worker thread does the Arrow work of one batch (it releases the GIL) while the
  main thread receives the next batch: the two overlap with the database building it.

Items: per batch of judgment ids, a first COPY fetches the project's items among the batch's
judgments by primary key (``[external_id, prompt, responses]`` as JSON); rows of another
project's items (ids interleave) find no item and are left out. An item whose judgments span
batches is fetched once per batch.

Groups: aspect, kind, source, annotator, judge, prompt_version and task_type take few distinct
values. The database sends their group key (the columns joined by a control character that no
value holds, so that the key splits back) instead of escaping them per row, and Python makes
each group's columns once, as `_raw_rows` does: pseudonyms by `exports.pseudonym` (the salt never
reaches SQL), an imported human's source as "imported". Card counts, the total and the id range
come from one GROUP BY over those columns before the COPYs (the Python path counts in its loop
instead); a group that appears after it is made from its key. Progress is recorded after each
batch.

Rows are read from libpq directly while it holds some (`_copy_rows`): psycopg's per-row read
costs as much as the rest of the Parquet path's per-row work.

Equivalence with the Python path (tests/annotate/services/test_exports.py checks it on
PostgreSQL with quotes, backslashes, newlines, tabs, control characters and non-ASCII): the same
rows in the same order with the same values. JSONL bytes are identical except the spelling of
some floats (``confidence``: PostgreSQL writes ``1e-07`` where orjson writes ``1e-7``). Strings
are escaped by PostgreSQL's JSON escaper, which writes what orjson writes; stored JSON verdicts
are the same ``jsonb::text`` the Python path passes through.
"""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from django.db import connection
from django.db.models import Count, Max, Min
from psycopg import errors as psycopg_errors
from psycopg import pq

from annotate.models import Item, Judge, Judgment, Project
from annotate.services import exports

COPY_BATCH = 100_000  # judgment ids per COPY statement; progress is recorded between them
# Parquet holds a batch as CSV, then as Arrow columns with the item text repeated on each row
# (~1.5 KB a row in all), twice over while the next batch streams in: smaller batches.
PARQUET_BATCH = 20_000

_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8  # signature, flags 0, no extension


def raw_copy_fast_path(shape: str, file_format: str) -> bool:
    """Whether an export takes the PostgreSQL COPY path (see the module docstring)."""
    return connection.vendor == "postgresql" and shape == "raw"


# --- SQL ----------------------------------------------------------------------------------------

# Stored JSON passed through as text; NULL, JSON null and {} become null, as in `_raw_rows`.
_JSON_OR_NULL = "CASE WHEN {c} IS NULL OR {c} = 'null'::jsonb OR {c} = '{{}}'::jsonb THEN NULL ELSE {c}::text END"

# JSONL: the judgment's part of one line in three pieces joined by a separator (a control
# character, which JSON text never holds raw): ``{"id":N``, the rest from ``,"value":`` to
# created_at, and the row's group key. Python writes the head, the item's ``,"item_id":…``, the
# group's ``,"aspect":… ,"task_type":…`` (made once per group by orjson, as the Python path
# makes them), the rest and the item's prompt/responses/models. The group's columns are few
# distinct values: escaping them per row in SQL cost more than all of Python's splicing.
_LINE_SQL = """
SELECT concat(j.item_id, {sep}, '{{"id":', j.id, {sep},
    ',"value":', coalesce(j.value::text, 'null'),
    ',"probabilities":', coalesce({probabilities}, 'null'),
    ',"confidence":', CASE
           WHEN j.confidence IS NULL OR j.confidence IN ('NaN', 'Infinity', '-Infinity') THEN 'null'
           -- orjson writes integral floats as 1.0, PostgreSQL as 1
           WHEN j.confidence = floor(j.confidence) AND abs(j.confidence) < 1e15
               THEN j.confidence::text || '.0'
           ELSE j.confidence::text END,
    ',"signals":', coalesce({signals}, 'null'),
    ',"rationale":', to_json(j.rationale::text),
    ',"confidence_label":', to_json(j.confidence_label::text),
    ',"time_spent_ms":', coalesce(j.time_spent_ms::text, 'null'),
    ',"created_at":"',
    to_char(j.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), '"', {sep},
    {group_key})
FROM {judgment} j
WHERE j.id >= {low} AND j.id < {high}{where}
ORDER BY j.id
"""
# The columns that make a group (GROUP BY in `_plan`, the key in `_LINE_SQL`), in this order.
_GROUP_COLUMNS = (
    "kind",
    "aspect",
    "judge_id",
    "annotator_id",
    "external_annotator",
    "source",
    "prompt_version",
    "task_type",
)
_GROUP_KEY_SQL = (
    "concat_ws({sep}, j.kind, j.aspect, coalesce(j.judge_id::text, ''), "
    "coalesce(j.annotator_id::text, ''), j.external_annotator, j.source, j.prompt_version, "
    "j.task_type)"
)
# Candidates for the key's separator: the first one that no group value holds is used, so
# that distinct groups have distinct keys and a key splits back into its columns.
_SEPARATORS = [chr(c) for c in range(0x1F, 0x00, -1)]

# Parquet: typed columns for Arrow's CSV reader; `_CSV_COLUMNS` names them in this order.
_COLUMNS_SQL = """
SELECT j.item_id, j.id, {group_key}, j.value::text, {probabilities}, j.confidence, {signals},
    j.rationale, j.confidence_label, j.time_spent_ms,
    (extract(epoch FROM j.created_at) * 1000000)::int8
FROM {judgment} j
WHERE j.id >= {low} AND j.id < {high}{where}
ORDER BY j.id
"""
_CSV_COLUMNS = [
    "item_pk", "id", "group", "value", "probabilities", "confidence", "signals", "rationale",
    "confidence_label", "time_spent_ms", "created_us",
]  # fmt: skip
# Parquet: the project's items among a batch's rows (the ids come from the batch's CSV, so the
# lookups are by primary key; another project's items are left out and so are their rows).
_ITEMS_SQL = """
SELECT i.id, json_build_array(i.external_id, i.prompt, i.responses)::text
FROM {item_table} i
WHERE i.project_id = {project} AND i.id = ANY('{ids}'::bigint[])
"""
# JSONL: the project's items among a batch's judgments, "<id> <[external_id, prompt, responses]>",
# fetched by primary key (the ARRAY is computed once, so the lookups use the index).
_BATCH_ITEMS_SQL = """
SELECT concat(i.id, ' ', json_build_array(i.external_id, i.prompt, i.responses)::text)
FROM {item_table} i
WHERE i.project_id = {project} AND i.id = ANY(ARRAY(
    SELECT DISTINCT j.item_id FROM {judgment} j WHERE j.id >= {low} AND j.id < {high}{where}))
"""
# The group's columns, as `_GroupParts.values` gives them (Parquet takes them per row).
_GROUP_OUTPUT = ("aspect", "kind", "source", "annotator", "judge", "prompt_version", "task_type")


@dataclass
class _Plan:
    """What the GROUP BY pass found: the judgments to export and the maps SQL needs."""

    total: int
    low: int
    high: int
    sql: dict[str, str]  # format arguments shared by the COPY statements
    groups: _GroupParts


def _plan(project: Project, options: exports.ExportOptions, stats: exports._Stats) -> _Plan:
    """One pass for the card's counts, the annotators to pseudonymise and the id range."""
    from psycopg import sql as psql

    connection.ensure_connection()
    raw = connection.connection

    def lit(value: Any) -> str:
        return psql.Literal(value).as_string(raw)

    groups = (
        exports._raw_queryset(project, options)
        .order_by()
        .values_list(*_GROUP_COLUMNS)
        .annotate(n=Count("pk"), low=Min("pk"), high=Max("pk"))
    )
    judge_names = dict(Judge.objects.values_list("pk", "name"))
    maker = _GroupParts(project, judge_names)
    found: list[tuple] = []
    total, low, high = 0, None, None
    for *columns, n, lo, hi in groups:
        kind, aspect, judge_id = columns[:3]
        total += n
        low = lo if low is None else min(low, lo)
        high = hi if high is None else max(high, hi)
        stats.kinds[kind] += n
        stats.aspects[aspect] += n
        if judge_id:
            stats.judges[judge_names.get(judge_id, str(judge_id))] += n
        found.append(tuple("" if c is None else str(c) for c in columns))
    text = "".join("".join(columns) for columns in found)
    sep = next((c for c in _SEPARATORS if c not in text), None)
    if sep is None:  # every control character is in the data (never seen): say so
        raise exports.ExportError("no separator for the COPY path: every control character is used")
    maker.sep = sep.encode()
    for columns in found:
        maker.part(sep.join(columns).encode())
    stats.annotators.update(maker.names.values())

    where = ""
    if options.source != "all":
        where += f" AND j.kind = {lit(options.source)}"
    if options.aspect:
        where += f" AND j.aspect = {lit(options.aspect)}"
    sql = {
        "judgment": connection.ops.quote_name(Judgment._meta.db_table),
        "where": where,
        "probabilities": _JSON_OR_NULL.format(c="j.probabilities"),
        "signals": _JSON_OR_NULL.format(c="j.signals"),
        "item_table": connection.ops.quote_name(Item._meta.db_table),
        "project": str(int(project.pk)),
        "sep": lit(sep),
        "group_key": _GROUP_KEY_SQL.format(sep=lit(sep)),
    }
    return _Plan(
        total=total, low=low or 0, high=high if high is not None else -1, sql=sql, groups=maker
    )


class _GroupParts:
    """``,"aspect":…,"kind":…,"source":…,"annotator":…,"judge":…,"prompt_version":…,
    "task_type":…`` of each group key, made as the Python path makes them (`_raw_rows`)."""

    def __init__(self, project: Project, judge_names: dict[int, str]) -> None:
        self.project = project
        self.judge_names = judge_names
        self.names: dict[str, str] = {}  # pseudonym key → pseudonym
        self.parts: dict[bytes, bytes] = {}
        self.sep = b"\x1f"

    def part(self, key: bytes) -> bytes:
        """The group's columns as JSON (a piece of a JSONL line)."""
        part = self.parts.get(key)
        if part is None:
            values = dict(zip(_GROUP_OUTPUT, self.values(key), strict=True))
            dumps = orjson.dumps
            part = self.parts[key] = b"".join(
                b',"' + name.encode() + b'":' + dumps(value) for name, value in values.items()
            )
        return part

    def values(self, key: bytes) -> tuple[str | None, ...]:
        """The group's columns in `_GROUP_OUTPUT` order, as `_raw_rows` makes them."""
        columns = key.decode().split(self.sep.decode())
        if len(columns) != len(_GROUP_COLUMNS):
            # A group that appeared after `_plan` holding the separator: cannot be split back.
            raise exports.ExportError("judgments changed during the export; run it again")
        kind, aspect, judge_id, annotator_id, external, source, version, task_type = columns
        annotator = None
        if kind == Judgment.Kind.HUMAN:
            # The same key and function as the Python path (`who` in _raw_rows).
            who = f"user:{annotator_id}" if annotator_id else f"ext:{external or source}"
            annotator = self.names.get(who)
            if annotator is None:
                annotator = self.names[who] = exports.pseudonym(project=self.project, key=who)
            # An imported human's source is their name: say only where it came from.
            source = "annotate" if annotator_id else "imported"
        judge = self.judge_names.get(int(judge_id)) if judge_id else None
        return aspect, kind, source, annotator, judge, version, task_type


def _batches(plan: _Plan, size: int) -> list[tuple[int, int]]:
    return [(start, start + size) for start in range(plan.low, plan.high + 1, size)]


class _NoJit:
    """JIT off for the COPY statements: the item subquery's cost estimate crosses the JIT
    thresholds, and compiling costs more than it saves on a batch. Restored after."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor

    def __enter__(self) -> None:
        self.cursor.execute("SELECT current_setting('jit')")
        self.previous = self.cursor.fetchone()[0]
        self.cursor.execute("SET jit = off")

    def __exit__(self, *exc: Any) -> None:
        self.cursor.execute("SELECT set_config('jit', %s, false)", [self.previous])


def _copy_rows(cursor: Any, copy_sql: str) -> Iterator[memoryview]:
    """The rows of a ``COPY … TO STDOUT``, as libpq hands them over (one row a block).

    Why not iterate psycopg's Copy: its read() runs a wait generator per row (~1.5 µs, as much
    as the rest of Parquet's per-row work). Rows libpq already holds are taken straight from it
    (non-blocking); only when none is buffered does psycopg's read() wait for the socket."""
    with cursor.copy(copy_sql) as copy:
        pgconn = connection.connection.pgconn
        get = pgconn.get_copy_data
        while True:
            size, block = get(1)
            if size > 0:
                yield block
            elif size == 0:  # nothing buffered: psycopg waits (and handles the end if it comes)
                block = copy.read()
                if not block:
                    return
                yield block
            else:  # the end came buffered with the rows: collect the final result here
                failed = None
                # Every result is read (up to None) before raising: the connection stays usable.
                while (result := pgconn.get_result()) is not None:
                    if result.status != pq.ExecStatus.COMMAND_OK and failed is None:
                        failed = psycopg_errors.error_from_result(result, encoding="utf-8")
                if failed is not None:
                    raise failed
                return


def _parse_item(text: bytes | str, options: exports.ExportOptions) -> exports._ItemText | None:
    """The `_ItemText` of an item field's JSON, or None for another project's item (empty)."""
    if not text:
        return None
    ext, prompt, responses = orjson.loads(text)
    return exports._item_values(ext, prompt, responses, options)


# --- JSONL --------------------------------------------------------------------------------------


def _binary_fields(cursor: Any, copy_sql: str) -> Iterator[bytes]:
    """The one field of each row of a binary COPY.

    Framing: a 19-byte header, then per row an int16 field count (1), an int32 length and the
    bytes, and an int16 -1 trailer; libpq hands over one row per block."""
    first = True
    for block in _copy_rows(cursor, copy_sql):
        if first:
            first = False
            if bytes(block[:19]) != _BINARY_HEADER:
                raise exports.ExportError("unexpected COPY header")
            block = block[19:]
            if not block:
                continue
        if len(block) == 2:  # the trailer (a row is never this short)
            continue
        yield bytes(block[6:])


def _item_parts(
    cursor: Any, copy_sql: str, options: exports.ExportOptions
) -> dict[bytes, tuple[str, bytes, bytes]]:
    """Per item id: its split, ``,"item_id":…`` and ``,"prompt":…,"responses":…,"models":…}\\n``,
    serialised by orjson from `exports._item_values` (the Python path's item text)."""
    dumps = orjson.dumps
    parts = {}
    for field in _binary_fields(cursor, copy_sql):
        pk, _, text = field.partition(b" ")
        item = _parse_item(text, options)
        if item is not None:
            parts[pk] = (
                item.split,
                b',"item_id":' + dumps(item.external_id),
                b',"prompt":' + dumps(item.text) + b',"responses":' + dumps(item.responses)
                + b',"models":' + dumps(item.models) + b"}\n",
            )  # fmt: skip
    return parts


def _copy_lines(
    cursor: Any,
    copy_sql: str,
    groups: _GroupParts,
    items: dict[bytes, tuple[str, bytes, bytes]],
    sink: dict[str, Any],
) -> Counter:
    """Run a binary COPY of the line parts and write whole lines to the split's file."""
    counts: Counter = Counter()
    pending: dict[str, list[bytes]] = {}
    sep = groups.sep
    parts = groups.parts
    for line in _binary_fields(cursor, copy_sql):
        item_id, head, rest, key = line.split(sep, 3)  # the key last: it may hold the separator
        item = items.get(item_id)
        if item is None:  # a judgment of another project within the id range
            continue
        split, item_head, item_tail = item
        group = parts.get(key) or groups.part(key)
        lines = pending.get(split)
        if lines is None:
            lines = pending[split] = []
        lines += (head, item_head, group, rest, item_tail)
        if len(lines) >= 20_000:
            sink[split].write(b"".join(lines))
            counts[split] += len(lines) // 5
            lines.clear()
    for split, lines in pending.items():
        sink[split].write(b"".join(lines))
        counts[split] += len(lines) // 5
    return counts


def raw_jsonl_copy(
    *,
    project: Project,
    options: exports.ExportOptions,
    folder: Path,
    stats: exports._Stats,
    on_total: Callable[[int], None],
    on_progress: Callable[[int, int], None],
) -> int:
    """Write the split files of a raw JSONL export with COPY; the number of rows."""
    plan = _plan(project, options, stats)
    on_total(plan.total)
    splits = ["train", "test"] if options.test_fraction > 0 else ["train"]
    sink = {s: open(folder / f"{s}.jsonl", "wb") for s in splits}  # noqa: SIM115 — closed below
    written = 0
    try:
        with connection.cursor() as cursor, _NoJit(cursor):
            for start, end in _batches(plan, COPY_BATCH):
                span = {"low": int(start), "high": int(end), **plan.sql}
                query = _BATCH_ITEMS_SQL.format(**span)
                items = _item_parts(cursor, f"COPY ({query}) TO STDOUT (FORMAT binary)", options)
                query = _LINE_SQL.format(**span)
                counts = _copy_lines(
                    cursor, f"COPY ({query}) TO STDOUT (FORMAT binary)", plan.groups, items, sink
                )
                stats.rows.update(counts)
                batch = sum(counts.values())
                written += batch
                on_progress(batch, written)
    finally:
        for out in sink.values():
            out.close()
    return written


# --- Parquet ------------------------------------------------------------------------------------


class _ParquetBatches:
    """Turns one batch of CSV from COPY into Arrow tables and writes them, split by split."""

    def __init__(
        self,
        folder: Path,
        columns: list[tuple[str, Any]],
        options: exports.ExportOptions,
        groups: _GroupParts,
    ) -> None:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        self.folder = folder
        self.options = options
        self.groups = groups
        self.schema = pa.schema(columns)
        self.writers: dict[str, Any] = {}
        types = {f.name: f.type for f in self.schema}
        column_types = {name: types.get(name, pa.string()) for name in _CSV_COLUMNS}
        column_types.update(item_pk=pa.int64(), created_us=pa.int64())
        self.read_options = pacsv.ReadOptions(column_names=_CSV_COLUMNS, block_size=1 << 22)
        # Rationales and JSON may hold newlines: quoted fields may span lines.
        self.parse_options = pacsv.ParseOptions(newlines_in_values=True)
        # PostgreSQL's CSV writes NULL unquoted and empty, an empty string as "".
        self.convert_options = pacsv.ConvertOptions(
            column_types=column_types,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            null_values=[""],
            check_utf8=False,
        )
        self.item_options = (
            pacsv.ReadOptions(column_names=["pk", "item"], block_size=1 << 22),
            pacsv.ConvertOptions(column_types={"pk": pa.int64(), "item": pa.string()}),
        )

    def parse(self, data: bytes) -> Any:
        """A batch's CSV as an Arrow table (parsed in C++, without the GIL)."""
        import pyarrow as pa
        import pyarrow.csv as pacsv

        return pacsv.read_csv(
            pa.py_buffer(data),
            read_options=self.read_options,
            parse_options=self.parse_options,
            convert_options=self.convert_options,
        )

    def write(self, table: Any, item_csv: bytes) -> Counter:
        """Complete a batch with its items' columns and write it; rows per split."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pacsv

        counts: Counter = Counter()
        if not table.num_rows or not item_csv:
            return counts
        read, convert = self.item_options
        found = pacsv.read_csv(
            pa.py_buffer(item_csv),
            read_options=read,
            parse_options=self.parse_options,
            convert_options=convert,
        )
        present = [_parse_item(text, self.options) for text in found.column("item").to_pylist()]
        # Each row's item; none for another project's item (its rows are left out).
        which = pc.index_in(table.column("item_pk"), value_set=found.column("pk"))
        if which.null_count:
            keep = which.is_valid()
            table, which = table.filter(keep), which.filter(keep)
        which = which.combine_chunks()
        if table.num_rows == 0:
            return counts
        per_item = {
            "item_id": pa.array([i.external_id for i in present], pa.string()),
            "prompt": pa.array([i.text for i in present], pa.string()),
            "responses": pa.array([i.responses for i in present], pa.list_(pa.string())),
            "models": pa.array([i.models for i in present], pa.list_(pa.string())),
        }
        # The group's columns: a few distinct keys, made once each and taken per row.
        encoded = table.column("group").combine_chunks().dictionary_encode()
        values = [self.groups.values(key.encode()) for key in encoded.dictionary.to_pylist()]
        per_group = {
            name: pa.array([v[n] for v in values], pa.string()).take(encoded.indices)
            for n, name in enumerate(_GROUP_OUTPUT)
        }
        arrays = []
        for f in self.schema:
            if f.name in per_item:
                arrays.append(per_item[f.name].take(which))
            elif f.name in per_group:
                arrays.append(per_group[f.name])
            elif f.name == "created_at":
                arrays.append(pc.cast(table.column("created_us"), f.type))
            else:
                arrays.append(table.column(f.name))
        out = pa.Table.from_arrays(arrays, schema=self.schema)
        test = np.array([i.split == "test" for i in present])
        is_test = test[which.to_numpy()]
        if is_test.any():
            parts = {"train": out.filter(pa.array(~is_test)), "test": out.filter(pa.array(is_test))}
        else:
            parts = {"train": out}
        for split, part in parts.items():
            if part.num_rows:
                self._writer(split).write_table(part, row_group_size=exports.ROW_GROUP_ROWS)
                counts[split] += part.num_rows
        return counts

    def _writer(self, split: str) -> Any:
        import pyarrow.parquet as pq

        writer = self.writers.get(split)
        if writer is None:
            writer = self.writers[split] = pq.ParquetWriter(
                self.folder / f"{split}.parquet", self.schema, compression="zstd"
            )
        return writer

    def close(self, splits: list[str]) -> list[str]:
        for split in splits:  # an asked-for split exists even when empty
            self._writer(split)
        for writer in self.writers.values():
            writer.close()
        return [f"{split}.parquet" for split in sorted(self.writers)]


def _copy_bytes(cursor: Any, copy_sql: str) -> bytearray:
    """All of one COPY's output (appended as it comes: no list of a row's buffers)."""
    data = bytearray()
    for block in _copy_rows(cursor, copy_sql):
        data += block
    return data


def raw_parquet_copy(
    *,
    project: Project,
    options: exports.ExportOptions,
    folder: Path,
    columns: list[tuple[str, Any]],
    stats: exports._Stats,
    on_total: Callable[[int], None],
    on_progress: Callable[[int, int], None],
) -> list[str]:
    """Write the split Parquet files of a raw export with COPY; the file names."""
    import pyarrow.compute as pc

    plan = _plan(project, options, stats)
    on_total(plan.total)
    writer = _ParquetBatches(folder, columns, options, plan.groups)
    # One batch in the worker while the next one streams in: memory holds at most two batches.
    todo: queue.Queue = queue.Queue(maxsize=1)
    done: queue.Queue = queue.Queue()

    def work() -> None:
        while (batch := todo.get()) is not None:
            try:
                done.put(writer.write(*batch))
            except BaseException as exc:  # handed to the main thread, which raises it
                done.put(exc)
                return

    worker = threading.Thread(target=work, name="export-parquet", daemon=True)
    worker.start()
    written = 0
    in_flight = 0

    def collect() -> None:
        nonlocal written, in_flight
        result = done.get()
        in_flight -= 1
        if isinstance(result, BaseException):
            raise result
        stats.rows.update(result)
        batch = sum(result.values())
        written += batch
        on_progress(batch, written)

    splits = ["train", "test"] if options.test_fraction > 0 else ["train"]
    try:
        with connection.cursor() as cursor, _NoJit(cursor):
            for start, end in _batches(plan, min(COPY_BATCH, PARQUET_BATCH)):
                query = _COLUMNS_SQL.format(low=int(start), high=int(end), **plan.sql)
                table = writer.parse(_copy_bytes(cursor, f"COPY ({query}) TO STDOUT (FORMAT csv)"))
                item_csv = b""
                if table.num_rows:
                    ids = ",".join(map(str, pc.unique(table.column("item_pk")).to_pylist()))
                    query = _ITEMS_SQL.format(ids=f"{{{ids}}}", **plan.sql)
                    item_csv = _copy_bytes(cursor, f"COPY ({query}) TO STDOUT (FORMAT csv)")
                if in_flight:
                    collect()
                todo.put((table, item_csv))
                in_flight += 1
            while in_flight:
                collect()
    finally:
        while True:  # a worker that failed left its batch: make room for the stop signal
            try:
                todo.get_nowait()
            except queue.Empty:
                break
        todo.put(None)
        worker.join()
        names = writer.close(splits)
    return names
