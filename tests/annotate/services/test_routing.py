from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from django.db import connection
from django.utils import timezone

from annotate.models import Assignment, Item, Judge, Judgment, RoutingRun
from annotate.services import routing
from config.celery import app as celery_app
from tests.factories import add_imported_judges

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


def test_a_judge_whose_stated_reason_finds_fault_sends_its_item_ahead_of_agreed_ones(
    judged: Any,
) -> None:
    flawed = [str(i) for i in range(3)]
    Judgment.objects.filter(
        item__project=judged, judge__name="gpt", item__external_id__in=flawed
    ).update(rationale="Response A is incorrect and does not answer the question.")
    features = routing.routing_pool(project=judged).pool.features
    assert features.column("judge:gpt:reason_flaw").tolist() == [2.0] * 3 + [0.0] * 17
    assert not any(name.startswith("judge:pl:reason") for name in features.names)

    run = routing.routing_preview(project=judged, policy="uncertainty", budget=8)
    humans = run.decisions.filter(route="human")
    assert set(humans.values_list("item__external_id", flat=True)) == {
        *flawed,
        *(str(i) for i in range(15, 20)),
    }
    assert all("reason_flaws" in d.reason for d in humans.filter(item__external_id__in=flawed))


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


def test_a_panel_of_three_judges_is_weighed_by_how_often_they_agree(make_project: Any) -> None:
    """Two judges right on 90 % of the items and one on 55 %: without any label the weak one
    gets the smallest weight, and the run records every weight."""
    project = add_imported_judges(
        make_project("weighed", items=60), {"gpt": 0.9, "sharp": 0.9, "dull": 0.55}
    )
    estimate = routing.routing_preview(project=project, policy="uncertainty", budget=5).estimate
    weights = estimate["judge_weights"]
    assert set(weights) == {"dull", "gpt", "sharp"}
    assert min(weights["gpt"], weights["sharp"]) > weights["dull"] > 0


def test_two_judges_count_alike(judged: Any) -> None:
    estimate = routing.routing_preview(project=judged, policy="uncertainty", budget=5).estimate
    assert "judge_weights" not in estimate


# --- Previews computed on a worker ---------------------------------------------------------------


def start(project: Any, **kwargs: Any) -> RoutingRun:
    return routing.routing_run_start(
        project=project, **{"policy": "uncertainty", "budget": 5, **kwargs}, enqueue=False
    )


def test_starting_a_preview_queues_it_and_computes_nothing(judged: Any) -> None:
    run = start(judged, seed=4, embed=True)
    assert run.status == RoutingRun.Status.QUEUED and not run.is_finished
    assert (run.seed, run.embed, run.human_items, run.estimate) == (4, True, 0, {})
    assert not run.decisions.exists()


def test_the_task_computes_the_preview_on_the_worker(
    judged: Any, django_capture_on_commit_callbacks: Any
) -> None:
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            run = routing.routing_run_start(project=judged, policy="uncertainty", budget=5)
    finally:
        celery_app.conf.task_always_eager = before
    run.refresh_from_db()
    assert run.status == RoutingRun.Status.PREVIEW and run.progress == 100
    assert run.started_at is not None and run.finished_at is not None
    humans = set(run.decisions.filter(route="human").values_list("item__external_id", flat=True))
    assert humans == {str(i) for i in range(15, 20)} and run.decisions.count() == 20
    assert run.estimate["chosen"]["share"] == pytest.approx(0.25)


def test_the_worker_computes_the_same_preview_as_the_terminal(judged: Any) -> None:
    queued = routing.routing_run_execute(run_id=start(judged, policy="learned", seed=2).pk)
    direct = routing.routing_preview(project=judged, policy="learned", budget=5, seed=2)
    assert queued is not None and queued.estimate == direct.estimate
    assert list(queued.decisions.order_by("item_id").values_list("route", "rank")) == list(
        direct.decisions.order_by("item_id").values_list("route", "rank")
    )


def test_embeddings_are_used_when_the_run_asks_for_them(judged: Any, monkeypatch: Any) -> None:
    calls: list[int] = []

    def fake_minilm() -> Any:
        def embed(texts: list[str]) -> np.ndarray:
            calls.append(len(texts))
            return np.ones((len(texts), 4)) / 2.0

        return embed

    monkeypatch.setattr(routing.routing, "minilm_embedder", fake_minilm)
    routing.routing_run_execute(run_id=start(judged).pk)
    assert calls == []
    routing.routing_run_execute(run_id=start(judged, embed=True).pk)
    assert calls == [40]  # both responses of the 20 items


def test_one_preview_computes_per_project_at_a_time(judged: Any, make_project: Any) -> None:
    first = start(judged)
    with pytest.raises(routing.RoutingRunBusy, match=f"run #{first.pk}"):
        start(judged, policy="random")
    other = make_project("other", items=2)
    Judgment.objects.create(
        item=other.items.first(),
        kind="ai",
        source="gpt",
        task_type="pairwise",
        value={"strength": 1},
        judge=Judge.objects.get(name="gpt"),
        prompt_version="imported",
    )
    start(other, budget=1)  # another project is not blocked
    routing.routing_run_execute(run_id=first.pk)
    start(judged)  # nor is the next one once the first is done


def test_a_run_lost_by_its_worker_does_not_block_the_next(judged: Any, settings: Any) -> None:
    lost = start(judged)
    RoutingRun.objects.filter(pk=lost.pk).update(
        status="running",
        started_at=timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 61),
    )
    start(judged)
    lost.refresh_from_db()
    assert lost.status == "failed" and "worker was lost" in lost.error


def test_a_failure_is_recorded_on_the_run_with_its_message(judged: Any, monkeypatch: Any) -> None:
    def boom(**kwargs: Any) -> Any:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(routing, "routing_pool", boom)
    run = routing.routing_run_execute(run_id=start(judged).pk)
    assert run is not None and run.status == "failed" and run.error == "RuntimeError: out of memory"
    assert run.finished_at is not None and not run.decisions.exists()
    with pytest.raises(routing.RoutingError, match="out of memory"):
        routing.routing_preview(project=judged, policy="random", budget=2)


def test_a_routing_error_on_the_worker_reads_as_the_page_shows_it(judged: Any) -> None:
    run = start(judged)
    Judgment.objects.filter(item__project=judged).delete()  # judgments gone while it queued
    run = routing.routing_run_execute(run_id=run.pk)
    assert run is not None and run.status == "failed"
    assert run.error.startswith("no AI verdicts yet")


def test_a_finished_run_is_not_run_again(judged: Any) -> None:
    run = routing.routing_run_execute(run_id=start(judged).pk)
    assert run is not None and routing.routing_run_execute(run_id=run.pk) is None
    assert routing.routing_run_execute(run_id=999999) is None
    assert run.decisions.count() == 20


def test_a_second_delivery_writes_nothing_once_the_first_finished(judged: Any) -> None:
    run = start(judged)
    RoutingRun.objects.filter(pk=run.pk).update(status="running")
    run.refresh_from_db()
    routing.routing_run_execute(run_id=run.pk)
    with pytest.raises(routing._Superseded):
        routing._compute(run)  # the late delivery finds the row finished
    run.refresh_from_db()
    assert run.status == "preview" and run.decisions.count() == 20


def test_a_run_that_is_not_a_finished_preview_cannot_be_applied(judged: Any) -> None:
    run = start(judged)
    with pytest.raises(routing.RoutingError, match="queued, not a finished preview"):
        routing.routing_apply(run=run)
    assert not judged.items.exclude(route=Item.Route.PENDING).exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"policy": "clairvoyant"}, "clairvoyant"),
        ({"budget": -1}, "budget"),
        ({"budget_kind": "favours"}, "favours"),
        ({"budget": 1e12, "budget_kind": "money", "cost_per_judgment": 1e-320}, "too large"),
    ],
)
def test_a_bad_request_is_refused_before_any_run_is_recorded(
    judged: Any, kwargs: dict, message: str
) -> None:
    with pytest.raises(routing.RoutingError, match=message):
        start(judged, **kwargs)
    assert not RoutingRun.objects.exists()


# --- The fast read and write give the decisions the ORM path gave -----------------------------


def _orm_decisions(project: Any, policy: str, budget: int) -> list[tuple]:
    """Decisions as `_compute` made them before the fast path: items and judgments read through
    the ORM (Django's JSONField decoding), one RoutingDecision-like tuple built per item."""
    import routing as pure

    rows = list(
        Item.objects.filter(project=project).order_by("pk").values_list("pk", "prompt", "responses")
    )
    index = {pk: i for i, (pk, *_) in enumerate(rows)}
    n = len(rows)
    by_judge: dict[str, list] = {}
    ai = Judgment.objects.filter(item__project=project, kind="ai", judge__isnull=False)
    for j in ai.values("item_id", "judge__name", "value", "probabilities", "confidence", "raw"):
        raw = j["raw"] or {}
        main, swapped = routing._probs_of(
            j["value"],
            j["probabilities"],
            j["confidence"],
            raw.get("order_ab"),
            raw.get("order_ba"),
            project.task_type,
        )
        entry = by_judge.setdefault(
            j["judge__name"], [np.full((n, 3), np.nan), np.full((n, 3), np.nan), False]
        )
        entry[0][index[j["item_id"]]] = main
        if swapped is not None:
            entry[1][index[j["item_id"]]] = swapped
            entry[2] = True
    judges = [
        pure.JudgeVerdicts(name, p, sw if has else None)
        for name, (p, sw, has) in sorted(by_judge.items())
    ]
    started = np.array(
        [
            assigned > 0 or done > 0
            for assigned, done in Item.objects.filter(project=project)
            .order_by("pk")
            .values_list("human_assigned", "human_done")
        ]
    )
    texts = [routing._texts(prompt, responses) for _, prompt, responses in rows]
    pool = pure.build_pool(
        prompts=[t[0] for t in texts],
        responses_a=[t[1] for t in texts],
        responses_b=[t[2] for t in texts],
        judges=judges,
        tags=None,
    )
    labels = np.full(n, pure.UNKNOWN, dtype=int)
    result = pure.make_policy(policy, seed=0).route(
        pool, max(0, budget - int(started.sum())), routed=started, human_labels=labels
    )
    ranking = np.concatenate(
        [np.flatnonzero(started), [i for i in result.ranking() if not started[i]]]
    )
    order = {int(i): rank for rank, i in enumerate(ranking)}
    human = result.human_mask | started
    out = []
    for i in range(n):
        reason = result.reason(i) if human[i] and not started[i] else {}
        if started[i]:
            reason = {"started by annotators": 1.0}
        route = Item.Route.HUMAN if human[i] else Item.Route.AI
        out.append((rows[i][0], route, float(result.scores[i]), order[i], reason))
    return out


@pytest.fixture
def judged_like_a_judge_run(make_project: Any, owner: Any) -> Any:
    """40 items with Unicode and chat prompts; two judges that stored probabilities and both
    presentation orders as judge runs do (one of them for half the items only); one item started."""
    project = make_project("realistic", items=0)
    rng = np.random.default_rng(7)
    words = ["the", "Answer", "café", "数据", "İstanbul", "code_block", "3.14", "don't", "—"]
    gpt, pl = (Judge.objects.create(name=n, backend=Judge.Backend.IMPORTED) for n in ("gpt", "pl"))
    for i in range(40):
        text = [" ".join(rng.choice(words, size=int(rng.integers(0, 30)))) for _ in range(3)]
        prompt: Any = text[0] if i % 3 else [{"role": "user", "content": text[0]}]
        item = Item.objects.create(
            project=project,
            external_id=str(i),
            content_hash=f"{i:064x}",
            prompt=prompt,
            responses=[{"model": "m1", "text": text[1]}, {"model": "m2", "text": text[2]}],
        )
        for judge in (gpt, pl) if i % 2 else (gpt,):
            ab = {"p_first": float(rng.random()) / 2, "p_tie": 0.1}
            ab["p_second"] = 0.9 - ab["p_first"]
            ba = {"p_first": float(rng.random()) / 2, "p_tie": 0.2}
            ba["p_second"] = 0.8 - ba["p_first"]
            raw = {"order_ab": ab, "order_ba": ba} if judge is gpt else None
            p_a = (ab["p_first"] + ba["p_second"]) / 2
            Judgment.objects.create(
                item=item,
                kind="ai",
                source=judge.name,
                task_type="pairwise",
                value={"strength": 1 if p_a > 0.4 else -1},
                judge=judge,
                prompt_version="v1",
                probabilities={"a": p_a, "b": 0.85 - p_a, "tie": 0.15},
                confidence=abs(2 * p_a - 0.85),
                raw=raw,
            )
    started = project.items.get(external_id="3")
    Assignment.objects.create(
        project=project,
        item=started,
        annotator=owner,
        presentation_order=[0, 1],
        expires_at=Assignment.expiry_from_now(project),
    )
    Item.objects.filter(pk=started.pk).update(human_assigned=1)
    return project


@pytest.mark.parametrize("policy", ["random", "uncertainty", "learned", "corrected"])
def test_a_preview_stores_the_decisions_the_orm_path_made(
    judged_like_a_judge_run: Any, policy: str
) -> None:
    run = routing.routing_preview(project=judged_like_a_judge_run, policy=policy, budget=10)
    stored = list(
        run.decisions.order_by("item_id").values_list("item_id", "route", "score", "rank", "reason")
    )
    assert stored == _orm_decisions(judged_like_a_judge_run, policy, 10)


def test_decisions_are_stored_as_written_whatever_their_reasons_hold(judged: Any) -> None:
    run = RoutingRun.objects.create(project=judged, policy="random", budget=1)
    items = list(judged.items.order_by("pk").values_list("pk", flat=True)[:4])
    odd = {'judge:a\\b "q"\t—ü': 0.125, "x\ny": -1e-300}
    rows = [
        (items[0], "human", 0.1 + 0.2, 0, odd),
        # NaN is PostgreSQL's alone: SQLite stores it as NULL (refused, as it always was).
        (items[1], "ai", float("nan") if connection.vendor == "postgresql" else 0.5, 1, {}),
        (items[2], "ai", float("inf"), 2, {"started by annotators": 1.0}),
        (items[3], "human", -float("inf"), 3, {}),
    ]
    routing._write_decisions(run.pk, rows)
    stored = list(
        run.decisions.order_by("rank").values_list("item_id", "route", "score", "rank", "reason")
    )
    assert stored[0] == rows[0]
    assert stored[1][4] == {}
    if connection.vendor == "postgresql":
        assert np.isnan(stored[1][2])
    assert [s[2] for s in stored[2:]] == [float("inf"), -float("inf")]
    assert stored[2][4] == {"started by annotators": 1.0}
