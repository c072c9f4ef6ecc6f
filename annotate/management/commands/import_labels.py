"""`manage.py import_labels --project SLUG FILE --source NAME`: existing labels, keyed by item id."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.management import reporting
from annotate.models import Judgment, Project
from annotate.services.imports import ImportRefused, ImportRejected, labels_import


class Command(BaseCommand):
    help = "Import labels keyed by item id: an external AI judge's verdicts (e.g. GPT-4) or human labels."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("--project", required=True)
        parser.add_argument(
            "--source", required=True, help="who made the labels, e.g. gpt-4 or vendor-team-1"
        )
        parser.add_argument("--kind", choices=Judgment.Kind.values, default=Judgment.Kind.AI)
        parser.add_argument(
            "--aspect", help="aspect the labels judge (default: the project's first)"
        )
        parser.add_argument("--format", choices=["jsonl", "json", "csv", "parquet"])
        parser.add_argument(
            "--map",
            action="append",
            metavar="TARGET=SRC",
            help="e.g. --map id=idx --map label=gpt_result",
        )
        parser.add_argument("--skip-invalid", action="store_true")

    def handle(self, *args: object, **options: object) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project {options['project']!r}: import its items first")
        try:
            result = labels_import(
                project=project,
                path=options["file"],
                source=options["source"],
                kind=options["kind"],
                fmt=options["format"],
                maps=options["map"],
                aspect=options["aspect"],
                skip_invalid=options["skip_invalid"],
            )
        except ImportRefused as exc:
            raise CommandError(str(exc)) from None
        except ImportRejected as exc:
            raise reporting.rejected(self, exc) from None
        reporting.succeeded(self, result)
