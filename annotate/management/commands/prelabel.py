"""`manage.py prelabel --project SLUG --judge NAME`: an AI judge run from a terminal, with a progress bar.

By default the batches run in this process, through the same code as the `gpu` worker; with
--enqueue they go to the workers and this command follows the run's progress row.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from annotate.models import Judge, JudgeRun, Project
from annotate.services import judging


class Command(BaseCommand):
    help = "Pre-label a project's items with an AI judge (both presentation orders, per aspect)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True)
        parser.add_argument(
            "--judge", required=True, help="a registered judge's name (see the admin)"
        )
        parser.add_argument(
            "--enqueue",
            action="store_true",
            help="send batches to the gpu workers and follow progress",
        )
        parser.add_argument(
            "--all",
            action="store_true",
            help="re-judge items that already have this judge's verdict",
        )
        parser.add_argument(
            "--tags",
            action="store_true",
            help="make the routing tags (subject, safety …) instead of verdicts",
        )

    def handle(self, *args: object, **options: object) -> None:
        self.kind = "tags" if options["tags"] else "verdicts"
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project {options['project']!r}")
        judge = Judge.objects.filter(name=options["judge"]).first()
        if judge is None:
            names = ", ".join(Judge.objects.values_list("name", flat=True)) or "none registered"
            raise CommandError(f"no judge {options['judge']!r} (judges: {names})")
        if options["enqueue"]:
            try:
                run = judging.judge_run_start(
                    project=project, judge=judge, only_missing=not options["all"], kind=self.kind
                )
            except judging.JudgingError as exc:
                raise CommandError(str(exc)) from None
            self._follow(run)
        else:
            run = self._run_here(project, judge, only_missing=not options["all"])
        run.refresh_from_db()
        self.stdout.write(
            f"{judge.name} on {project.slug}: {run.status}, {run.done} judged, {run.failed} failed"
        )
        if run.error:
            self.stderr.write(run.error)
        if run.status == JudgeRun.Status.FAILED:
            raise CommandError(
                f"the run failed: {run.error.splitlines()[0] if run.error else 'see the log'}"
            )

    def _run_here(self, project: Project, judge: Judge, *, only_missing: bool) -> JudgeRun:
        from models_gpu.tasks import run_batch

        try:
            # The batches are run right here, so nothing is enqueued: start the run without workers.
            run = judging.judge_run_start(
                project=project,
                judge=judge,
                only_missing=only_missing,
                enqueue=False,
                kind=self.kind,
            )
        except judging.JudgingError as exc:
            raise CommandError(str(exc)) from None
        with tqdm(total=run.total, unit="item", desc=judge.name) as bar:
            for batch in judging.judge_run_batches(run):
                outcome = run_batch(run.pk, batch)
                if outcome is None:
                    break
                bar.update(sum(outcome))
        return run

    def _follow(self, run: JudgeRun) -> None:
        with tqdm(total=run.total, unit="item", desc=run.judge.name) as bar:
            while True:
                run.refresh_from_db()
                bar.n = run.done + run.failed
                bar.refresh()
                if run.is_finished:
                    return
                time.sleep(1)
