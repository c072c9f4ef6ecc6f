"""`manage.py route --project SLUG --policy P --budget B`: the routing page, from a terminal."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.models import Item, Project
from annotate.services import routing


class Command(BaseCommand):
    help = "Choose which items go to humans under a budget, and apply it (unless --dry-run)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True)
        parser.add_argument("--policy", required=True, choices=routing.POLICIES)
        parser.add_argument(
            "--budget",
            required=True,
            type=float,
            help="human judgments (items × overlap), or money with --cost",
        )
        parser.add_argument(
            "--cost", type=float, help="cost of one judgment: makes --budget an amount of money"
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--embed", action="store_true", help="add MiniLM embedding similarity to the features"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="preview only: record the run, route nothing"
        )

    def handle(self, *args: object, **options: object) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project {options['project']!r}")
        money = options["cost"] is not None
        try:
            run = routing.routing_preview(
                project=project,
                policy=options["policy"],
                budget=options["budget"],
                budget_kind="money" if money else "judgments",
                cost_per_judgment=options["cost"] or 0.0,
                seed=options["seed"],
                embed=options["embed"],
            )
        except routing.RoutingError as exc:
            raise CommandError(str(exc)) from None
        chosen = run.estimate["chosen"]
        self.stdout.write(
            f"{run.policy} v{run.policy_version}: {run.human_items} of {project.items.count()} "
            f"items to humans ({chosen['share']:.1%}); estimated final accuracy {chosen['accuracy']:.3f} "
            f"[{run.seconds:.2f} s]"
        )
        weights = run.estimate.get("judge_weights")
        if weights:
            self.stdout.write(
                "AI label: judges weighed by how often they agree: "
                + ", ".join(f"{name} {w:.2f}" for name, w in weights.items())
            )
        for d in (
            run.decisions.filter(route=Item.Route.HUMAN).select_related("item").order_by("rank")[:5]
        ):
            reasons = ", ".join(f"{k} {v:+.3g}" for k, v in d.reason.items())
            self.stdout.write(
                f"  #{d.rank + 1} {d.item.external_id}: score {d.score:.3f} ({reasons})"
            )
        if options["dry_run"]:
            self.stdout.write(f"Dry run: routing run {run.pk} recorded, nothing applied.")
            return
        moved = routing.routing_apply(run=run)
        self.stdout.write(
            f"Applied run {run.pk}: {moved['to_human']} items newly to humans, {moved['to_ai']} to AI labels."
        )
