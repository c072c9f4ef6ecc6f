"""Routing runs: turn the pure `routing` package's decisions into rows, and apply them.

A run is previewed first (scores, reasons, the estimated-accuracy curve, RoutingDecision rows)
and applied later: chosen items enter the human queue, the rest keep their AI label. Re-routing
never takes back an item an annotator has started (it has an assignment or a judgment); those
count as already routed, and the budget is the project's total, so they use part of it.

Labels are read on the project's first aspect (its "overall" question): one routing decision
per item, whatever the number of aspects.

Computing a preview reads every item and AI judgment and builds text features (about 9 s at
100,000 items on PostgreSQL, see bench/routing_app.py; far more with MiniLM embeddings), so the
page and the API only start it (`routing_run_start`, one active run per project, enforced by a
partial unique constraint) and a Celery task on the `default` queue runs
`routing_run_execute`. The `route` command computes in-process through the same two functions
(`routing_preview`).
"""

from __future__ import annotations

import gc
import json
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet, TextField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.utils import timezone

import routing
from annotate.models import (
    Item,
    JobBusy,
    Judge,
    Judgment,
    Project,
    RoutingDecision,
    RoutingRun,
    TaskType,
)

POLICIES = ("random", "uncertainty", "learned", "corrected", "hyper")
DEFAULT_HUMAN_ACCURACY = 0.9  # used until enough items have two human labels to measure it
MIN_AGREEMENT_PAIRS = 20


log = logging.getLogger(__name__)


class RoutingError(Exception):
    """A routing run cannot be made (no AI labels yet, a bad budget, an unknown policy …)."""


class RoutingRunBusy(RoutingError):
    """A routing preview is already being computed for the project."""


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


def _probs_of(
    value: dict,
    probabilities: Any,
    confidence: float | None,
    order_ab: Any,
    order_ba: Any,
    task_type: str,
) -> tuple[list[float], list[float] | None]:
    """(tie, A, B) probabilities of one AI judgment, and the swapped order's, when it has them
    (`order_ab` and `order_ba` of the judgment's `raw`).

    For K > 2 the question becomes "is the AI's top response really the best": its confidence
    goes on "A" (the AI's pick) and the rest on "B".
    """
    if task_type != TaskType.PAIRWISE:
        c = confidence if confidence is not None else 0.5
        return [0.0, float(c), 1.0 - float(c)], None
    probs = probabilities or {}
    if "a" in probs:
        main = [float(probs.get("tie", 0.0)), float(probs["a"]), float(probs.get("b", 0.0))]
    else:
        onehot = [0.0, 0.0, 0.0]
        onehot[_class_of(int(value.get("strength", 0)))] = 1.0
        return onehot, None
    ab, ba = order_ab, order_ba
    if ab and ba:
        # order_ba saw B first: its "first" is our B. Map both back to (tie, A, B).
        first = [float(ab["p_tie"]), float(ab["p_first"]), float(ab["p_second"])]
        swapped = [float(ba["p_tie"]), float(ba["p_second"]), float(ba["p_first"])]
        return first, swapped
    return main, None


def _as_text(field: str) -> Cast:
    """A JSON column read as its text, decoded by `_loads` instead of Django's JSONField (whose
    `json.loads` per value was most of reading 100,000 items)."""
    return Cast(F(field), output_field=TextField())


def _stream(rows: QuerySet, types: tuple[str, ...]) -> Iterator[tuple]:
    """The rows of a `values_list` query. On PostgreSQL they come through `COPY (query) TO
    STDOUT`, which the server keeps writing while this process decodes what it has: with a plain
    query the two took turns (at 100,000 items the server's JSON output and Python's decoding
    each took about a second). `types` are the columns' PostgreSQL types, for psycopg's loaders.
    Consume the rows before the next query on the connection."""
    if connection.vendor != "postgresql":
        yield from rows
        return
    sql, params = rows.query.sql_with_params()
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY ({sql}) TO STDOUT", params) as copy,
    ):
        copy.set_types(list(types))
        yield from copy.rows()


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # what orjson refuses and json reads: NaN, huge integers
        return json.loads(text)


def routing_aspect(project: Project) -> str:
    """The aspect routing reads (and learns AI labels for): the project's first."""
    return project.aspects[0] if project.aspects else "overall"


NO_AI_VERDICTS = "no AI verdicts yet: run a judge (or import a judge's labels) before routing"


def _ai_verdicts(project: Project) -> QuerySet[Judgment]:
    """The AI verdicts routing reads: registered judges' (imported ones included), first aspect."""
    return Judgment.objects.filter(
        item__project=project,
        kind=Judgment.Kind.AI,
        aspect=routing_aspect(project),
        judge__isnull=False,
    )


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while a preview builds its rows (restored after,
    if it was on). Reading 100,000 items makes hundreds of thousands of dicts and lists that all
    live on; the collections their allocations set off scan them again and again, which was a
    third of the time spent reading (1.4 s of 4 at 100,000 items). Nothing cyclic is freed
    meanwhile: collection is only put off to the end."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def routing_pool(
    *, project: Project, embed: bool = False, progress: Callable[[int], None] | None = None
) -> ProjectPool:
    """Everything a policy may read about the project's items: texts, AI verdicts, human labels
    of started items (never of items that were not sent to humans). `progress` is told a rough
    percent of the whole preview after each step."""
    if embed:  # a transformer runs for minutes: leave the collector alone
        return _routing_pool(project=project, embed=embed, progress=progress)
    with _gc_paused():
        return _routing_pool(project=project, embed=embed, progress=progress)


def _routing_pool(
    *, project: Project, embed: bool, progress: Callable[[int], None] | None
) -> ProjectPool:
    report = progress or (lambda percent: None)
    aspect = routing_aspect(project)
    items = (
        Item.objects.filter(project=project)
        .order_by("pk")
        .values_list("pk", _as_text("prompt"), _as_text("responses"), _as_text("tags"))
    )
    rows = [
        (pk, _loads(prompt), _loads(responses), _loads(tags))
        for pk, prompt, responses, tags in _stream(items, ("int8", "text", "text", "text"))
    ]
    if not rows:
        raise RoutingError("the project has no items")
    index = {pk: i for i, (pk, *_) in enumerate(rows)}
    n = len(rows)
    report(20)

    names, judges = _panel_judges(project, index)
    report(45)

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

    report(50)
    texts = [_texts(prompt, responses) for _, prompt, responses, _ in rows]
    pool = routing.build_pool(
        prompts=[t[0] for t in texts],
        responses_a=[t[1] for t in texts],
        responses_b=[t[2] for t in texts],
        judges=judges,
        tags=_tag_columns([tags for *_, tags in rows]),
        embedder=routing.minilm_embedder() if embed else None,
    )
    report(80)
    return ProjectPool(
        item_ids=np.array([pk for pk, *_ in rows]),
        pool=pool,
        started=started,
        human_labels=human_labels,
        human_accuracy=human_accuracy,
        judges=names,
    )


def weighed_panel_labels(
    *, project: Project, pool: ProjectPool | None = None
) -> dict[int, tuple[int, float]]:
    """Item pk -> (class, confidence) of the AI label routing gives each item where it weighs the
    panel (three or more judges, see `routing.estimate_judge_weights`): the label that routing's
    estimates and benchmark credit to items no human sees. Empty where every judge counts alike
    (one or two judges, or weights that cannot be estimated) and where there are no verdicts:
    final labels then keep their own rule (`annotate.services.labels`). `pool`, when the caller
    has built it (`routing_pool`), is read instead of the verdicts."""
    if pool is not None:
        pks, ai = pool.item_ids.tolist(), pool.pool.ai
    else:
        # A count first: with fewer than three judges nothing is weighed, and reading every
        # verdict of a large project takes seconds.
        if _ai_verdicts(project).values("judge_id").distinct().count() < 3:
            return {}
        pks = list(Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
        try:
            _, judges = _panel_judges(project, {pk: i for i, pk in enumerate(pks)})
        except RoutingError:
            return {}
        ai, _ = routing.combine_panel(judges)
    if ai.weights is None:
        return {}
    return {
        pk: (int(label), float(confidence))
        for pk, label, confidence in zip(pks, ai.label, ai.confidence, strict=True)
        if label != routing.UNKNOWN
    }


def _panel_judges(
    project: Project, index: dict[int, int]
) -> tuple[list[str], list[routing.JudgeVerdicts]]:
    """The AI verdicts routing reads, one `JudgeVerdicts` per judge (sorted by name), over the
    items of `index` (item pk -> row). Raises `RoutingError` when there are none."""
    n = len(index)
    ai = _ai_verdicts(project)
    # Per judge: the rows and their (tie, A, B) probabilities, and those of the swapped order;
    # written into the arrays at once, in query order (a later row for an item wins, as before).
    found: dict[int, tuple[list[int], list[list[float]], list[int], list[list[float]]]] = {}
    # Per judge that gave any: its stated reason per item (imported labels keep them as
    # `rationale`), "" where it gave none. Routing reads their cues.
    reasons: dict[int, list[str]] = {}
    # Of `raw` (a judge's whole output) only the two presentation orders are read.
    verdicts = ai.values_list(
        "item_id",
        "judge_id",
        _as_text("value"),
        _as_text("probabilities"),
        "confidence",
        KT("raw__order_ab"),
        KT("raw__order_ba"),
        "rationale",
    )
    for item_id, judge_id, value, probabilities, confidence, order_ab, order_ba, why in _stream(
        verdicts, ("int8", "int8", "text", "text", "float8", "text", "text", "text")
    ):
        main, swapped = _probs_of(
            _loads(value),
            _loads(probabilities),
            confidence,
            _loads(order_ab),
            _loads(order_ba),
            project.task_type,
        )
        rows_main, mains, rows_swapped, swapped_probs = found.setdefault(judge_id, ([], [], [], []))
        i = index[item_id]
        rows_main.append(i)
        mains.append(main)
        if swapped is not None:
            rows_swapped.append(i)
            swapped_probs.append(swapped)
        if why:
            if judge_id not in reasons:
                reasons[judge_id] = [""] * n
            reasons[judge_id][i] = why
    if not found:
        raise RoutingError(NO_AI_VERDICTS)
    judge_names = dict(Judge.objects.filter(pk__in=found).values_list("pk", "name"))
    by_judge: dict[str, tuple[np.ndarray, np.ndarray | None, list[str] | None]] = {}
    for judge_id, (rows_main, mains, rows_swapped, swapped_probs) in found.items():
        probs = np.full((n, 3), np.nan)
        probs[rows_main] = mains
        probs_sw = None
        if rows_swapped:
            probs_sw = np.full((n, 3), np.nan)
            probs_sw[rows_swapped] = swapped_probs
        by_judge[judge_names[judge_id]] = (probs, probs_sw, reasons.get(judge_id))
    names = sorted(by_judge)
    return names, [routing.JudgeVerdicts(name, *by_judge[name]) for name in names]


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
        return spec.items(available)
    except ValueError as exc:
        raise RoutingError(f"budget: {exc}") from None
    except OverflowError:  # a money budget over a near-zero cost buys "infinitely many"
        raise RoutingError("budget: money ÷ cost per judgment is too large") from None


def _check_request(
    *, project: Project, policy: str, budget: float, budget_kind: str, cost_per_judgment: float
) -> None:
    """Refuse at once what the worker would refuse (cheap queries only): an unknown policy, a
    bad budget, a project with no items or no AI verdicts yet."""
    if policy not in POLICIES:
        raise RoutingError(f"policy {policy!r} is not one of {', '.join(POLICIES)}")
    n = project.items.count()
    if not n:
        raise RoutingError("the project has no items")
    routing_budget_items(
        project=project,
        budget_kind=budget_kind,
        budget=budget,
        cost_per_judgment=cost_per_judgment,
        available=n,
    )
    if not _ai_verdicts(project).exists():
        raise RoutingError(NO_AI_VERDICTS)


def routing_run_start(
    *,
    project: Project,
    policy: str,
    budget: float,
    budget_kind: str = "judgments",
    cost_per_judgment: float = 0.0,
    user: Any = None,
    seed: int = 0,
    embed: bool = False,
    enqueue: bool = True,
) -> RoutingRun:
    """Record a preview of `policy` under the budget and queue it once the row is committed.

    Refuses (RoutingRunBusy) while another preview of the project is queued or running: the
    unique constraint on the row settles two requests that check at once.
    """
    _check_request(
        project=project,
        policy=policy,
        budget=budget,
        budget_kind=budget_kind,
        cost_per_judgment=cost_per_judgment,
    )
    try:
        run = RoutingRun.start_exclusive(
            scope={"project": project},
            policy=policy,
            budget_kind=budget_kind,
            budget=budget,
            cost_per_judgment=cost_per_judgment,
            seed=seed,
            embed=embed,
            created_by=user,
        )
    except JobBusy as busy:  # routing_run_one_active_per_project
        active = busy.active
        raise RoutingRunBusy(
            f"a routing preview is already being computed (run #{active.pk}, {active.status}); "
            "wait for it to finish"
            if active
            else "a routing preview is already being computed"
        ) from None
    if enqueue:
        transaction.on_commit(lambda: _enqueue(run.pk))
    return run


def _enqueue(run_id: int) -> None:
    from annotate.tasks import compute_routing_preview

    compute_routing_preview.delay(run_id)


class _Superseded(Exception):
    """Another delivery of the same task finished the run first."""


def _progress(run_id: int) -> Callable[[int], None]:
    def report(percent: int) -> None:
        RoutingRun.objects.filter(pk=run_id).update(progress=percent)

    return report


def _compute(run: RoutingRun) -> None:
    """Score every item with the run's policy, choose the items the budget sends to humans, and
    store the decisions (one per item) and the estimated-accuracy curve on the run."""
    project = run.project
    progress = _progress(run.pk)
    pp = routing_pool(project=project, embed=run.embed, progress=progress)
    n = len(pp.item_ids)
    total_items = routing_budget_items(
        project=project,
        budget_kind=run.budget_kind,
        budget=run.budget,
        cost_per_judgment=run.cost_per_judgment,
        available=n,
    )
    started = int(pp.started.sum())
    new_items = max(0, total_items - started)
    try:
        chooser = routing.make_policy(run.policy, seed=run.seed)
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
        policy=run.policy,
    )
    estimate = {
        **curve.to_dict(),
        "human_accuracy": round(pp.human_accuracy, 4),
        "judges": pp.judges,
        "started": started,
        "info": {k: v for k, v in result.info.items() if isinstance(v, (int, float, str, bool))},
    }
    if pp.pool.ai.weights is not None:
        # Each judge's weight in the AI label where the panel was weighed by agreement (three or
        # more judges, see routing.estimate_judge_weights); absent where every judge counts alike.
        estimate["judge_weights"] = {
            name: round(float(w), 3) for name, w in zip(pp.judges, pp.pool.ai.weights, strict=True)
        }
    progress(90)
    human = result.human_mask | pp.started
    with _gc_paused():
        decisions = _decision_rows(pp, result, ranking, human)
    with transaction.atomic():
        # The row lock makes a second delivery of the task (acks_late) wait here, then find the
        # run finished and write nothing, instead of failing on the decisions' unique constraint.
        locked = RoutingRun.objects.select_for_update().get(pk=run.pk)
        if locked.status != RoutingRun.Status.RUNNING:
            raise _Superseded
        _write_decisions(run.pk, decisions)
        RoutingRun.objects.filter(pk=run.pk).update(
            status=RoutingRun.Status.PREVIEW,
            policy_version=result.version,
            human_items=int(human.sum()),
            estimate=estimate,
            seconds=result.seconds,
            progress=100,
            error="",
            finished_at=timezone.now(),
        )


def _decision_rows(
    pp: ProjectPool, result: routing.RoutingResult, ranking: np.ndarray, human: np.ndarray
) -> list[tuple[int, str, float, int, dict]]:
    """(item id, route, score, rank, reason) of every item, in the pool's order."""
    n = len(pp.item_ids)
    rank = np.empty(n, dtype=np.int64)
    rank[ranking.astype(int)] = np.arange(len(ranking))  # ranking is a permutation of the items
    reasons: dict[int, dict] = {
        int(i): {"started by annotators": 1.0} for i in np.flatnonzero(pp.started)
    }
    for i in np.flatnonzero(human & ~pp.started):
        reasons[int(i)] = result.reason(int(i))
    decisions = list(
        zip(
            pp.item_ids.tolist(),
            np.where(human, Item.Route.HUMAN, Item.Route.AI).tolist(),
            np.asarray(result.scores, dtype=float).tolist(),
            rank.tolist(),
            [reasons.get(i, {}) for i in range(n)],
            strict=True,
        )
    )
    return decisions


def _write_decisions(run_id: int, decisions: list[tuple[int, str, float, int, dict]]) -> None:
    """Store (item id, route, score, rank, reason) rows: COPY on PostgreSQL (writing 100,000
    decisions as model instances through bulk_create took seconds), bulk_create elsewhere."""
    if connection.vendor != "postgresql":
        RoutingDecision.objects.bulk_create(
            (
                RoutingDecision(
                    run_id=run_id,
                    item_id=item_id,
                    route=route,
                    score=score,
                    rank=rank,
                    reason=reason,
                )
                for item_id, route, score, rank, reason in decisions
            ),
            batch_size=5000,
        )
        return
    quote = connection.ops.quote_name
    fields = [
        RoutingDecision._meta.get_field(name)
        for name in ("run", "item", "route", "score", "rank", "reason")
    ]
    sql = (
        f"COPY {quote(RoutingDecision._meta.db_table)} "
        f"({', '.join(quote(f.column) for f in fields)}) FROM STDIN"
    )
    # COPY's text format, written here in one piece (psycopg's write_row costs microseconds a
    # row). No value holds a tab or a newline: json.dumps escapes them (and everything outside
    # ASCII), leaving backslashes, which COPY reads as escapes and so are doubled. The jsonb
    # stored is the one the JSONField's json.dumps gives.
    lines = [
        f"{run_id}\t{item_id}\t{route}\t{_copy_float(score)}\t{rank}\t"
        f"{json.dumps(reason).replace(chr(92), chr(92) * 2) if reason else '{}'}\n"
        for item_id, route, score, rank, reason in decisions
    ]
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for start in range(0, len(lines), 10_000):
            copy.write("".join(lines[start : start + 10_000]).encode("utf-8"))


def _copy_float(value: float) -> str:
    """A float as PostgreSQL reads it back unchanged: repr is exact; NaN and infinities by name."""
    if math.isfinite(value):
        return repr(value)
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def routing_run_execute(*, run_id: int) -> RoutingRun | None:
    """Compute the run's preview and store it, or record on the row why it failed.

    None (nothing done) when the row is gone or already finished. A row still "running" is run
    again: a redelivery after its worker was lost; the decisions are written in the same
    transaction that finishes the row, so a lost run left none behind.
    """
    run = RoutingRun.claim(run_id, progress=0)
    if run is None:
        return None
    try:
        _compute(run)
    except _Superseded:
        pass
    except RoutingError as exc:  # a fact about the data, worded for the page: no type name
        RoutingRun.objects.filter(pk=run_id, status=RoutingRun.Status.RUNNING).update(
            status=RoutingRun.Status.FAILED, error=str(exc), finished_at=timezone.now()
        )
    except Exception as exc:
        log.exception("routing run %s failed", run_id)
        RoutingRun.mark_failed(run_id, exc)
    run.refresh_from_db()
    return run


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
    """Start a preview and compute it here, in this process (the `route` command, tests).

    Raises RoutingError with the run's message when it fails; the failed run stays recorded.
    """
    run = routing_run_start(
        project=project,
        policy=policy,
        budget=budget,
        budget_kind=budget_kind,
        cost_per_judgment=cost_per_judgment,
        user=user,
        seed=seed,
        embed=embed,
        enqueue=False,
    )
    done = routing_run_execute(run_id=run.pk)
    assert done is not None  # the row was just created queued; nothing else claims it here
    if done.status == RoutingRun.Status.FAILED:
        raise RoutingError(done.error)
    return done


def routing_run_latest(*, project: Project) -> RoutingRun | None:
    """The project's newest routing run, whatever its status."""
    return RoutingRun.objects.filter(project=project).order_by("-created_at", "-pk").first()


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
        status = RoutingRun.objects.filter(pk=run.pk).values_list("status", flat=True).first()
        if status == RoutingRun.Status.APPLIED:
            raise RoutingError("this routing run was applied already")
        if status != RoutingRun.Status.PREVIEW:
            raise RoutingError(f"this routing run is {status}, not a finished preview")
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
