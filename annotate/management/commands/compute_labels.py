"""`manage.py compute_labels --project SLUG [--method dawid_skene]`: (re)compute final labels."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.models import Project
from annotate.services.labels import METHODS, LabelsError, final_labels_compute


class Command(BaseCommand):
    help = "Compute every final label of a project: human consensus or the panel's AI label, with provenance."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True)
        parser.add_argument("--method", choices=METHODS, default="majority")

    def handle(self, *args: object, **options: object) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project {options['project']!r}")
        try:
            summary = final_labels_compute(project=project, method=str(options["method"]))
        except LabelsError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(str(summary)))
