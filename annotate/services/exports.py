"""Training exports: one service behind the export page, the API and `manage.py export_dataset`.

Shapes
- ``dpo``: TRL preference pairs ``prompt, chosen, rejected, margin`` from final labels; rankings
  and best–worst verdicts expand to pairs through `verdicts.to_preferences`.
- ``reward``: reward-model pairs with the prompt inside each side (``chosen``/``rejected`` are the
  whole conversation, as in hh-rlhf and TRL's implicit-prompt format) and a ``margin``.
- ``listwise``: one row per final label: the K responses, their ranks (1 = best) and scores.
- ``raw``: every judgment, human and AI, with annotators pseudonymised by a salted hash.

Formats: JSONL, Parquet (zstd, written one row group at a time) and a Hugging Face ``datasets``
folder (``save_to_disk``). Every export is a folder with one file per split and a dataset card.

Filters: label source, minimum agreement, aspect, ties dropped or kept, and a train/test split by
a hash of the whitespace-normalised prompt text, so one prompt never lands in both splits.

Memory stays bounded whatever the project's size: rows are read with ``.iterator(chunk_size)``
(server-side cursors on PostgreSQL) and written as they come; an item's text is fetched once per
chunk of labels or judgments, not once per row; the raw shape passes the stored JSON text of
verdicts through to the file without decoding it (``orjson.Fragment``). On PostgreSQL, raw
exports take a faster path: the database builds the rows and streams them with ``COPY … TO
STDOUT`` (`annotate.services.export_copy`); the output has the same rows and values.
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import logging
import os
import shutil
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings
from django.db import transaction
from django.db.models import Func, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from annotate import verdicts
from annotate.models import Export, FinalLabel, Item, Judge, Judgment, Project, RoutingRun

log = logging.getLogger(__name__)

SHAPES = ("dpo", "reward", "listwise", "raw")
FORMATS = ("jsonl", "parquet", "hf")
SOURCES = ("all", "human", "ai")
READ_CHUNK = 5000
ROW_GROUP_ROWS = 20_000
ALPHA_ITEMS = 20_000
CARD = "README.md"


class ExportError(ValueError):
    """An export cannot be made as asked (bad filters, unknown shape …); the message says why."""


# --- Options ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportOptions:
    source: str = "all"
    min_agreement: float | None = None
    aspect: str | None = None
    keep_ties: bool = False
    test_fraction: float = 0.0
    split_seed: str = ""
    conversational: bool = False
    labels_method: str | None = None  # recompute final labels with this method first

    def as_filters(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "min_agreement": self.min_agreement,
            "aspect": self.aspect,
            "keep_ties": self.keep_ties,
            "test_fraction": self.test_fraction,
            "split_seed": self.split_seed,
            "conversational": self.conversational,
            "labels_method": self.labels_method,
        }


def export_options_clean(*, project: Project, filters: dict[str, Any] | None) -> ExportOptions:
    """Validate the filters of an export (from a form, the API or the command)."""
    from annotate.services.labels import METHODS

    f = dict(filters or {})
    source = f.get("source") or "all"
    if source not in SOURCES:
        raise ExportError(f"source: {source!r} is not one of {', '.join(SOURCES)}")
    min_agreement = f.get("min_agreement")
    if min_agreement in ("", None):
        min_agreement = None
    else:
        try:
            min_agreement = float(min_agreement)
        except (TypeError, ValueError):
            raise ExportError(f"min_agreement: {min_agreement!r} is not a number") from None
        if not 0.0 <= min_agreement <= 1.0:
            raise ExportError("min_agreement: must be between 0 and 1")
    aspect = f.get("aspect") or None
    if aspect is not None and aspect not in project.aspects:
        raise ExportError(f"aspect: {aspect!r} is not one of {', '.join(project.aspects)}")
    try:
        test_fraction = float(f.get("test_fraction") or 0.0)
    except (TypeError, ValueError):
        raise ExportError("test_fraction: must be a number") from None
    if not 0.0 <= test_fraction < 1.0:
        raise ExportError("test_fraction: must be at least 0 and below 1")
    labels_method = f.get("labels_method") or None
    if labels_method is not None and labels_method not in METHODS:
        raise ExportError(f"labels_method: {labels_method!r} is not one of {', '.join(METHODS)}")
    return ExportOptions(
        source=source,
        min_agreement=min_agreement,
        aspect=aspect,
        keep_ties=_bool(f.get("keep_ties", False)),
        test_fraction=test_fraction,
        split_seed=str(f.get("split_seed") or "")[:100],
        conversational=_bool(f.get("conversational", False)),
        labels_method=labels_method,
    )


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on", "keep"}
    return bool(value)


# --- Helpers every shape uses -------------------------------------------------------------------


def prompt_text(prompt: Any) -> str:
    """A prompt as one string (chat turns become "role: content" paragraphs), as on Item."""
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(f"{t.get('role', 'user')}: {t.get('content', '')}" for t in prompt)


def prompt_messages(prompt: Any) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": t.get("role", "user"), "content": t.get("content", "")} for t in prompt]


def split_of(text: str, *, test_fraction: float, seed: str = "") -> str:
    """ "train" or "test" from a hash of the whitespace-normalised prompt: the same prompt
    always lands on the same side, in every export with the same seed and fraction."""
    if test_fraction <= 0:
        return "train"
    normal = " ".join(text.split())
    digest = hashlib.blake2b(f"{seed}\x00{normal}".encode(), digest_size=8).digest()
    return "test" if int.from_bytes(digest, "big") / 2**64 < test_fraction else "train"


def pseudonym(*, project: Project, key: str) -> str:
    """A stable, salted, non-reversible name for an annotator: the same person gets the same
    pseudonym in every export of this project, and unlinkable ones across projects."""
    salt = getattr(settings, "EXPORT_PSEUDONYM_SALT", "") or settings.SECRET_KEY
    digest = hmac.new(salt.encode(), f"{project.pk}:{key}".encode(), hashlib.sha256).hexdigest()
    return f"annotator-{digest[:12]}"


@dataclass
class _ItemText:
    external_id: str
    prompt: Any
    text: str
    responses: list[str]
    models: list[str]
    split: str


def _item_text(
    ext: str, prompt_json: str, responses_json: str, options: ExportOptions
) -> _ItemText:
    return _item_values(ext, orjson.loads(prompt_json), orjson.loads(responses_json), options)


def _item_values(ext: str, prompt: Any, responses: list[dict], options: ExportOptions) -> _ItemText:
    """An item's text as every export shape uses it (the COPY fast path too: one definition)."""
    text = prompt_text(prompt)
    return _ItemText(
        external_id=ext,
        prompt=prompt,
        text=text,
        responses=[r.get("text", "") for r in responses],
        models=[r.get("model", "") for r in responses],
        split=split_of(text, test_fraction=options.test_fraction, seed=options.split_seed),
    )


def _item_rows(qs: Any) -> Any:
    """(pk, external_id, prompt JSON text, responses JSON text) of an Item queryset."""
    return qs.annotate(
        prompt_json=Cast("prompt", TextField()), responses_json=Cast("responses", TextField())
    ).values_list("pk", "external_id", "prompt_json", "responses_json")


class _ItemCache:
    """Item text for one chunk of rows, fetched in one query per chunk."""

    def __init__(self, options: ExportOptions) -> None:
        self.options = options
        self.items: dict[int, _ItemText] = {}

    def load(self, ids: Iterable[int]) -> None:
        needed = set(ids)
        # Keep the cache to about the current chunk (rows of one item are usually adjacent).
        if len(self.items) > 4 * READ_CHUNK:
            self.items.clear()
        wanted = needed - self.items.keys()
        if not wanted:
            return
        low, high = min(wanted), max(wanted)
        if high - low < 2 * len(wanted):
            # Rows come in primary-key order, so a chunk's items are usually a dense range: a
            # range scan beats a thousand-parameter IN list (psycopg parses that client-side).
            qs = Item.objects.filter(pk__gte=low, pk__lte=high)
        else:
            qs = Item.objects.filter(pk__in=wanted)
        rows = _item_rows(qs)
        for pk, ext, prompt_json, responses_json in rows:
            self.items[pk] = _item_text(ext, prompt_json, responses_json, self.options)

    def __getitem__(self, pk: int) -> _ItemText:
        return self.items[pk]


def _chunks(rows: Iterator[tuple], size: int) -> Iterator[list[tuple]]:
    chunk: list[tuple] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- Shapes -------------------------------------------------------------------------------------


@dataclass
class _Stats:
    """What the export saw, for the Export row and the dataset card."""

    rows: Counter = field(default_factory=Counter)  # per split
    labels: Counter = field(default_factory=Counter)  # per label source
    aspects: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)
    ties_dropped: int = 0
    agreement_sum: float = 0.0
    agreement_n: int = 0
    annotators: set = field(default_factory=set)
    judges: Counter = field(default_factory=Counter)
    models: Counter = field(default_factory=Counter)


def _schema(shape: str, conversational: bool) -> list[tuple[str, Any]]:
    """Column names and Arrow types of a shape (JSONL writes the same names)."""
    import pyarrow as pa

    messages = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    text_or_chat = messages if conversational else pa.string()
    provenance = [
        ("label_source", pa.string()),
        ("label_method", pa.string()),
        ("num_humans", pa.int32()),
        ("agreement", pa.float64()),
        ("ai_confidence", pa.float64()),
    ]
    if shape == "dpo":
        return [
            ("id", pa.string()),
            ("item_id", pa.string()),
            ("aspect", pa.string()),
            ("prompt", text_or_chat),
            ("chosen", text_or_chat),
            ("rejected", text_or_chat),
            ("margin", pa.float64()),
            ("chosen_model", pa.string()),
            ("rejected_model", pa.string()),
            *provenance,
        ]
    if shape == "reward":
        return [
            ("id", pa.string()),
            ("item_id", pa.string()),
            ("aspect", pa.string()),
            ("chosen", text_or_chat),
            ("rejected", text_or_chat),
            ("margin", pa.float64()),
            ("chosen_model", pa.string()),
            ("rejected_model", pa.string()),
            *provenance,
        ]
    if shape == "listwise":
        return [
            ("id", pa.string()),
            ("item_id", pa.string()),
            ("aspect", pa.string()),
            ("prompt", text_or_chat),
            ("responses", pa.list_(pa.string())),
            ("models", pa.list_(pa.string())),
            ("ranks", pa.list_(pa.int32())),
            ("scores", pa.list_(pa.float64())),
            *provenance,
        ]
    if shape == "raw":
        return [
            ("id", pa.int64()),
            ("item_id", pa.string()),
            ("aspect", pa.string()),
            ("kind", pa.string()),
            ("source", pa.string()),
            ("annotator", pa.string()),
            ("judge", pa.string()),
            ("prompt_version", pa.string()),
            ("task_type", pa.string()),
            ("value", pa.string()),
            ("probabilities", pa.string()),
            ("confidence", pa.float64()),
            ("signals", pa.string()),
            ("rationale", pa.string()),
            ("confidence_label", pa.string()),
            ("time_spent_ms", pa.int64()),
            ("created_at", pa.timestamp("us", tz="UTC")),
            ("prompt", pa.string()),
            ("responses", pa.list_(pa.string())),
            ("models", pa.list_(pa.string())),
        ]
    raise ExportError(f"shape {shape!r} is not one of {', '.join(SHAPES)}")


def _label_queryset(project: Project, options: ExportOptions):
    qs = FinalLabel.objects.filter(item__project=project)
    if options.source != "all":
        qs = qs.filter(source=options.source)
    if options.aspect:
        qs = qs.filter(aspect=options.aspect)
    if options.min_agreement is not None:
        # Labels without a measure (AI labels, one human) cannot show they reach it: dropped.
        qs = qs.filter(agreement__gte=options.min_agreement)
    return qs


def _label_rows(
    shape: str,
    project: Project,
    options: ExportOptions,
    stats: _Stats,
    progress: Callable[[int], None],
) -> tuple[int, Iterator[tuple[str, dict]]]:
    qs = _label_queryset(project, options)
    total = qs.count()
    # The verdict comes as its JSON text and orjson decodes it: Django's JSONField converter
    # (the json module) cost more than the rest of a label row.
    rows = (
        qs.order_by("pk")
        .annotate(value_text=Cast("value", TextField()))
        .values_list(
            "item_id",
            "aspect",
            "value_text",
            "source",
            "method",
            "num_humans",
            "agreement",
            "ai_confidence",
            "task_type",
        )
        .iterator(chunk_size=READ_CHUNK)
    )
    k_default = project.num_responses

    def generate() -> Iterator[tuple[str, dict]]:
        cache = _ItemCache(options)
        for chunk in _chunks(rows, READ_CHUNK):
            cache.load(r[0] for r in chunk)
            for (
                item_id,
                aspect,
                value,
                source,
                method,
                num_humans,
                agreement,
                ai_conf,
                task_type,
            ) in chunk:
                item = cache[item_id]
                value = orjson.loads(value)
                provenance = {
                    "label_source": source,
                    "label_method": method,
                    "num_humans": num_humans,
                    "agreement": agreement,
                    "ai_confidence": ai_conf,
                }
                stats.labels[source] += 1
                stats.aspects[aspect] += 1
                if agreement is not None:
                    stats.agreement_sum += agreement
                    stats.agreement_n += 1
                k = len(item.responses) or k_default
                prefs = verdicts.to_preferences(task_type, value, k=k)
                base_id = f"{item.external_id}/{aspect}"
                if shape == "listwise":
                    row = _listwise_row(item, task_type, value, prefs, k, options, stats)
                    if row is not None:
                        yield (
                            item.split,
                            {
                                "id": base_id,
                                "item_id": item.external_id,
                                "aspect": aspect,
                                **row,
                                **provenance,
                            },
                        )
                    continue
                for p in prefs:
                    if p.is_tie and not options.keep_ties:
                        stats.ties_dropped += 1
                        continue
                    yield (
                        item.split,
                        {
                            "id": f"{base_id}/{p.winner}>{p.loser}",
                            "item_id": item.external_id,
                            "aspect": aspect,
                            **_pair_columns(shape, item, p, options),
                            "margin": float(p.strength),
                            "chosen_model": item.models[p.winner],
                            "rejected_model": item.models[p.loser],
                            **provenance,
                        },
                    )
            progress(len(chunk))

    return total, generate()


def _pair_columns(
    shape: str, item: _ItemText, p: verdicts.Preference, options: ExportOptions
) -> dict:
    chosen, rejected = item.responses[p.winner], item.responses[p.loser]
    if options.conversational:
        messages = prompt_messages(item.prompt)
        chosen_m = [{"role": "assistant", "content": chosen}]
        rejected_m = [{"role": "assistant", "content": rejected}]
        if shape == "dpo":
            return {"prompt": messages, "chosen": chosen_m, "rejected": rejected_m}
        return {"chosen": messages + chosen_m, "rejected": messages + rejected_m}
    if shape == "dpo":
        return {"prompt": item.text, "chosen": chosen, "rejected": rejected}
    return {"chosen": f"{item.text}\n\n{chosen}", "rejected": f"{item.text}\n\n{rejected}"}


def _listwise_row(
    item: _ItemText,
    task_type: str,
    value: dict,
    prefs: list[verdicts.Preference],
    k: int,
    options: ExportOptions,
    stats: _Stats,
) -> dict | None:
    """Ranks (1 = best, ties share a rank) and scores of the K responses of one label."""
    if task_type == verdicts.RANKING:
        ranks = list(value["ranks"])
    else:
        # Copeland: wins minus losses over the label's pairs (pairwise: the one pair; best–worst:
        # best > middles > worst, with the middles tied, as the verdict says nothing about them).
        copeland = [0.0] * k
        for p in prefs:
            if not p.is_tie:
                copeland[p.winner] += 1
                copeland[p.loser] -= 1
        ranks = [1 + sum(o > c for o in copeland) for c in copeland]
    if len(set(ranks)) == 1 and not options.keep_ties:
        stats.ties_dropped += 1
        return None
    scores = value.get("scores")
    if not scores or len(scores) != k:
        if task_type == verdicts.PAIRWISE:
            s = value["strength"]
            scores = [s / 2, -s / 2]  # the graded strength, split between A and B
        else:
            scores = [float(k - r) for r in ranks]
    prompt = prompt_messages(item.prompt) if options.conversational else item.text
    return {
        "prompt": prompt,
        "responses": item.responses,
        "models": item.models,
        "ranks": ranks,
        "scores": [float(s) for s in scores],
    }


class IsoTimestamp(Func):
    """A timestamp as ISO 8601 text in UTC, made by the database: parsing timestamps in Python
    (Django's psycopg loader is the pure-Python one) cost more than the rest of a raw row."""

    output_field = TextField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="""to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""",
            **extra,
        )

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', %(expressions)s)",
            **extra,
        )


def _raw_queryset(project: Project, options: ExportOptions):
    qs = Judgment.objects.filter(item__project=project)
    if options.source != "all":
        qs = qs.filter(kind=options.source)
    if options.aspect:
        qs = qs.filter(aspect=options.aspect)
    return qs


def _raw_rows(
    project: Project,
    options: ExportOptions,
    stats: _Stats,
    progress: Callable[[int], None],
    *,
    json_out: Callable[[str], Any],
) -> tuple[int, Iterator[tuple[str, dict]]]:
    """Every judgment as a row. `json_out` wraps the stored JSON text of verdicts: as it is for
    Parquet (a string column), `orjson.Fragment` for JSONL (embedded as an object, not re-parsed).
    """
    qs = _raw_queryset(project, options)
    total = qs.count()
    # JSON columns come as their stored text and go to the file as they are (no decode+encode);
    # timestamps come as ISO text. This loop runs once per judgment: keep it lean, and count
    # things for the card with SQL afterwards instead of here.
    rows = (
        qs.order_by("pk")
        .annotate(
            value_text=Cast("value", TextField()),
            probabilities_text=Cast("probabilities", TextField()),
            signals_text=Cast("signals", TextField()),
            created_text=IsoTimestamp("created_at"),
        )
        .values_list(
            "pk",
            "item_id",
            "aspect",
            "kind",
            "source",
            "annotator_id",
            "external_annotator",
            "judge_id",
            "prompt_version",
            "task_type",
            "value_text",
            "probabilities_text",
            "confidence",
            "signals_text",
            "rationale",
            "confidence_label",
            "time_spent_ms",
            "created_text",
        )
        .iterator(chunk_size=READ_CHUNK)
    )
    judge_names = dict(Judge.objects.values_list("pk", "name"))
    pseudonyms: dict[tuple, str] = {}
    empty_json = {None, "null", "{}"}

    def who(annotator_id: int | None, external: str, source: str) -> str:
        key = f"user:{annotator_id}" if annotator_id else f"ext:{external or source}"
        return pseudonym(project=project, key=key)

    def generate() -> Iterator[tuple[str, dict]]:
        cache = _ItemCache(options)
        human_kind = Judgment.Kind.HUMAN
        seen: Counter = Counter()  # one increment a row; a SQL GROUP BY afterwards costs a pass
        for chunk in _chunks(rows, READ_CHUNK):
            cache.load(r[1] for r in chunk)
            items = cache.items
            for (
                pk,
                item_id,
                aspect,
                kind,
                source,
                annotator_id,
                external,
                judge_id,
                pv,
                task_type,
                value,
                probabilities,
                confidence,
                signals,
                rationale,
                conf_label,
                time_ms,
                created_at,
            ) in chunk:
                item = items[item_id]
                seen[(kind, aspect, judge_id)] += 1
                if kind == human_kind:
                    key = (annotator_id, external, source)
                    annotator = pseudonyms.get(key)
                    if annotator is None:
                        annotator = pseudonyms[key] = who(annotator_id, external, source)
                    # An imported human's source is their name: say only where it came from.
                    source = "annotate" if annotator_id else "imported"
                else:
                    annotator = None
                yield (
                    item.split,
                    {
                        "id": pk,
                        "item_id": item.external_id,
                        "aspect": aspect,
                        "kind": kind,
                        "source": source,
                        "annotator": annotator,
                        "judge": judge_names.get(judge_id) if judge_id else None,
                        "prompt_version": pv,
                        "task_type": task_type,
                        "value": json_out(value),
                        "probabilities": None
                        if probabilities in empty_json
                        else json_out(probabilities),
                        "confidence": confidence,
                        "signals": None if signals in empty_json else json_out(signals),
                        "rationale": rationale,
                        "confidence_label": conf_label,
                        "time_spent_ms": time_ms,
                        "created_at": created_at,
                        "prompt": item.text,
                        "responses": item.responses,
                        "models": item.models,
                    },
                )
            progress(len(chunk))
        stats.annotators.update(pseudonyms.values())
        for (kind, aspect, judge_id), n in seen.items():
            stats.kinds[kind] += n
            stats.aspects[aspect] += n
            if judge_id:
                stats.judges[judge_names.get(judge_id, str(judge_id))] += n

    return total, generate()


# --- Writers ------------------------------------------------------------------------------------


class _JsonlSink:
    """One JSON Lines file per split, written in blocks of lines (one write call per block)."""

    BLOCK = 2000

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: dict[str, Any] = {}
        self.pending: dict[str, list[bytes]] = {}

    def write(self, split: str, row: dict) -> None:
        lines = self.pending.get(split)
        if lines is None:
            lines = self.pending[split] = []
            self.files[split] = open(self.folder / f"{split}.jsonl", "wb")  # noqa: SIM115 — closed in close()
        lines.append(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
        if len(lines) >= self.BLOCK:
            self.files[split].write(b"".join(lines))
            lines.clear()

    def close(self, splits: Iterable[str] = ()) -> list[str]:
        for split in splits:  # an asked-for split exists even when empty
            if split not in self.files:
                self.files[split] = open(self.folder / f"{split}.jsonl", "wb")  # noqa: SIM115
        for split, out in self.files.items():
            out.write(b"".join(self.pending.get(split, ())))
            out.close()
        return [f"{split}.jsonl" for split in sorted(self.files)]


class _ParquetSink:
    """One Parquet file per split, written one row group at a time (bounded memory)."""

    def __init__(self, folder: Path, columns: list[tuple[str, Any]]) -> None:
        import pyarrow as pa

        self.folder = folder
        self.schema = pa.schema(columns)
        self.buffers: dict[str, list[dict]] = {}
        self.writers: dict[str, Any] = {}

    def write(self, split: str, row: dict) -> None:
        buffer = self.buffers.get(split)
        if buffer is None:
            buffer = self.buffers[split] = []
        buffer.append(row)
        if len(buffer) >= ROW_GROUP_ROWS:
            self._flush(split)

    def _flush(self, split: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = self.buffers[split]
        if not rows:
            return
        # The row dicts become one struct array in C (twice as fast as a Python list per
        # column). Timestamps arrive as ISO text (see IsoTimestamp): Arrow parses them in C.
        as_read = pa.struct(
            [
                pa.field(f.name, pa.string()) if pa.types.is_timestamp(f.type) else f
                for f in self.schema
            ]
        )
        read = pa.Table.from_struct_array(pa.array(rows, type=as_read))
        arrays = [
            read.column(f.name).cast(f.type)
            if pa.types.is_timestamp(f.type)
            else read.column(f.name)
            for f in self.schema
        ]
        table = pa.Table.from_arrays(arrays, schema=self.schema)
        writer = self.writers.get(split)
        if writer is None:
            writer = self.writers[split] = pq.ParquetWriter(
                self.folder / f"{split}.parquet", self.schema, compression="zstd"
            )
        writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self.buffers[split] = []

    def close(self, splits: Iterable[str] = ()) -> list[str]:
        import pyarrow.parquet as pq

        for split in list(self.buffers):
            self._flush(split)
        for split in splits:  # an asked-for split exists even when empty
            if split not in self.writers:
                self.writers[split] = pq.ParquetWriter(
                    self.folder / f"{split}.parquet", self.schema, compression="zstd"
                )
        for writer in self.writers.values():
            writer.close()
        return [f"{split}.parquet" for split in sorted(self.writers)]


# --- Running an export --------------------------------------------------------------------------


def export_folder(export: Export) -> Path:
    return Path(settings.EXPORT_DIR) / export.project.slug / f"export-{export.pk}"


def export_create(
    *,
    project: Project,
    shape: str,
    file_format: str,
    filters: dict[str, Any] | None = None,
    user: Any = None,
    enqueue: bool = True,
) -> Export:
    """Record an export and queue it on a worker once the row is committed."""
    if shape not in SHAPES:
        raise ExportError(f"shape: {shape!r} is not one of {', '.join(SHAPES)}")
    if file_format not in FORMATS:
        raise ExportError(f"file_format: {file_format!r} is not one of {', '.join(FORMATS)}")
    options = export_options_clean(project=project, filters=filters)
    export = Export.objects.create(
        project=project,
        shape=shape,
        file_format=file_format,
        filters=options.as_filters(),
        created_by=user,
    )
    if enqueue:
        transaction.on_commit(lambda: _enqueue(export.pk))
    return export


def _enqueue(export_id: int) -> None:
    from annotate.tasks import export_dataset

    export_dataset.delay(export_id)


def export_claim(*, export_id: int) -> Export | None:
    """Mark a queued export running; None if it is gone or another delivery claimed it."""
    claimed = Export.objects.filter(pk=export_id, status=Export.Status.QUEUED).update(
        status=Export.Status.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return None
    return Export.objects.select_related("project").get(pk=export_id)


@contextmanager
def _fewer_gc_passes() -> Iterator[None]:
    """Run the cyclic garbage collector less often while an export runs.

    Why: the row loops allocate a few containers per row (dicts, lists) that never form cycles,
    and the collector's passes over them and the long-lived heap took ~17% of the CPU of a
    label export. Reference counting still frees every row; a pass still runs every 100,000
    allocations, so memory stays flat. The old thresholds come back afterwards."""
    previous = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def export_run(*, export: Export) -> Export:
    """Write the export's files and card; the row ends succeeded or failed with the reason."""
    try:
        with _fewer_gc_passes():
            _write(export)
    except Exception as exc:
        log.exception("export %s failed", export.pk)
        Export.mark_failed(export.pk, exc)
    export.refresh_from_db()
    return export


def _write(export: Export) -> None:
    from annotate.services import export_copy
    from annotate.services.labels import final_labels_compute

    project = export.project
    options = export_options_clean(project=project, filters=export.filters)
    folder = export_folder(export)
    if folder.exists():
        shutil.rmtree(folder)  # a redelivered or re-run export starts clean
    folder.mkdir(parents=True)
    Export.objects.filter(pk=export.pk).update(path=str(folder))

    if export.shape != "raw" and (
        options.labels_method or not FinalLabel.objects.filter(item__project=project).exists()
    ):
        final_labels_compute(project=project, method=options.labels_method or "majority")

    stats = _Stats()
    processed = 0
    written = 0

    def progress(n: int) -> None:
        nonlocal processed
        processed += n
        Export.objects.filter(pk=export.pk).update(processed=processed, rows=written)

    columns = _schema(export.shape, options.conversational)
    target = folder / "_parquet" if export.file_format == "hf" else folder
    target.mkdir(exist_ok=True)
    if export_copy.raw_copy_fast_path(export.shape, export.file_format):

        def copied(n: int, done: int) -> None:
            nonlocal written
            written = done
            progress(n)

        fast = {
            "project": project,
            "options": options,
            "folder": target,
            "stats": stats,
            "on_total": lambda total: Export.objects.filter(pk=export.pk).update(total=total),
            "on_progress": copied,
        }
        if export.file_format == "jsonl":
            export_copy.raw_jsonl_copy(**fast)
        else:
            names = export_copy.raw_parquet_copy(columns=columns, **fast)
            if export.file_format == "hf":
                _save_hf(folder, target, names)
        _finish(export, project, options, stats, folder, columns, written, processed)
        return

    if export.shape == "raw":
        json_out = orjson.Fragment if export.file_format == "jsonl" else str
        total, rows = _raw_rows(project, options, stats, progress, json_out=json_out)
    else:
        total, rows = _label_rows(export.shape, project, options, stats, progress)
    Export.objects.filter(pk=export.pk).update(total=total)

    if export.file_format == "jsonl":
        sink: _JsonlSink | _ParquetSink = _JsonlSink(target)
    else:
        sink = _ParquetSink(target, columns)
    try:
        for split, row in rows:
            sink.write(split, row)
            stats.rows[split] += 1
            written += 1
    finally:
        names = sink.close(["train", "test"] if options.test_fraction > 0 else ["train"])
    if export.file_format == "hf":
        _save_hf(folder, target, names)
    _finish(export, project, options, stats, folder, columns, written, processed)


def _finish(
    export: Export,
    project: Project,
    options: ExportOptions,
    stats: _Stats,
    folder: Path,
    columns: list[tuple[str, Any]],
    written: int,
    processed: int,
) -> None:
    """Write the dataset card and mark the export succeeded."""
    card_stats = _card_stats(export, project, options, stats)
    (folder / CARD).write_text(dataset_card(export=export, stats=card_stats, columns=columns))
    Export.objects.filter(pk=export.pk).update(
        status=Export.Status.SUCCEEDED,
        rows=written,
        processed=processed,
        files=_list_files(folder),
        stats=card_stats,
        finished_at=timezone.now(),
        error="",
    )


def _save_hf(folder: Path, parquet_dir: Path, names: list[str]) -> None:
    """Turn the split Parquet files into a `datasets` folder (save_to_disk), memory-mapped."""
    import datasets
    import pyarrow.parquet as pq

    datasets.disable_progress_bars()  # a worker's log is no terminal
    cache = folder / "_cache"
    splits = {}
    for name in names:
        split = name.rsplit(".", 1)[0]
        path = parquet_dir / name
        if pq.ParquetFile(path).metadata.num_rows == 0:
            # `datasets` can save an empty split but not load it back (0 shards): leave it out.
            continue
        splits[split] = datasets.Dataset.from_parquet(
            str(path), cache_dir=str(cache), keep_in_memory=False
        )
    if splits:
        datasets.DatasetDict(splits).save_to_disk(str(folder))
    del splits
    shutil.rmtree(parquet_dir, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)


def _list_files(folder: Path) -> list[dict[str, Any]]:
    return [
        {"name": str(p.relative_to(folder)), "bytes": p.stat().st_size}
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    ]


def _card_stats(export: Export, project: Project, options: ExportOptions, stats: _Stats) -> dict:
    from annotate.services.labels import agreement_alpha

    routing = (
        RoutingRun.objects.filter(project=project, status=RoutingRun.Status.APPLIED)
        .order_by("-applied_at", "-created_at")
        .first()
    )
    panel = list(project.judges.values_list("name", "backend"))
    # Alpha reads every human verdict: on a large project the card estimates it on every n-th
    # item (at most ALPHA_ITEMS items; the standard error is then well below 0.01).
    alpha_every = max(1, -(-Item.objects.filter(project=project).count() // ALPHA_ITEMS))
    return {
        "project": project.slug,
        "task_type": project.task_type,
        "num_responses": project.num_responses,
        "shape": export.shape,
        "format": export.file_format,
        "filters": options.as_filters(),
        "rows": dict(stats.rows),
        "labels_by_source": dict(stats.labels),
        "judgments_by_kind": dict(stats.kinds),
        "aspects": dict(stats.aspects),
        "ties_dropped": stats.ties_dropped,
        "mean_agreement": round(stats.agreement_sum / stats.agreement_n, 4)
        if stats.agreement_n
        else None,
        "labels_with_agreement": stats.agreement_n,
        "annotators": len(stats.annotators) if export.shape == "raw" else _human_count(project),
        "judges": [{"name": n, "backend": b} for n, b in panel],
        "judge_judgments": dict(stats.judges),
        "alpha": agreement_alpha(project=project, every=alpha_every),
        "alpha_every": alpha_every,
        "routing": (
            {
                "policy": routing.policy,
                "policy_version": routing.policy_version,
                "budget": routing.budget,
                "budget_kind": routing.budget_kind,
                "cost_per_judgment": routing.cost_per_judgment,
                "human_items": routing.human_items,
                "estimate": {
                    k: v
                    for k, v in (routing.estimate or {}).items()
                    if not isinstance(v, (list, dict))
                },
                "applied_at": routing.applied_at.isoformat() if routing.applied_at else None,
            }
            if routing
            else None
        ),
        "generated_at": timezone.now().isoformat(),
    }


def _human_count(project: Project) -> int:
    humans = Judgment.objects.filter(item__project=project, kind=Judgment.Kind.HUMAN)
    users = humans.filter(annotator__isnull=False).values("annotator_id").distinct().count()
    external = humans.filter(annotator__isnull=True).values("external_annotator").distinct().count()
    return users + external


_COLUMN_DOCS = {
    "id": "stable row id",
    "item_id": "the item's id in the source data",
    "aspect": "the question judged (e.g. overall, harmlessness)",
    "prompt": "the prompt (text, or chat messages in conversational form)",
    "chosen": "the preferred response",
    "rejected": "the other response",
    "margin": "preference strength: 2 much better, 1 slightly better, 0 tie",
    "chosen_model": "model that wrote the chosen response",
    "rejected_model": "model that wrote the rejected response",
    "label_source": "human (consensus of annotators) or ai (the panel's verdict)",
    "label_method": "majority, dawid_skene, or judge:<name>",
    "num_humans": "human judgments behind the label",
    "agreement": "share of the humans' pair directions matching the label (None below 2 humans)",
    "ai_confidence": "confidence of the AI verdict on the item, when there is one",
    "responses": "the K responses in canonical order",
    "models": "the model of each response",
    "ranks": "rank of each response, 1 = best, ties share a rank",
    "scores": "score of each response (Borda points, best–worst counts, or the judge's scores)",
    "kind": "human or ai",
    "source": "annotate / imported (humans) or the judge's source name",
    "annotator": "pseudonymised annotator (salted hash, stable within the project)",
    "judge": "the AI judge's name",
    "prompt_version": "the judge prompt version",
    "task_type": "pairwise, ranking or kwise",
    "value": "the verdict as JSON (shapes in the card below)",
    "probabilities": "the judge's verdict probabilities, JSON",
    "confidence": "the judge's confidence, 0..1",
    "signals": "the judge's uncertainty signals, JSON",
    "rationale": "the stated reason",
    "confidence_label": "the annotator's own confidence",
    "time_spent_ms": "time the annotator spent, measured on the server",
    "created_at": "when the judgment was made",
}


def dataset_card(*, export: Export, stats: dict, columns: list[tuple[str, Any]]) -> str:
    """The README.md of an export: what it holds, where its labels came from, how agreed."""
    splits = stats.get("rows") or {}
    ext = {"jsonl": "jsonl", "parquet": "parquet"}.get(export.file_format)
    lines = ["---", "tags:", "- preference", "- rlhf", f"- {export.shape}", "- hybridpref"]
    if ext:
        lines += ["configs:", "- config_name: default", "  data_files:"]
        for split in sorted(splits):
            lines += [f"  - split: {split}", f"    path: {split}.{ext}"]
    lines += ["---", "", f"# {export.project.name}: {export.get_shape_display()}", ""]
    lines += [
        f"Exported by hybridpref from project `{stats['project']}` "
        f"({stats['task_type']}, K={stats['num_responses']}) on {stats['generated_at'][:19]}Z "
        f"as {export.get_file_format_display()}.",
        "",
        "## Counts",
        "",
        "| split | rows |",
        "|---|---|",
        *(f"| {s} | {n} |" for s, n in sorted(splits.items())),
        f"| **total** | {sum(splits.values())} |",
        "",
    ]
    if stats.get("labels_by_source"):
        lines += [
            "Final labels read: "
            + ", ".join(f"{n} {s}" for s, n in sorted(stats["labels_by_source"].items()))
            + f"; ties dropped: {stats['ties_dropped']}.",
            "",
        ]
    if stats.get("judgments_by_kind"):
        lines += [
            "Judgments: "
            + ", ".join(f"{n} {k}" for k, n in sorted(stats["judgments_by_kind"].items()))
            + ".",
            "",
        ]
    lines += [
        "Aspects: "
        + (", ".join(f"{a} ({n})" for a, n in sorted(stats["aspects"].items())) or "none")
        + ".",
        "",
    ]
    lines += ["## Sources", ""]
    lines += [f"- Human annotators: {stats['annotators']} (pseudonymised in raw exports)."]
    if stats["judges"]:
        lines += [
            "- AI panel: "
            + ", ".join(f"`{j['name']}` ({j['backend']})" for j in stats["judges"])
            + "."
        ]
    else:
        lines += ["- AI panel: none."]
    lines += [
        "- Final labels: the human consensus where an item went to humans (median strength, "
        "Borda, best–worst counts, or Dawid–Skene), otherwise the most confident panel verdict.",
        "",
        "## Agreement",
        "",
    ]
    alpha = stats.get("alpha") or {}
    if alpha:
        every = stats.get("alpha_every", 1)
        sampled = f", every {every}th item" if every > 1 else ""
        lines += [f"| aspect | Krippendorff's alpha (ordinal{sampled}) |", "|---|---|"]
        lines += [f"| {a} | {'—' if v is None else f'{v:.3f}'} |" for a, v in alpha.items()]
        lines += [""]
    if stats.get("mean_agreement") is not None:
        lines += [
            f"Mean per-item agreement of the exported human labels: {stats['mean_agreement']:.3f} "
            f"over {stats['labels_with_agreement']} labels with two or more annotators.",
            "",
        ]
    lines += ["## Routing", ""]
    routing = stats.get("routing")
    if routing:
        lines += [
            f"Policy `{routing['policy']}` ({routing['policy_version']}), budget "
            f"{routing['budget']:g} {routing['budget_kind']}"
            + (
                f" at {routing['cost_per_judgment']:g} per judgment"
                if routing["cost_per_judgment"]
                else ""
            )
            + f"; {routing['human_items']} items went to humans.",
        ]
        if routing.get("estimate"):
            lines += [
                "Estimates at routing time: "
                + ", ".join(f"{k} = {v}" for k, v in routing["estimate"].items())
                + "."
            ]
        lines += [""]
    else:
        lines += [
            "No routing run was applied: every item kept the source it had (imported or annotated).",
            "",
        ]
    filters = stats["filters"]
    lines += [
        "## Filters",
        "",
        f"- label source: {filters['source']}",
        f"- minimum agreement: {filters['min_agreement'] if filters['min_agreement'] is not None else 'none'}",
        f"- aspect: {filters['aspect'] or 'all'}",
        f"- ties: {'kept' if filters['keep_ties'] else 'dropped'}",
        f"- test split: {filters['test_fraction']:g} of prompts by a hash of the prompt text"
        + (f" (seed `{filters['split_seed']}`)" if filters["split_seed"] else ""),
        "",
        "## Columns",
        "",
        *(f"- `{name}`: {_COLUMN_DOCS.get(name, '')}" for name, _ in columns),
        "",
        'Verdict shapes: pairwise `{"strength": -2..2}` (positive: the first response is better); '
        'ranking `{"ranks": [...]}` (1 = best); K-wise `{"best": i, "worst": j}`.',
        "",
    ]
    return "\n".join(lines)


# --- Files --------------------------------------------------------------------------------------


def export_file_path(*, export: Export, name: str) -> Path:
    """The path of one file of a finished export; refuses names outside its folder."""
    if export.status != Export.Status.SUCCEEDED or not export.path:
        raise ExportError("this export has no files (yet)")
    folder = Path(export.path).resolve()
    path = (folder / name).resolve()
    if folder not in path.parents or not path.is_file():
        raise ExportError(f"no file {name!r} in this export")
    return path


class _Pipe:
    """A write-only file object that hands what is written to a generator (for streaming zips)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.offset = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset

    def flush(self) -> None:
        pass

    def drain(self) -> Iterator[bytes]:
        parts, self.parts = self.parts, []
        yield from parts


def export_zip_stream(*, export: Export, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The export's folder as a zip, produced while it is sent (memory: one chunk)."""
    if export.status != Export.Status.SUCCEEDED or not export.path:
        raise ExportError("this export has no files (yet)")
    folder = Path(export.path)
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:  # type: ignore[arg-type]
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            with (
                open(path, "rb") as src,
                zf.open(str(path.relative_to(folder)), "w", force_zip64=True) as dst,
            ):
                while block := src.read(chunk):
                    dst.write(block)
                    yield from pipe.drain()
            yield from pipe.drain()
    yield from pipe.drain()


def export_delete(*, export: Export) -> None:
    """Remove an export and its files."""
    if export.path and os.path.isdir(export.path):
        shutil.rmtree(export.path, ignore_errors=True)
    export.delete()


def exports_of(*, project: Project, limit: int = 20) -> list[Export]:
    return list(Export.objects.filter(project=project).select_related("created_by")[:limit])
