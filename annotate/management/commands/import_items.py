"""`manage.py import_items --project SLUG FILE`: the command-line door to the import service."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.management import reporting
from annotate.models import TaskType
from annotate.services.imports import ImportRefused, ImportRejected, items_import, project_ensure


class Command(BaseCommand):
    help = (
        "Import items (JSONL, JSON, CSV, Parquet; gzip too) into a project, creating it if needed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument(
            "--project", required=True, help="project slug (created if it does not exist)"
        )
        parser.add_argument("--type", choices=TaskType.values, help="task type of a new project")
        parser.add_argument("--name", help="display name of a new project")
        parser.add_argument(
            "--format", choices=["jsonl", "json", "csv", "parquet"], help="default: from the name"
        )
        parser.add_argument(
            "--map",
            action="append",
            metavar="TARGET=SRC[+SRC]",
            help="rename keys, e.g. --map prompt=instruction+input --map id=idx (repeatable)",
        )
        parser.add_argument(
            "--skip-invalid",
            action="store_true",
            help="import valid rows; write the rest to a rejects file",
        )

    def handle(self, *args: object, **options: object) -> None:
        created = False
        try:
            project, created = project_ensure(
                slug=options["project"], task_type=options["type"], name=options["name"]
            )
            result = items_import(
                project=project,
                path=options["file"],
                fmt=options["format"],
                maps=options["map"],
                skip_invalid=options["skip_invalid"],
                adopt_k=created,
            )
        except ImportRefused as exc:
            if created:
                project.delete()  # a refused file adds nothing, not even the project it named
            raise CommandError(str(exc)) from None
        except ImportRejected as exc:
            if created:
                project.delete()  # a rejected import adds nothing, not even the project it named
            raise reporting.rejected(self, exc) from None
        if created:  # said only now: a rejected import deletes the project it created
            self.stdout.write(f"Created project {project.slug!r} ({project.task_type}).")
        reporting.succeeded(self, result)
