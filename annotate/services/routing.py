"""Routing runs: turn the pure `routing` package's decisions into rows, and apply them.

A run is previewed first (scores, reasons, the estimated-accuracy curve, RoutingDecision rows)
and applied later: chosen items enter the human queue, the rest keep their AI label. Re-routing
never takes back an item an annotator has started (it has an assignment or a judgment); those
count as already routed, and the budget is the project's total, so they use part of it.

Labels are read on the project's first aspect (its "overall" question): one routing decision
per item, whatever the number of aspects.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

import routing
from annotate.models import Item, Judgment, Project, RoutingDecision, RoutingRun, TaskType

POLICIES = ("random", "uncertainty", "learned", "corrected", "hyper")
DEFAULT_HUMAN_ACCURACY = 0.9  # used until enough items have two human labels to measure it
MIN_AGREEMENT_PAIRS = 20


class RoutingError(Exception):
    """A routing run cannot be made (no AI labels yet, a bad budget, an unknown policy …)."""


@dataclass
class ProjectPool:
    item_ids: np.ndarray
    pool: routing.RoutingPool
    started: np.ndarray  # items annotators have started: fixed on the human side
    human_labels: np.ndarray  # majority human label of started items, UNKNOWN elsewhere
    human_accuracy: float
    judges: list[str]


def _class_of(strength: int) -> int:
    return (
        routing.TIE if strength == 0 else (routing.A_BETTER if strength > 0 else routing.B_BETTER)
    )


def _probs_of(judgment: dict[str, Any], task_type: str) -> tuple[list[float], list[float] | None]:
    """(tie, A, B) probabilities of one AI judgment, and the swapped order's, when it has them.

    For K > 2 the question becomes "is the AI's top response really the best": its confidence
    goes on "A" (the AI's pick) and the rest on "B".
    """
    if task_type != TaskType.PAIRWISE:
        c = judgment["confidence"] if judgment["confidence"] is not None else 0.5
        return [0.0, float(c), 1.0 - float(c)], None
    probs = judgment["probabilities"] or {}
    if "a" in probs:
        main = [float(probs.get("tie", 0.0)), float(probs["a"]), float(probs.get("b", 0.0))]
    else:
        onehot = [0.0, 0.0, 0.0]
        onehot[_class_of(int(judgment["value"].get("strength", 0)))] = 1.0
        return onehot, None
    raw = judgment["raw"] or {}
    ab, ba = raw.get("order_ab"), raw.get("order_ba")
    if ab and ba:
        # order_ba saw B first: its "first" is our B. Map both back to (tie, A, B).
        first = [float(ab["p_tie"]), float(ab["p_first"]), float(ab["p_second"])]
        swapped = [float(ba["p_tie"]), float(ba["p_second"]), float(ba["p_first"])]
        return first, swapped
    return main, None


def routing_pool(*, project: Project, embed: bool = False) -> ProjectPool:
    """Everything a policy may read about the project's items: texts, AI verdicts, human labels
    of started items (never of items that were not sent to humans)."""
    aspect = project.aspects[0] if project.aspects else "overall"
    rows = list(
        Item.objects.filter(project=project)
        .order_by("pk")
        .values_list("pk", "prompt", "responses", "tags")
    )
    if not rows:
        raise RoutingError("the project has no items")
    index = {pk: i for i, (pk, *_) in enumerate(rows)}
    n = len(rows)

    ai = Judgment.objects.filter(
        item__project=project, kind=Judgment.Kind.AI, aspect=aspect, judge__isnull=False
    )
    by_judge: dict[str, tuple[np.ndarray, np.ndarray, bool]] = {}
    for j in ai.values("item_id", "judge__name", "value", "probabilities", "confidence", "raw"):
        main, swapped = _probs_of(j, project.task_type)
        if j["judge__name"] not in by_judge:
            by_judge[j["judge__name"]] = (np.full((n, 3), np.nan), np.full((n, 3), np.nan), False)
        probs, probs_sw, _ = by_judge[j["judge__name"]]
        i = index[j["item_id"]]
        probs[i] = main
        if swapped is not None:
            probs_sw[i] = swapped
            by_judge[j["judge__name"]] = (probs, probs_sw, True)
    if not by_judge:
        raise RoutingError(
            "no AI verdicts yet: run a judge (or import a judge's labels) before routing"
        )
    names = sorted(by_judge)
    judges = [
        routing.JudgeVerdicts(name, p, sw if has_sw else None)
        for name, (p, sw, has_sw) in ((name, by_judge[name]) for name in names)
    ]

    started = np.zeros(n, dtype=bool)
    started_ids = (
        Item.objects.filter(project=project)
        .filter(Q(human_assigned__gt=0) | Q(human_done__gt=0))
        .values_list("pk", flat=True)
    )
    for pk in started_ids:
        started[index[pk]] = True
    human_labels = np.full(n, routing.UNKNOWN, dtype=int)
    votes: dict[int, list[int]] = defaultdict(list)
    in_app = Judgment.objects.filter(
        item__project=project, kind=Judgment.Kind.HUMAN, aspect=aspect, assignment__isnull=False
    )
    for item_id, task_type, value in in_app.values_list("item_id", "task_type", "value"):
        if task_type == TaskType.PAIRWISE:
            votes[index[item_id]].append(_class_of(int(value["strength"])))
    label_matrix = []
    for i, vs in votes.items():
        if started[i]:
            human_labels[i] = Counter(vs).most_common(1)[0][0]
        label_matrix.append(vs + [routing.UNKNOWN] * (max(map(len, votes.values())) - len(vs)))
    human_accuracy = DEFAULT_HUMAN_ACCURACY
    pairs = sum(len(v) * (len(v) - 1) // 2 for v in votes.values())
    if pairs >= MIN_AGREEMENT_PAIRS:
        agreement = routing.pairwise_agreement(np.array(label_matrix))
        human_accuracy = routing.human_accuracy_from_agreement(agreement)

    texts = [_texts(prompt, responses) for _, prompt, responses, _ in rows]
    pool = routing.build_pool(
        prompts=[t[0] for t in texts],
        responses_a=[t[1] for t in texts],
        responses_b=[t[2] for t in texts],
        judges=judges,
        tags=_tag_columns([tags for *_, tags in rows]),
        embedder=routing.minilm_embedder() if embed else None,
    )
    return ProjectPool(
        item_ids=np.array([pk for pk, *_ in rows]),
        pool=pool,
        started=started,
        human_labels=human_labels,
        human_accuracy=human_accuracy,
        judges=names,
    )


def _tag_columns(all_tags: list[dict]) -> dict[str, list[str | None]] | None:
    """LLM tags as categorical columns (items not tagged yet get None); None if nothing is tagged."""
    dims = sorted({k for tags in all_tags for k in tags if not k.startswith("_")})
    if not dims:
        return None
    return {dim: [tags.get(dim) for tags in all_tags] for dim in dims}


def _texts(prompt: Any, responses: list[dict]) -> tuple[str, str, str]:
    prompt_text = (
        prompt if isinstance(prompt, str) else "\n".join(t.get("content", "") for t in prompt)
    )
    return prompt_text, responses[0]["text"], responses[1]["text"] if len(responses) > 1 else ""


def routing_budget_items(
    *, project: Project, budget_kind: str, budget: float, cost_per_judgment: float, available: int
) -> int:
    """Items the budget pays for in total (items × overlap judgments; or money ÷ cost)."""
    try:
        if budget_kind == "money":
            spec = routing.Budget(
                money=float(budget), cost_per_judgment=cost_per_judgment, overlap=project.overlap
            )
        elif budget_kind == "judgments":
            spec = routing.Budget(judgments=int(budget), overlap=project.overlap)
        else:
            raise RoutingError(f"budget kind {budget_kind!r} is not judgments or money")
    except ValueError as exc:
        raise RoutingError(f"budget: {exc}") from None
    return spec.items(available)


def routing_preview(
    *,
    project: Project,
    policy: str,
    budget: float,
    budget_kind: str = "judgments",
    cost_per_judgment: float = 0.0,
    user: Any = None,
    seed: int = 0,
    embed: bool = False,
) -> RoutingRun:
    """Score every item with `policy`, choose the items the budget sends to humans, and record
    the run, one decision per item, and the estimated-accuracy curve. Nothing is applied yet."""
    if policy not in POLICIES:
        raise RoutingError(f"policy {policy!r} is not one of {', '.join(POLICIES)}")
    pp = routing_pool(project=project, embed=embed)
    n = len(pp.item_ids)
    total_items = routing_budget_items(
        project=project,
        budget_kind=budget_kind,
        budget=budget,
        cost_per_judgment=cost_per_judgment,
        available=n,
    )
    started = int(pp.started.sum())
    new_items = max(0, total_items - started)
    try:
        chooser = routing.make_policy(policy, seed=seed)
    except ValueError as exc:
        raise RoutingError(str(exc)) from None
    result = chooser.route(pp.pool, new_items, routed=pp.started, human_labels=pp.human_labels)
    state = routing.RoutingState.of(n, pp.started, pp.human_labels)
    p_ai = routing.ai_correct_probability(pp.pool, state)
    ranking = np.concatenate(
        [np.flatnonzero(pp.started), [i for i in result.ranking() if not pp.started[i]]]
    )
    curve = routing.curve_from_ranking(
        ranking.astype(int),
        p_ai,
        pp.human_accuracy,
        chosen_items=started + len(result.chosen),
        policy=policy,
    )
    estimate = {
        **curve.to_dict(),
        "human_accuracy": round(pp.human_accuracy, 4),
        "judges": pp.judges,
        "started": started,
        "info": {k: v for k, v in result.info.items() if isinstance(v, (int, float, str, bool))},
    }
    human = result.human_mask | pp.started
    with transaction.atomic():
        run = RoutingRun.objects.create(
            project=project,
            policy=policy,
            policy_version=result.version,
            budget_kind=budget_kind,
            budget=budget,
            cost_per_judgment=cost_per_judgment,
            human_items=int(human.sum()),
            estimate=estimate,
            seconds=result.seconds,
            created_by=user,
        )
        order = {int(i): rank for rank, i in enumerate(ranking)}
        decisions = []
        for i in range(n):
            reason = result.reason(i) if human[i] and not pp.started[i] else {}
            if pp.started[i]:
                reason = {"started by annotators": 1.0}
            decisions.append(
                RoutingDecision(
                    run=run,
                    item_id=int(pp.item_ids[i]),
                    route=Item.Route.HUMAN if human[i] else Item.Route.AI,
                    score=float(result.scores[i]),
                    rank=order[i],
                    reason=reason,
                )
            )
        RoutingDecision.objects.bulk_create(decisions, batch_size=5000)
    return run


def routing_apply(*, run: RoutingRun, user: Any = None) -> dict[str, int]:
    """Send the run's human items to the queue and give the rest their AI label.

    Items annotators have started stay with humans whatever the run says.
    """
    project = run.project
    with transaction.atomic():
        # One apply at a time per project. NO KEY UPDATE, so that annotators' holds and
        # judgments (whose foreign-key checks share-lock the project row) are not blocked by it
        # while this waits for their item rows: that was a deadlock.
        Project.objects.select_for_update(no_key=True).get(pk=project.pk)
        if RoutingRun.objects.filter(pk=run.pk, status=RoutingRun.Status.APPLIED).exists():
            raise RoutingError("this routing run was applied already")
        started = Q(human_assigned__gt=0) | Q(human_done__gt=0)
        human_ids = run.decisions.filter(route=Item.Route.HUMAN).values("item_id")
        to_human = (
            Item.objects.filter(project=project, pk__in=human_ids)
            .exclude(route=Item.Route.HUMAN)
            .update(route=Item.Route.HUMAN)
        )
        to_ai = (
            Item.objects.filter(project=project)
            .exclude(pk__in=human_ids)
            .exclude(started)
            .exclude(route=Item.Route.AI)
            .update(route=Item.Route.AI)
        )
        RoutingRun.objects.filter(pk=run.pk).update(
            status=RoutingRun.Status.APPLIED, applied_at=timezone.now()
        )
    return {"to_human": to_human, "to_ai": to_ai}
