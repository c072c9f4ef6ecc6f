"""`manage.py export_dataset --project SLUG --shape dpo --format parquet`: an export from a terminal.

The same service as the export page and the API. By default it runs in this process (no worker
needed) and prints where the files are; --enqueue hands it to the workers instead. --out copies
the finished folder somewhere else.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from annotate.models import Project
from annotate.services import exports as service
from annotate.services.labels import METHODS


class Command(BaseCommand):
    help = "Export a project's preference data (DPO, reward, listwise or raw) to JSONL, Parquet or a datasets folder."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True)
        parser.add_argument("--shape", choices=service.SHAPES, default="dpo")
        parser.add_argument(
            "--format", dest="file_format", choices=service.FORMATS, default="jsonl"
        )
        parser.add_argument(
            "--source", choices=service.SOURCES, default="all", help="label source to keep"
        )
        parser.add_argument("--min-agreement", type=float, default=None)
        parser.add_argument("--aspect", default=None)
        parser.add_argument("--keep-ties", action="store_true")
        parser.add_argument(
            "--test-fraction", type=float, default=0.0, help="share of prompts in the test split"
        )
        parser.add_argument("--split-seed", default="")
        parser.add_argument(
            "--conversational",
            action="store_true",
            help="chat messages (TRL conversational format)",
        )
        parser.add_argument(
            "--labels-method", choices=METHODS, default=None, help="recompute final labels first"
        )
        parser.add_argument("--out", default=None, help="copy the finished export folder here")
        parser.add_argument(
            "--enqueue", action="store_true", help="run on a worker instead of in this process"
        )

    def handle(self, *args: object, **options: object) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project {options['project']!r}")
        filters = {
            k: options[k]
            for k in (
                "source",
                "min_agreement",
                "aspect",
                "keep_ties",
                "test_fraction",
                "split_seed",
                "conversational",
                "labels_method",
            )
        }
        try:
            with transaction.atomic():
                export = service.export_create(
                    project=project,
                    shape=str(options["shape"]),
                    file_format=str(options["file_format"]),
                    filters=filters,
                    enqueue=bool(options["enqueue"]),
                )
        except service.ExportError as exc:
            raise CommandError(str(exc)) from None
        if options["enqueue"]:
            self.stdout.write(f"export #{export.pk} queued")
            return
        claimed = service.export_claim(export_id=export.pk)
        if claimed is None:
            raise CommandError(f"export #{export.pk} was claimed by a worker")
        export = service.export_run(export=claimed)
        if export.status != export.Status.SUCCEEDED:
            raise CommandError(f"export #{export.pk} failed: {export.error}")
        folder = Path(export.path)
        if options["out"]:
            target = Path(str(options["out"]))
            shutil.copytree(folder, target, dirs_exist_ok=True)
            folder = target
        rows = (
            ", ".join(f"{split} {n}" for split, n in sorted(export.stats.get("rows", {}).items()))
            or "no rows"
        )
        self.stdout.write(
            self.style.SUCCESS(f"export #{export.pk}: {export.rows} rows ({rows}) in {folder}")
        )
