"""annotate.records: every file format, every row shape, --map, and errors that name the field."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from annotate import records
from annotate.records import FieldMap, FileFormatError, RecordError


def write(path: Path, text: str, *, gz: bool = False) -> Path:
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def rows_of(path: Path, fmt: str | None = None) -> list[records.Row]:
    return list(records.read_records(str(path), fmt))


def canonical(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"item-{i}",
        "prompt": f"Question {i}?",
        "responses": [{"model": "m1", "text": f"a{i}"}, {"model": "m2", "text": f"b{i}"}],
        **extra,
    }


def jsonl(objects: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(o) + "\n" for o in objects)


# --- JSONL --------------------------------------------------------------------------------------


def test_jsonl_rows_carry_their_line_numbers_and_blank_lines_count(tmp_path: Path) -> None:
    path = write(
        tmp_path / "items.jsonl", jsonl([canonical(0)]) + "\n   \n" + jsonl([canonical(1)])
    )
    rows = rows_of(path)
    assert [(r.line, r.data["id"]) for r in rows] == [(1, "item-0"), (4, "item-1")]
    assert all(r.error is None for r in rows)


def test_a_broken_jsonl_line_is_reported_with_its_line_and_column_and_reading_goes_on(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "items.jsonl", jsonl([canonical(0)]) + '{"id": 1,,}\n[1, 2]\n')
    rows = rows_of(path)
    assert rows[0].error is None
    assert rows[1].line == 2 and rows[1].error.field == "json"
    assert "not valid JSON" in rows[1].error.reason and "column" in rows[1].error.reason
    assert rows[2].line == 3 and "expected an object, got list" in rows[2].error.reason


def test_a_jsonl_line_that_is_not_utf8_is_an_encoding_error_on_its_own_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "items.jsonl"
    good = [json.dumps(canonical(i)).encode() + b"\n" for i in range(2)]
    path.write_bytes(good[0] + b'{"prompt": "caf\xe9"}\n' + good[1])
    rows = rows_of(path)
    assert [(r.line, r.error.field if r.error else None) for r in rows] == [
        (1, None),
        (2, "encoding"),
        (3, None),
    ]


def test_a_jsonl_file_may_start_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + jsonl([canonical(0)]).encode())
    assert rows_of(path)[0].data["id"] == "item-0"


def test_a_jsonl_file_keeps_line_numbers_across_blank_lines_and_reads_bare_nan(
    tmp_path: Path,
) -> None:
    text = '{"id": "a"}\n\n   \n{"id": "b", "score": NaN}\n{"id": "c"}\n'
    rows = rows_of(write(tmp_path / "items.jsonl", text))
    assert [(r.line, r.data["id"]) for r in rows] == [(1, "a"), (4, "b"), (5, "c")]
    assert math.isnan(rows[1].data["score"])


# --- JSON array ---------------------------------------------------------------------------------


def test_a_json_array_of_multi_line_objects_gives_each_its_starting_line(tmp_path: Path) -> None:
    text = "[\n" + ",\n".join(json.dumps(canonical(i), indent=2) for i in range(3)) + "\n]\n"
    rows = rows_of(write(tmp_path / "items.json", text))
    lines_per_object = json.dumps(canonical(0), indent=2).count("\n") + 1
    assert [r.line for r in rows] == [2 + i * lines_per_object for i in range(3)]
    assert [r.data["id"] for r in rows] == ["item-0", "item-1", "item-2"]


def test_a_json_array_accepts_bare_nan_values_as_pandalm_has_them(tmp_path: Path) -> None:
    text = '[{"idx": 0, "instruction": "Say hi", "input": NaN, "response1": "hi"}]'
    (row,) = rows_of(write(tmp_path / "pandalm.json", text))
    assert row.error is None
    assert math.isnan(row.data["input"])


def test_a_broken_element_on_line_17_of_a_json_array_is_reported_on_line_17(
    tmp_path: Path,
) -> None:
    lines = ["["]
    for i in range(20):
        lines.append(f'  {{"id": {i},')
        lines.append(f'   "prompt": "p{i}", "responses": ["a", "b"]}},')
    lines[-1] = lines[-1].rstrip(",")
    lines.append("]")
    assert lines[16].lstrip().startswith('"prompt"')
    lines[16] = lines[16].replace('"prompt"', "prompt")  # line 17 of the file
    rows = rows_of(write(tmp_path / "items.json", "\n".join(lines)))
    errors = [r for r in rows if r.error]
    assert len(errors) == 1
    assert errors[0].line == 17
    assert errors[0].error.field == "json"
    assert len([r for r in rows if r.error is None]) == 7  # objects before the broken one


def test_a_json_array_larger_than_the_read_buffer_streams_with_correct_lines(
    tmp_path: Path,
) -> None:
    # ~2.5 MB: elements straddle the reader's 1 MiB refills.
    big = "x" * 5000
    objects = [{**canonical(i), "note": big} for i in range(500)]
    text = "[\n" + ",\n".join(json.dumps(o) for o in objects) + "\n]"
    rows = rows_of(write(tmp_path / "big.json", text))
    assert len(rows) == 500 and all(r.error is None for r in rows)
    assert [r.line for r in rows[:3]] == [2, 3, 4] and rows[-1].line == 501
    assert rows[-1].data["id"] == "item-499"


def test_a_json_array_element_that_is_not_an_object_is_named(tmp_path: Path) -> None:
    rows = rows_of(write(tmp_path / "items.json", "[\n" + json.dumps(canonical(0)) + ",\n 42\n]"))
    assert rows[1].line == 3 and "expected an object, got int" in rows[1].error.reason


def test_a_json_file_that_is_not_an_array_is_refused_as_a_whole(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="array of objects"):
        rows_of(write(tmp_path / "items.json", '"just a string"'))


def test_an_unclosed_json_array_is_reported(tmp_path: Path) -> None:
    rows = rows_of(write(tmp_path / "items.json", "[\n" + json.dumps(canonical(0)) + ",\n"))
    assert rows[0].error is None
    assert rows[-1].error is not None and rows[-1].error.field == "json"


# --- CSV ----------------------------------------------------------------------------------------


def test_csv_rows_are_numbered_by_their_first_line_across_quoted_newlines_and_blanks(
    tmp_path: Path,
) -> None:
    text = 'prompt,response_1,response_2\np1,a,b\n"multi\nline prompt","x",y\n\np3,,c\n'
    rows = rows_of(write(tmp_path / "items.csv", text))
    assert [r.line for r in rows] == [2, 3, 6]
    assert rows[1].data["prompt"] == "multi\nline prompt"
    assert rows[2].data["response_1"] is None  # an empty cell is missing, not ""


def test_a_csv_row_with_more_values_than_headers_is_an_error_naming_its_row(
    tmp_path: Path,
) -> None:
    rows = rows_of(write(tmp_path / "items.csv", "prompt,response_1\np,a\nq,b,extra\n"))
    assert rows[1].line == 3 and rows[1].error.field == "csv"
    assert "more values than header columns" in rows[1].error.reason


def test_a_csv_with_a_byte_order_mark_keeps_its_first_header_clean(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_bytes("\ufeffprompt,response_1,response_2\np,a,b\n".encode())
    (row,) = rows_of(path)
    assert "prompt" in row.data


# --- Parquet ------------------------------------------------------------------------------------


def write_parquet(path: Path, columns: dict[str, list[Any]]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def test_parquet_rows_are_numbered_from_one(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "items.parquet",
        {
            "prompt": ["p0", "p1", "p2"],
            "response_1": ["a0", "a1", "a2"],
            "response_2": ["b0", "b1", "b2"],
        },
    )
    rows = rows_of(path)
    assert [r.line for r in rows] == [1, 2, 3]
    assert rows[2].data == {"prompt": "p2", "response_1": "a2", "response_2": "b2"}


def test_parquet_with_nested_responses_reads_as_the_canonical_shape(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "items.parquet",
        {
            "id": ["x"],
            "prompt": ["p"],
            "responses": [[{"model": "m1", "text": "a"}, {"model": "m2", "text": "b"}]],
        },
    )
    (row,) = rows_of(path)
    item = records.normalise(row.data, k=2)
    assert item.responses == [{"model": "m1", "text": "a"}, {"model": "m2", "text": "b"}]


def test_a_broken_parquet_file_is_refused_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "items.parquet"
    path.write_bytes(b"PAR1" + b"\x00" * 64)
    with pytest.raises(FileFormatError, match="not a readable Parquet file"):
        rows_of(path)


# --- gzip and format detection -----------------------------------------------------------------


def test_gzip_is_detected_by_magic_bytes_for_every_format_whatever_the_name(
    tmp_path: Path,
) -> None:
    # None of these names ends in .gz: only the content says gzip.
    jsonl_path = write(tmp_path / "a.jsonl", jsonl([canonical(0), canonical(1)]), gz=True)
    json_path = write(tmp_path / "noext", json.dumps([canonical(0)]), gz=True)
    csv_path = write(tmp_path / "a.csv", "prompt,response_1,response_2\np,a,b\n", gz=True)
    parquet_plain = write_parquet(
        tmp_path / "plain.parquet", {"prompt": ["p"], "response_1": ["a"]}
    )
    parquet_path = tmp_path / "packed.bin"
    parquet_path.write_bytes(gzip.compress(parquet_plain.read_bytes()))

    assert [r.data["id"] for r in rows_of(jsonl_path)] == ["item-0", "item-1"]
    assert [r.data["id"] for r in rows_of(json_path)] == ["item-0"]
    assert rows_of(csv_path)[0].data == {"prompt": "p", "response_1": "a", "response_2": "b"}
    assert rows_of(parquet_path)[0].data == {"prompt": "p", "response_1": "a"}


def test_a_file_named_gz_that_is_not_compressed_is_read_as_it_is(tmp_path: Path) -> None:
    path = write(tmp_path / "items.jsonl.gz", jsonl([canonical(0)]))
    assert rows_of(path)[0].data["id"] == "item-0"


def test_a_file_whose_format_cannot_be_told_is_refused_naming_the_formats(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match=r"\.jsonl, \.json, \.csv or \.parquet"):
        rows_of(write(tmp_path / "notes.txt", "hello"))


def test_an_explicit_format_overrides_the_name(tmp_path: Path) -> None:
    path = write(tmp_path / "export.txt", "prompt,response_1,response_2\np,a,b\n")
    assert rows_of(path, "csv")[0].data["response_2"] == "b"


# --- Row shapes ---------------------------------------------------------------------------------


def test_the_canonical_shape_keeps_models_and_texts_in_order() -> None:
    item = records.normalise(canonical(3), k=2)
    assert item.external_id == "item-3"
    assert item.prompt == "Question 3?"
    assert item.responses == [{"model": "m1", "text": "a3"}, {"model": "m2", "text": "b3"}]
    assert item.label is None and not item.is_gold


def test_responses_may_be_plain_strings() -> None:
    item = records.normalise({"prompt": "p", "responses": ["a", "b", "c"]}, k=3)
    assert item.responses == [
        {"model": "", "text": "a"},
        {"model": "", "text": "b"},
        {"model": "", "text": "c"},
    ]


def test_a_chat_prompt_keeps_its_turns() -> None:
    chat = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "2+2?"},
    ]
    item = records.normalise({"prompt": chat, "responses": ["4", "5"]}, k=2)
    assert item.prompt == chat


def test_a_chosen_rejected_pair_places_the_label_by_content_hash_with_the_right_sign() -> None:
    signs = set()
    for i in range(40):
        chosen, rejected = f"good answer {i}", f"bad answer {i}"
        item = records.normalise({"prompt": f"q{i}", "chosen": chosen, "rejected": rejected}, k=2)
        texts = [r["text"] for r in item.responses]
        assert sorted(texts) == sorted([chosen, rejected])
        expected = 1 if texts[0] == chosen else -1  # positive strength = response A is better
        assert item.label == {"strength": expected}
        signs.add(expected)
        again = records.normalise({"prompt": f"q{i}", "chosen": chosen, "rejected": rejected}, k=2)
        assert again.responses == item.responses  # reproducible, not random
    assert signs == {1, -1}  # chosen is spread over A and B, not always first


def test_hh_rlhf_transcripts_become_a_chat_prompt_and_the_last_assistant_turns() -> None:
    shared = (
        "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?\n\nHuman: How do I boil an egg?"
    )
    item = records.normalise(
        {
            "chosen": shared + "\n\nAssistant: Simmer it for nine minutes.",
            "rejected": shared + "\n\nAssistant: No idea.",
        },
        k=2,
    )
    assert item.prompt == [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "How do I boil an egg?"},
    ]
    texts = [r["text"] for r in item.responses]
    assert sorted(texts) == ["No idea.", "Simmer it for nine minutes."]
    assert item.label == {"strength": 1 if texts[0].startswith("Simmer") else -1}
    assert item.external_id.startswith("sha256:")


def test_transcripts_that_continue_after_the_first_different_turn_join_the_tail() -> None:
    shared = "\n\nHuman: Name a colour."
    item = records.normalise(
        {
            "chosen": shared + "\n\nAssistant: Blue.\n\nHuman: Another?\n\nAssistant: Green.",
            "rejected": shared + "\n\nAssistant: Cheese.",
        },
        k=2,
    )
    assert item.prompt == [{"role": "user", "content": "Name a colour."}]
    assert sorted(r["text"] for r in item.responses) == [
        "Blue.\n\nAnother?\n\nGreen.",
        "Cheese.",
    ]


def test_transcripts_that_share_no_turns_are_an_error_naming_chosen() -> None:
    with pytest.raises(RecordError) as exc:
        records.normalise(
            {"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: c\n\nAssistant: d"},
            k=2,
        )
    assert exc.value.field == "chosen" and "share no turns" in exc.value.reason


def test_response_and_model_columns_become_k_responses() -> None:
    item = records.normalise(
        {
            "prompt": "p",
            "response_1": "a",
            "response_2": "b",
            "response_3": "c",
            "model_1": "m1",
            "model_2": "m2",
            "model_3": "m3",
        },
        k=3,
    )
    assert item.responses == [
        {"model": "m1", "text": "a"},
        {"model": "m2", "text": "b"},
        {"model": "m3", "text": "c"},
    ]
    assert item.metadata == {}  # the columns became responses, not metadata


def test_a_single_response_column_is_an_error_naming_response_2() -> None:
    with pytest.raises(RecordError) as exc:
        records.normalise({"prompt": "p", "response_1": "a"}, k=None)
    assert exc.value.field == "response_2"


# --- Metadata, ids, gold ------------------------------------------------------------------------


def test_unknown_keys_are_kept_as_metadata_so_nothing_is_lost() -> None:
    item = records.normalise(
        canonical(0, source="forum", difficulty=3, extra=float("nan"), metadata={"lang": "en"}),
        k=2,
    )
    assert item.metadata == {"lang": "en", "source": "forum", "difficulty": 3, "extra": None}


def test_an_explicit_metadata_value_wins_over_a_top_level_key_of_the_same_name() -> None:
    item = records.normalise(canonical(0, lang="top", metadata={"lang": "meta"}), k=2)
    assert item.metadata == {"lang": "meta"}


def test_a_row_without_id_is_named_by_its_content_hash() -> None:
    a = records.normalise({"prompt": "p", "responses": ["x", "y"]}, k=2)
    b = records.normalise({"prompt": "p", "responses": ["x", "y"], "id": "  "}, k=2)
    c = records.normalise({"prompt": "p", "responses": ["y", "x"]}, k=2)
    assert a.external_id == b.external_id == f"sha256:{a.content_hash[:40]}"
    assert c.external_id != a.external_id


@pytest.mark.parametrize(
    "prompt",
    [
        "plain ascii",
        'quotes " and \\ backslashes / slash',
        "controls \x00\x01\x1f\x7f tab\t newline\n cr\r \b \f",
        "non-ascii é ß 中文 😀 \u2028 \u2029 \ufeff",
        [{"role": "user", "content": "é\n"}, {"role": "assistant", "content": "😀"}],
    ],
)
def test_the_content_hash_is_the_sha256_of_the_json_the_first_stored_hashes_used(
    prompt: Any,
) -> None:
    # Items imported without an id are named after this hash: a different encoding would import
    # the same file a second time under new names.
    responses = [{"model": "m ü", "text": 'a\u0001"b'}, {"text": "c"}]
    expected = json.dumps(
        {"prompt": prompt, "responses": [["m ü", 'a\u0001"b'], ["", "c"]]},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    assert records.hash_content(prompt, responses) == hashlib.sha256(expected.encode()).hexdigest()


def test_numeric_ids_become_text() -> None:
    assert records.normalise({**canonical(0), "id": 17}, k=2).external_id == "17"


def test_gold_flag_and_gold_label_are_read() -> None:
    item = records.normalise(canonical(0, is_gold="yes"), k=2)
    assert item.is_gold and item.gold_label is None
    item = records.normalise(canonical(0, gold_label={"strength": 2}), k=2)
    assert item.is_gold and item.gold_label == {"strength": 2}


# --- Errors name the field and the reason ------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "field", "reason"),
    [
        ({"responses": ["a", "b"]}, "prompt", "missing"),
        ({"prompt": "   ", "responses": ["a", "b"]}, "prompt", "is empty"),
        ({"prompt": 5, "responses": ["a", "b"]}, "prompt", "must be text or a chat"),
        ({"prompt": [], "responses": ["a", "b"]}, "prompt", "no turns"),
        (
            {"prompt": [{"role": "robot", "content": "x"}], "responses": ["a", "b"]},
            "prompt[0].role",
            "must be one of assistant, system, user",
        ),
        ({"prompt": [{"role": "user"}], "responses": ["a", "b"]}, "prompt[0]", "text content"),
        ({"prompt": "p", "responses": ["only one"]}, "responses", "at least 2"),
        ({"prompt": "p", "responses": ["a", {"model": "m"}]}, "responses[1].text", "missing"),
        ({"prompt": "p", "responses": ["a", 7]}, "responses[1]", "must be"),
        ({"prompt": "p"}, "responses", "no responses"),
        ({"prompt": "p", "responses": ["a", "b", "c"]}, "responses", "expected 2 responses"),
        ({"prompt": "p", "responses": ["a", "b"], "metadata": [1]}, "metadata", "object"),
        ({"prompt": "p", "responses": ["a", "b"], "id": "x" * 256}, "id", "255"),
        ({"prompt": "p", "responses": ["a", "b"], "gold_label": 2}, "gold_label", "verdict"),
        ({"prompt": "p", "chosen": None, "rejected": "b"}, "chosen", "must be text"),
        ({"prompt": "p", "responses": ["a", "\ud800"]}, "text", "surrogate"),
    ],
)
def test_an_invalid_row_names_the_field_and_the_reason(
    row: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(RecordError) as exc:
        records.normalise(row, k=2)
    assert exc.value.field == field
    assert reason in exc.value.reason
    assert str(exc.value).startswith(f"{field}: ")


# --- --map --------------------------------------------------------------------------------------


def test_a_map_renames_a_key_and_drops_the_source() -> None:
    mapped = records.apply_maps({"idx": 4, "x": 1}, records.parse_maps(["id=idx"]))
    assert mapped == {"id": 4, "x": 1}


def test_a_map_joins_several_sources_with_a_blank_line_and_skips_nan_and_blank() -> None:
    maps = records.parse_maps(["prompt=instruction+input"])
    both = records.apply_maps({"instruction": "Fix this.", "input": "teh cat"}, maps)
    nan = records.apply_maps({"instruction": "Fix this.", "input": float("nan")}, maps)
    blank = records.apply_maps({"instruction": "Fix this.", "input": "  "}, maps)
    missing = records.apply_maps({"instruction": "Fix this."}, maps)
    assert both == {"prompt": "Fix this.\n\nteh cat"}
    assert nan["prompt"] == blank["prompt"] == missing["prompt"] == "Fix this."


def test_a_split_map_takes_the_nth_part() -> None:
    maps = records.parse_maps(["model_1=cmp_key|split:_:0", "model_2=cmp_key|split:_:1"])
    mapped = records.apply_maps({"cmp_key": "bloom-7b_llama-7b"}, maps)
    assert mapped == {"model_1": "bloom-7b", "model_2": "llama-7b"}
    last = FieldMap.parse("m=key|split:/:-1")
    assert last.apply({"key": "org/family/model"}) == "model"


def test_a_split_without_that_part_names_the_source_field() -> None:
    with pytest.raises(RecordError) as exc:
        FieldMap.parse("model_3=cmp_key|split:_:2").apply({"cmp_key": "a_b"})
    assert exc.value.field == "cmp_key" and "no part 2" in exc.value.reason


def test_two_maps_that_swap_keys_keep_both_values() -> None:
    mapped = records.apply_maps(
        {"response_1": "x", "response_2": "y"},
        records.parse_maps(["response_1=response_2", "response_2=response_1"]),
    )
    assert mapped == {"response_1": "y", "response_2": "x"}


@pytest.mark.parametrize("spec", ["prompt", "=idx", "id=", "id=idx|upper", "m=k|split:_"])
def test_a_malformed_map_is_refused_with_a_hint(spec: str) -> None:
    with pytest.raises(ValueError, match=r"--map"):
        FieldMap.parse(spec)


def test_pandalm_maps_turn_a_pandalm_row_into_a_pairwise_item_keeping_the_rest() -> None:
    row = {
        "idx": 7,
        "motivation_app": "Grammarly",
        "cmp_key": "bloom-7b_opt-7b",
        "instruction": "Rewrite concisely.",
        "input": float("nan"),
        "response1": "Short.",
        "response2": "Shorter.",
        "annotator1": 1,
    }
    maps = records.parse_maps(
        [
            "prompt=instruction+input",
            "id=idx",
            "response_1=response1",
            "response_2=response2",
            "model_1=cmp_key|split:_:0",
            "model_2=cmp_key|split:_:1",
        ]
    )
    item = records.normalise(records.apply_maps(row, maps), k=2)
    assert item.external_id == "7"
    assert item.prompt == "Rewrite concisely."
    assert item.responses == [
        {"model": "bloom-7b", "text": "Short."},
        {"model": "opt-7b", "text": "Shorter."},
    ]
    assert item.metadata == {"motivation_app": "Grammarly", "annotator1": 1}
