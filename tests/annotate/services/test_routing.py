from __future__ import annotations

from typing import Any

import pytest

from annotate.models import Assignment, Item, Judge, Judgment, RoutingRun
from annotate.services import routing

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged(make_project: Any) -> Any:
    """20 items; two imported AI judges that disagree on the last 5 items."""
    project = make_project("routed", items=20)
    gpt, pl = (Judge.objects.create(name=n, backend=Judge.Backend.IMPORTED) for n in ("gpt", "pl"))
    for i, item in enumerate(project.items.order_by("pk")):
        for judge, strength in ((gpt, 1), (pl, 1 if i < 15 else -1)):
            Judgment.objects.create(
                item=item,
                kind="ai",
                source=judge.name,
                task_type="pairwise",
                value={"strength": strength},
                judge=judge,
                prompt_version="imported",
            )
    return project


def test_uncertainty_sends_the_items_the_judges_disagree_on(judged: Any) -> None:
    run = routing.routing_preview(project=judged, policy="uncertainty", budget=5)
    humans = set(run.decisions.filter(route="human").values_list("item__external_id", flat=True))
    assert humans == {str(i) for i in range(15, 20)}
    assert run.human_items == 5 and run.status == RoutingRun.Status.PREVIEW
    assert all("panel_disagreement" in d.reason for d in run.decisions.filter(route="human"))
    assert run.decisions.count() == 20  # every item has its decision, with its score


def test_a_preview_routes_nothing_until_it_is_applied(judged: Any) -> None:
    run = routing.routing_preview(project=judged, policy="uncertainty", budget=5)
    assert not judged.items.exclude(route=Item.Route.PENDING).exists()
    moved = routing.routing_apply(run=run)
    assert moved == {"to_human": 5, "to_ai": 15}
    assert judged.items.filter(route=Item.Route.HUMAN).count() == 5
    with pytest.raises(routing.RoutingError, match="applied already"):
        routing.routing_apply(run=run)


def test_the_budget_counts_judgments_times_overlap(judged: Any) -> None:
    judged.overlap = 2
    judged.save()
    assert routing.routing_preview(project=judged, policy="random", budget=9).human_items == 4


def test_a_money_budget_buys_judgments_at_their_cost(judged: Any) -> None:
    run = routing.routing_preview(
        project=judged, policy="random", budget=3.0, budget_kind="money", cost_per_judgment=0.5
    )
    assert run.human_items == 6


def test_rerouting_never_takes_back_an_item_an_annotator_started(judged: Any, owner: Any) -> None:
    routing.routing_apply(
        run=routing.routing_preview(project=judged, policy="uncertainty", budget=5)
    )
    started = judged.items.get(external_id="16")
    Assignment.objects.create(
        project=judged,
        item=started,
        annotator=owner,
        presentation_order=[0, 1],
        expires_at=Assignment.expiry_from_now(judged),
    )
    Item.objects.filter(pk=started.pk).update(human_assigned=1)
    run = routing.routing_preview(project=judged, policy="random", budget=2, seed=3)
    routing.routing_apply(run=run)
    started.refresh_from_db()
    assert started.route == Item.Route.HUMAN
    assert judged.items.filter(route=Item.Route.HUMAN).count() == 2  # the budget includes it


def test_routing_needs_ai_verdicts_first(make_project: Any) -> None:
    with pytest.raises(routing.RoutingError, match="no AI verdicts"):
        routing.routing_preview(project=make_project("bare", items=3), policy="random", budget=1)


def test_an_unknown_policy_is_refused_by_name(judged: Any) -> None:
    with pytest.raises(routing.RoutingError, match="clairvoyant"):
        routing.routing_preview(project=judged, policy="clairvoyant", budget=1)


def test_the_estimate_holds_a_curve_with_the_chosen_point(judged: Any) -> None:
    estimate = routing.routing_preview(project=judged, policy="uncertainty", budget=5).estimate
    assert len(estimate["shares"]) == len(estimate["accuracy"]) == 11
    assert estimate["chosen"]["share"] == pytest.approx(0.25)
    assert estimate["judges"] == ["gpt", "pl"]
