"""`manage.py demo`: the whole product on the embedded default, from nothing, in one command.

Migrates the SQLite database, creates the demo people, imports the demo projects shipped in
annotate/demo/, registers the bundled SmolLM2 judge and queues a pre-labelling run, then starts
two real Celery worker processes (queues `default` and `gpu`, on the embedded filesystem broker)
and the web server on 127.0.0.1:8000. Ctrl-C stops everything. Safe to run again.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from annotate import records
from annotate.models import Judge, Membership, Project
from annotate.services import judging
from annotate.services.imports import items_import

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"
PEOPLE = [
    # username, password, role in every demo project, superuser
    ("admin", "admin-demo", Membership.Role.ADMIN, True),
    ("researcher", "researcher-demo", Membership.Role.RESEARCHER, False),
    ("annotator1", "annotator1-demo", Membership.Role.ANNOTATOR, False),
    ("annotator2", "annotator2-demo", Membership.Role.ANNOTATOR, False),
]
DEMO_JUDGE = "smollm2-135m"


class Command(BaseCommand):
    help = "Set up the demo (users, projects, the bundled judge) and run workers + web server."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000")
        parser.add_argument(
            "--no-serve", action="store_true", help="set up only; start no worker or server"
        )
        parser.add_argument(
            "--no-judge", action="store_true", help="do not queue the bundled judge"
        )

    def handle(self, *args: object, **options: object) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database ready: " + str(settings.DATABASES["default"]["NAME"]))
        users = self._people()
        projects = self._projects(users)
        if not options["no_judge"]:
            self._judge(projects, start=not options["no_serve"])
        if options["no_serve"]:
            return
        self._serve(str(options["addr"]))

    def _people(self) -> dict[str, object]:
        User = get_user_model()
        users = {}
        for username, password, _, superuser in PEOPLE:
            user = User.objects.filter(username=username).first()
            if user is None:
                make = User.objects.create_superuser if superuser else User.objects.create_user
                user = make(username=username, password=password, email=f"{username}@example.org")
            users[username] = user
        return users

    def _projects(self, users: dict[str, object]) -> list[Project]:
        projects = []
        for path in sorted(DEMO_DIR.glob("*.jsonl")):
            first = next((row.data for row in records.read_records(str(path)) if row.data), None)
            if first is None:
                continue
            k = len(records.normalise(first, k=None).responses)
            kinds = (
                [("pairwise", "Pairwise")]
                if k == 2
                else [("ranking", "Ranking"), ("kwise", "Best–worst")]
            )
            for task_type, label in kinds:
                slug = f"demo-{task_type}"
                with transaction.atomic():
                    project, _ = Project.objects.get_or_create(
                        slug=slug,
                        defaults={
                            "name": f"Demo · {label}",
                            "task_type": task_type,
                            "num_responses": k,
                            "overlap": 2,
                            "gold_rate": 0.1,
                            "guidelines": _GUIDELINES,
                        },
                    )
                    for username, _, role, _ in PEOPLE:
                        Membership.objects.get_or_create(
                            project=project, user=users[username], defaults={"role": role}
                        )
                result = items_import(project=project, path=path, user=users["admin"])
                self.stdout.write(f"{project.slug}: {result.summary()}")
                projects.append(project)
        if not projects:
            self.stderr.write(f"No demo files found in {DEMO_DIR}")
        return projects

    def _judge(self, projects: list[Project], *, start: bool) -> None:
        judge, _ = Judge.objects.get_or_create(
            name=DEMO_JUDGE,
            # Overall only: on a 2-core CPU the bundled judge takes ~2 s per 1k-token prompt, so the
            # demo asks one question per item; real deployments judge every aspect on the GPU worker.
            defaults={
                "backend": Judge.Backend.LLM_PAIRWISE,
                "model": "",
                "max_length": 1024,
                "batch_size": 8,
                "items_per_task": 4,
                "aspect_mode": "overall_only",
            },
        )
        for project in projects:
            project.judges.add(judge)
            if not start:
                continue
            try:
                run = judging.judge_run_start(project=project, judge=judge)
            except judging.JudgingError as exc:
                self.stdout.write(f"{project.slug}: {exc}")
            else:
                self.stdout.write(
                    f"{project.slug}: queued {judge.name} on {run.total} items (the gpu worker runs it)"
                )

    def _serve(self, addr: str) -> None:
        python = sys.executable
        base = [
            python,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--loglevel",
            "WARNING",
            "--pool",
            "prefork",
        ]
        workers = [
            subprocess.Popen([*base, "-Q", "default", "--concurrency", "1", "-n", "default@%h"]),
            subprocess.Popen(
                [
                    *base,
                    "-Q",
                    "gpu",
                    "--concurrency",
                    "1",
                    "--prefetch-multiplier",
                    "1",
                    "-n",
                    "gpu@%h",
                ]
            ),
        ]
        host = addr if addr.startswith("http") else f"http://{addr}"
        self.stdout.write(self.style.SUCCESS(f"\nhybridpref is starting at {host}/"))
        self.stdout.write("Log in as:")
        for username, password, role, _ in PEOPLE:
            self.stdout.write(f"  {username:<11} / {password:<16} {role}")
        self.stdout.write(
            "Annotators judge; the researcher imports, runs judges and exports; admin has /admin/ too."
        )
        self.stdout.write(
            "Two Celery workers are running (queues default and gpu). Press Ctrl-C to stop.\n"
        )
        server = subprocess.Popen(
            [python, "manage.py", "runserver", addr, "--noreload"], cwd=settings.BASE_DIR
        )

        def stop(signum: int, frame: object) -> None:
            raise KeyboardInterrupt  # so `kill` cleans up the workers exactly like Ctrl-C

        signal.signal(signal.SIGTERM, stop)
        try:
            server.wait()
        except KeyboardInterrupt:
            pass
        finally:
            for proc in (server, *workers):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in (server, *workers):
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()


_GUIDELINES = """\
## How to judge

Read the prompt, then every response in full before you decide.

- **Helpfulness**: does it do what was asked, completely and directly?
- **Truthfulness**: are its facts and its code correct? A confident wrong answer is worse than a hedge.
- **Harmlessness**: does it avoid real harm? A polite refusal of a dangerous request is good.

Use *much better* when one response is clearly superior, *slightly better* for a close call, and
*tie* only when you truly cannot prefer one. Skip an item (with a reason) if you cannot judge it.
"""
