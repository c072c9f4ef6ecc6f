"""How the import commands tell a person what happened: shared by import_items and import_labels."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from annotate.services.imports import ImportRejected, ImportResult


def rejected(command: BaseCommand, exc: ImportRejected) -> CommandError:
    """Print every invalid row (line, field, reason) and return the error to raise."""
    result = exc.result
    for problem in result.errors:
        command.stderr.write(f"{result.filename}: {problem}")
    if result.invalid > len(result.errors):
        command.stderr.write(f"… and {result.invalid - len(result.errors)} more invalid rows")
    return CommandError(
        f"nothing imported: {result.invalid} invalid rows (fix them, or use --skip-invalid)"
    )


def succeeded(command: BaseCommand, result: ImportResult) -> None:
    """The rows skipped as invalid (first 20), where the rejects went, and the summary line."""
    for problem in result.errors[:20]:
        command.stderr.write(f"{result.filename}: skipped {problem}")
    if result.rejects_path:
        command.stderr.write(f"Rejected rows written to {result.rejects_path}")
    command.stdout.write(result.summary())
