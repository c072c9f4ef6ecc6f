"""Reading import files row by row, and turning each row into a canonical item.

Pure Python (no database): the import service streams `read_records()` into `normalise()` and
writes the results in chunks. Every row keeps its line (or row) number so an error can name it.

Formats: JSONL, JSON array, CSV, Parquet; each may be gzip-compressed (detected by its magic
bytes, not its name). All are streamed: a JSON array is decoded one element at a time.

Row shapes (detected per row):
- canonical:  {"id", "prompt", "responses": [{"model", "text"}, ...], "metadata"}
- pair:       {"prompt", "chosen", "rejected"}        → 2 responses + an imported label
- transcript: {"chosen", "rejected"} (hh-rlhf)        → shared turns = prompt, last turns = responses
- columns:    {"prompt", "response_1".."response_K", "model_1".."model_K"}
`--map target=source[+source...]` renames keys first; several sources are joined by a blank line
(PandaLM: prompt=instruction+input). `source|split:SEP:N` takes the N-th part of a split value
(PandaLM: model_1=cmp_key|split:_:0).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

FORMATS = ("jsonl", "json", "csv", "parquet")
CHAT_ROLES = {"system", "user", "assistant"}
_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"
_TRANSCRIPT_TURN = re.compile(r"\n\n(Human|Assistant): ")
_COLUMN_KEY = re.compile(r"(response|model)_\d+")
# Built once: json.dumps(**options) builds a new encoder on every call, a third of its cost here.
_PAIR_JSON = json.JSONEncoder(ensure_ascii=False)
_KNOWN_KEYS = {
    "id",
    "prompt",
    "responses",
    "metadata",
    "chosen",
    "rejected",
    "is_gold",
    "gold",
    "gold_label",
}


class RecordError(ValueError):
    """A row that cannot become an item. `field` names the offending key."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class FileFormatError(ValueError):
    """The file as a whole cannot be read (unknown format, not gzip, broken Parquet)."""


@dataclass(slots=True)
class Row:
    line: int
    data: dict[str, Any] | None
    error: RecordError | None = None


@dataclass(slots=True)
class CanonicalItem:
    external_id: str
    content_hash: str
    prompt: str | list[dict[str, str]]
    responses: list[dict[str, str]]
    metadata: dict[str, Any] = field(default_factory=dict)
    is_gold: bool = False
    gold_label: dict | None = None
    # A label that came with the row (a chosen/rejected pair): a pairwise verdict value.
    label: dict | None = None


# --- Mapping -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldMap:
    """target ← sources. Several sources are joined with a blank line; `|split:SEP:N` takes a part."""

    target: str
    sources: tuple[str, ...]
    split: tuple[str, int] | None = None

    @classmethod
    def parse(cls, spec: str) -> FieldMap:
        target, sep, rest = spec.partition("=")
        if not sep or not target.strip() or not rest.strip():
            raise ValueError(f"--map {spec!r}: write target=source or target=source1+source2")
        split = None
        if "|" in rest:
            rest, _, transform = rest.partition("|")
            match = re.fullmatch(r"split:(.+):(-?\d+)", transform)
            if not match:
                raise ValueError(f"--map {spec!r}: the only transform is |split:SEP:N")
            split = (match.group(1), int(match.group(2)))
        sources = tuple(s.strip() for s in rest.split("+") if s.strip())
        return cls(target=target.strip(), sources=sources, split=split)

    def apply(self, row: dict[str, Any]) -> Any:
        values = [row.get(s) for s in self.sources]
        present = [v for v in values if not _is_blank(v)]
        if self.split:
            sep, index = self.split
            if not present:
                return None
            parts = str(present[0]).split(sep)
            try:
                return parts[index]
            except IndexError:
                raise RecordError(
                    self.sources[0], f"has no part {index} when split on {sep!r}"
                ) from None
        if len(self.sources) == 1:
            return values[0]
        return "\n\n".join(str(v) for v in present)


def parse_maps(specs: list[str] | None) -> list[FieldMap]:
    return [FieldMap.parse(spec) for spec in specs or []]


def apply_maps(row: dict[str, Any], maps: list[FieldMap]) -> dict[str, Any]:
    if not maps:
        return row
    mapped = dict(row)
    consumed: set[str] = set()
    for fmap in maps:
        mapped[fmap.target] = fmap.apply(row)
        consumed.update(fmap.sources)
    # A source that is also some map's target (a swap, a=b b=a) holds its new value: keep it.
    for key in consumed - {fmap.target for fmap in maps}:
        mapped.pop(key, None)
    return mapped


def _is_blank(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and not value.strip())
    )


# --- Reading -----------------------------------------------------------------------------------


def open_binary(path: str) -> IO[bytes]:
    """Open a file, transparently un-gzipping it when its first bytes say it is gzip."""
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    if raw.read(2) == _GZIP_MAGIC:
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw, mode="rb")
    raw.seek(0)
    return raw


def detect_format(path: str, head: bytes) -> str:
    name = path.lower().removesuffix(".gz").removesuffix(".gzip")
    if head.startswith(_PARQUET_MAGIC) or name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".jsonl") or name.endswith(".ndjson"):
        return "jsonl"
    stripped = head.lstrip()
    if stripped.startswith(b"["):
        return "json"
    if stripped.startswith(b"{"):
        return "jsonl"
    if name.endswith(".json"):
        return "json"  # not an array: the JSON reader says so
    raise FileFormatError(
        f"{path}: cannot tell the format; name it .jsonl, .json, .csv or .parquet"
    )


def read_records(path: str, fmt: str | None = None) -> Iterator[Row]:
    """Yield every row of the file with its line number (JSON, CSV) or row number (Parquet)."""
    with open_binary(path) as stream:
        head = stream.peek(64)[:64] if hasattr(stream, "peek") else b""
        fmt = fmt or detect_format(path, head)
        if fmt not in FORMATS:
            raise FileFormatError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
        if fmt == "jsonl":
            yield from _read_jsonl(stream)
        elif fmt == "json":
            yield from _read_json_array(stream, path)
        elif fmt == "csv":
            yield from _read_csv(stream)
        else:
            yield from _read_parquet(stream, path)


def _loads(line: str) -> Any:
    """orjson when it can (several times faster); the standard parser otherwise, which also
    accepts the bare NaN some data sets contain and gives the error message with its column."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)


def _read_jsonl(stream: IO[bytes]) -> Iterator[Row]:
    # Lines are decoded one by one, so a line that is not UTF-8 is reported on its own line and
    # the lines around it are still read (a text wrapper fails on its whole read-ahead buffer).
    for line_no, raw in enumerate(stream, start=1):
        try:
            # The common case, straight from the bytes: orjson checks the UTF-8 itself, and a
            # line it refuses (a BOM, bad UTF-8, NaN, broken JSON, a blank line) takes the
            # slower path below, which says why.
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            row = _slow_jsonl_row(line_no, raw)
            if row is not None:
                yield row
            continue
        yield _object_row(line_no, data)


def _slow_jsonl_row(line_no: int, raw: bytes) -> Row | None:
    try:
        line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        return Row(line_no, None, RecordError("encoding", f"not UTF-8 ({exc.reason})"))
    if not line.strip():
        return None
    try:
        data = _loads(line)
    except json.JSONDecodeError as exc:
        return Row(
            line_no,
            None,
            RecordError("json", f"not valid JSON ({exc.msg} at column {exc.colno})"),
        )
    return _object_row(line_no, data)


def _object_row(line_no: int, data: Any) -> Row:
    if not isinstance(data, dict):
        return Row(
            line_no, None, RecordError("json", f"expected an object, got {type(data).__name__}")
        )
    return Row(line_no, data)


def _read_json_array(stream: IO[bytes], path: str) -> Iterator[Row]:
    """Decode a top-level JSON array one element at a time, so memory stays flat.

    Python's decoder accepts bare NaN, which real data sets (PandaLM) contain.
    """
    decoder = json.JSONDecoder()
    reader = codecs.getincrementaldecoder("utf-8")()
    buffer = ""
    pos = 0
    line = 1  # line number at buffer[pos]
    started = False
    eof = False

    def refill() -> bool:
        nonlocal buffer, pos
        chunk = stream.read(1 << 20)
        buffer = buffer[pos:] + reader.decode(chunk, final=not chunk)
        pos = 0
        return bool(chunk)

    def skip_ws() -> None:
        nonlocal pos, line
        while True:
            while pos < len(buffer) and buffer[pos] in " \t\r\n":
                if buffer[pos] == "\n":
                    line += 1
                pos += 1
            if pos < len(buffer) or not refill():
                return

    skip_ws()
    if pos >= len(buffer) or buffer[pos] != "[":
        raise FileFormatError(f"{path}: a .json file must hold an array of objects")
    pos += 1
    started = True
    while started and not eof:
        skip_ws()
        if pos >= len(buffer):
            yield Row(line, None, RecordError("json", "the array is not closed with ]"))
            return
        if buffer[pos] == "]":
            return
        while True:
            try:
                data, end = decoder.raw_decode(buffer, pos)
                break
            except json.JSONDecodeError as exc:
                # Count from this element's start in the buffer the error was found in: refill()
                # re-bases the buffer, and exc.lineno counts from the buffer's start, not the file's.
                error_line = line + buffer.count("\n", pos, max(exc.pos, pos))
                if refill():
                    continue
                yield Row(error_line, None, RecordError("json", f"not valid JSON ({exc.msg})"))
                return
        start_line = line
        line += buffer.count("\n", pos, end)
        pos = end
        if isinstance(data, dict):
            yield Row(start_line, data)
        else:
            yield Row(
                start_line,
                None,
                RecordError("json", f"expected an object, got {type(data).__name__}"),
            )
        skip_ws()
        if pos < len(buffer) and buffer[pos] == ",":
            pos += 1
        elif pos < len(buffer) and buffer[pos] == "]":
            return
        else:
            yield Row(line, None, RecordError("json", "expected , or ] between array elements"))
            return


def _read_csv(stream: IO[bytes]) -> Iterator[Row]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    header = next(reader, None) or []
    row_start = reader.line_num + 1
    for values in reader:
        if not values:  # a blank line: not a row, but it moves the next row's line number
            row_start = reader.line_num + 1
            continue
        if len(values) > len(header):
            yield Row(row_start, None, RecordError("csv", "more values than header columns"))
        else:
            # Missing trailing values read as empty, as csv.DictReader does.
            padded = values + [""] * (len(header) - len(values))
            yield Row(
                row_start,
                {k: (v if v != "" else None) for k, v in zip(header, padded, strict=True)},
            )
        row_start = reader.line_num + 1


def _read_parquet(stream: IO[bytes], path: str) -> Iterator[Row]:
    import pyarrow.parquet as pq  # imported here: pyarrow is heavy and only Parquet needs it

    source: Any = stream
    if isinstance(stream, gzip.GzipFile):
        # Parquet needs random access; a gzipped Parquet file is rare, so spill it to memory-mapped
        # temporary storage rather than support seeking in gzip.
        import tempfile

        spill = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the Parquet reader
        while chunk := stream.read(1 << 20):
            spill.write(chunk)
        spill.seek(0)
        source = spill
    try:
        parquet = pq.ParquetFile(source)
    except Exception as exc:  # pyarrow raises several unrelated types for a broken file
        raise FileFormatError(f"{path}: not a readable Parquet file ({exc})") from None
    row_no = 0
    for batch in parquet.iter_batches(batch_size=2048):
        for data in batch.to_pylist():
            row_no += 1
            yield Row(row_no, data)


# --- Normalising -------------------------------------------------------------------------------


def normalise(data: dict[str, Any], *, k: int | None) -> CanonicalItem:
    """One raw row → a canonical item, or RecordError naming the field. `k`: expected responses."""
    label = None
    if "responses" in data:
        prompt = _prompt(data.get("prompt"))
        responses = _responses(data["responses"])
    elif "chosen" in data and "rejected" in data and not _is_blank(data.get("prompt")):
        prompt = _prompt(data.get("prompt"))
        chosen, rejected = _text("chosen", data["chosen"]), _text("rejected", data["rejected"])
        responses, label = _pair(prompt, chosen, rejected)
    elif "chosen" in data and "rejected" in data:
        prompt, chosen, rejected = _split_transcripts(data["chosen"], data["rejected"])
        responses, label = _pair(prompt, chosen, rejected)
    elif "response_1" in data:
        prompt = _prompt(data.get("prompt"))
        responses = _response_columns(data)
    else:
        raise RecordError(
            "responses", "no responses: give responses, chosen/rejected, or response_1..K"
        )
    if k is not None and len(responses) != k:
        raise RecordError(
            "responses", f"expected {k} responses (the project's K), got {len(responses)}"
        )

    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise RecordError("metadata", "must be an object")
    metadata = dict(metadata)
    # Nothing is lost: keys we do not model are kept as metadata.
    for key, value in data.items():
        if key not in _KNOWN_KEYS and not _COLUMN_KEY.fullmatch(key) and key not in metadata:
            metadata[key] = None if isinstance(value, float) and math.isnan(value) else value

    content_hash = hash_content(prompt, responses)
    raw_id = data.get("id")
    if _is_blank(raw_id):
        external_id = f"sha256:{content_hash[:40]}"
    else:
        external_id = str(raw_id).strip()
        if len(external_id) > 255:
            raise RecordError("id", "longer than 255 characters")
    is_gold = _truthy(data.get("is_gold", data.get("gold")))
    gold_label = data.get("gold_label")
    if gold_label is not None and not isinstance(gold_label, dict):
        raise RecordError("gold_label", 'must be a verdict object, e.g. {"strength": 2}')
    return CanonicalItem(
        external_id=external_id,
        content_hash=content_hash,
        prompt=prompt,
        responses=responses,
        metadata=metadata,
        is_gold=is_gold or gold_label is not None,
        gold_label=gold_label,
        label=label,
    )


def hash_content(prompt: Any, responses: list[dict]) -> str:
    """A stable hash of what is judged: the identity of an item that came without an id.

    The bytes hashed are JSON with sorted keys, compact separators and UTF-8 text (what the
    standard encoder writes with sort_keys, ensure_ascii=False and separators=(",", ":"), which
    made the hashes already stored); orjson writes the same bytes several times faster.
    """
    canonical = {
        "prompt": prompt,
        "responses": [[r.get("model", ""), r["text"]] for r in responses],
    }
    try:
        return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()
    except orjson.JSONEncodeError as exc:
        if "surrogates" in str(exc):
            # A JSON "\ud800" escape decodes to a lone surrogate, which no database can store.
            raise RecordError("text", "contains an unpaired surrogate (invalid Unicode)") from None
        raise


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes"}
    return bool(value) and not (isinstance(value, float) and math.isnan(value))


def _text(field_name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return str(value)
    raise RecordError(
        field_name, f"must be text, got {type(value).__name__ if value is not None else 'nothing'}"
    )


def _prompt(value: Any) -> str | list[dict[str, str]]:
    if isinstance(value, str):
        if not value.strip():
            raise RecordError("prompt", "is empty")
        return value
    if isinstance(value, list):
        if not value:
            raise RecordError("prompt", "the chat has no turns")
        turns = []
        for i, turn in enumerate(value):
            if not isinstance(turn, dict) or not isinstance(turn.get("content"), str):
                raise RecordError(
                    f"prompt[{i}]", 'each turn needs {"role", "content"} with text content'
                )
            role = turn.get("role")
            if role not in CHAT_ROLES:
                raise RecordError(
                    f"prompt[{i}].role",
                    f"must be one of {', '.join(sorted(CHAT_ROLES))}, got {role!r}",
                )
            turns.append({"role": role, "content": turn["content"]})
        return turns
    raise RecordError(
        "prompt",
        "missing" if _is_blank(value) else f"must be text or a chat, got {type(value).__name__}",
    )


def _responses(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or len(value) < 2:
        raise RecordError("responses", "must be a list of at least 2 responses")
    out = []
    for i, response in enumerate(value):
        if isinstance(response, str):
            out.append({"model": "", "text": response})
            continue
        if not isinstance(response, dict):
            raise RecordError(f"responses[{i}]", 'must be {"model", "text"} or a string')
        text = response.get("text")
        if not isinstance(text, str):
            raise RecordError(f"responses[{i}].text", "missing or not text")
        model = response.get("model") or ""
        out.append({"model": str(model), "text": text})
    return out


def _response_columns(data: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    i = 1
    while f"response_{i}" in data:
        text = data[f"response_{i}"]
        out.append(
            {
                "model": str(data.get(f"model_{i}") or ""),
                "text": _text(f"response_{i}", "" if text is None else text),
            }
        )
        i += 1
    if len(out) < 2:
        raise RecordError("response_2", "at least response_1 and response_2 are needed")
    return out


def _pair(prompt: Any, chosen: str, rejected: str) -> tuple[list[dict[str, str]], dict]:
    """Place chosen and rejected in a canonical order decided by their content, not their role.

    If chosen were always response A, a judge with a position bias would look right and
    annotators could learn the pattern; hashing spreads chosen evenly over A and B, reproducibly.
    """
    coin = (
        hashlib.sha256(
            _PAIR_JSON.encode([prompt, chosen, rejected]).encode("utf-8", "surrogatepass")
        ).digest()[0]
        & 1
    )
    if coin == 0:
        return [{"model": "", "text": chosen}, {"model": "", "text": rejected}], {"strength": 1}
    return [{"model": "", "text": rejected}, {"model": "", "text": chosen}], {"strength": -1}


def parse_transcript(text: str) -> list[dict[str, str]]:
    """'\\n\\nHuman: …\\n\\nAssistant: …' → chat turns (hh-rlhf's format)."""
    parts = _TRANSCRIPT_TURN.split(text)
    turns = []
    if parts[0].strip():
        turns.append({"role": "user", "content": parts[0].strip()})
    for speaker, content in zip(parts[1::2], parts[2::2], strict=True):
        turns.append({"role": "user" if speaker == "Human" else "assistant", "content": content})
    return turns


def _split_transcripts(chosen: Any, rejected: Any) -> tuple[list[dict[str, str]], str, str]:
    a = parse_transcript(_text("chosen", chosen))
    b = parse_transcript(_text("rejected", rejected))
    shared = 0
    while shared < min(len(a), len(b)) - 1 and a[shared] == b[shared]:
        shared += 1
    if shared == 0:
        raise RecordError("chosen", "chosen and rejected share no turns: cannot find the prompt")
    # The responses are what follows the shared turns; the prompt ends on the last user turn.
    tail_a, tail_b = a[shared:], b[shared:]
    if tail_a[0]["role"] != "assistant" or tail_b[0]["role"] != "assistant":
        raise RecordError("chosen", "the transcripts differ before the last assistant turn")
    text_a = "\n\n".join(t["content"] for t in tail_a)
    text_b = "\n\n".join(t["content"] for t in tail_b)
    return a[:shared], text_a, text_b
