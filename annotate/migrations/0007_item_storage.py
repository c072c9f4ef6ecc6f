"""Item storage for fast imports (bench/import.py, issue 2).

- `item_hash_idx` (project, content_hash) goes: nothing queries it, and every index is paid on
  each row an import writes.
- PostgreSQL only: rows stay whole and uncompressed up to 8 KB (`toast_tuple_target`). An item
  of ~2 KB (a 300-character prompt, two 800-character responses) is just over the default 2 KB
  threshold, so each row paid a pglz compression attempt and, for text that does not shrink by a
  quarter, a second row and index entry in the TOAST table: together ~18 µs of server CPU per
  item, a third of the server's work in the import benchmark. A large row is still compressed,
  with lz4 where the server has it (several times faster than pglz, both ways).
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

_JSON_COLUMNS = ("prompt", "responses", "metadata")


def _storage(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("ALTER TABLE annotate_item SET (toast_tuple_target = 8160)")
    if _has_lz4(schema_editor):
        for column in _JSON_COLUMNS:
            schema_editor.execute(
                f"ALTER TABLE annotate_item ALTER COLUMN {column} SET COMPRESSION lz4"
            )


def _default_storage(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("ALTER TABLE annotate_item RESET (toast_tuple_target)")
    if schema_editor.connection.pg_version >= 140000:
        for column in _JSON_COLUMNS:
            schema_editor.execute(
                f"ALTER TABLE annotate_item ALTER COLUMN {column} SET COMPRESSION DEFAULT"
            )


def _has_lz4(schema_editor: Any) -> bool:
    """Per-column compression came in PostgreSQL 14, lz4 only in servers built with it."""
    if schema_editor.connection.pg_version < 140000:
        return False
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
        )
        row = cursor.fetchone()
    return bool(row and row[0])


class Migration(migrations.Migration):
    dependencies = [
        ("annotate", "0006_item_fewer_indexes"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="item", name="item_hash_idx"),
        migrations.RunPython(_storage, _default_storage),
    ]
