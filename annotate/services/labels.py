"""Final labels (one per item and aspect, with provenance) and agreement between labellers.

Rules, in one place:

- **Which source.** An item routed to the AI keeps the AI label; any other item (routed to humans,
  or not routed, e.g. imported with human labels) takes the human consensus. When the chosen side
  has no verdict yet, the other side's is used, so every labelled item has a final label and its
  `source` says honestly where it came from.
- **Human consensus ("majority").** Pairwise: the median of the graded strengths (-2..2); a
  median that falls between two grades (an even number of humans) is rounded towards a tie,
  because split humans are evidence of closeness. Ranking: mean rank per response (equivalent to
  Borda), re-ranked with ties kept, Borda points in `scores`. K-wise: best–worst counts
  (#best − #worst); the highest count is best and the lowest of the rest is worst, ties broken by
  response position.
- **Dawid–Skene.** Each annotator gets a 3×3 confusion matrix over the direction of every
  response pair (first better / tie / second better), estimated by EM over the whole project.
  Pairwise: the direction is the posterior's argmax and the strength the median strength of the
  humans who chose that direction. Ranking and K-wise: the consensus above, weighted by each
  annotator's estimated accuracy.
- **AI label.** The most confident verdict among the project's panel (each judge's latest
  verdict; all AI verdicts if the panel is empty); equal confidence goes to the latest verdict.
  `method` names the judge (`judge:<name>`); `ai_confidence` records its confidence for every
  label, so human labels can be compared with how sure the AI was. Two exceptions, pairwise
  projects only, both the label routing credits to the item: where three or more judges gave
  verdicts, the panel weighed by how often its judges agree (`method` "panel", see
  `routing.estimate_judge_weights`; "most confident" would otherwise let a weak judge that
  reports a confidence override imported labels that report none); and where enough human
  labels have come back, the label learned from them (`method` "learned"). The side comes from
  the panel; the strength is the chosen verdict's where it agrees, else "slightly".
- **Agreement** of an item: the share of (annotator, response pair) directions that match the
  final label's direction; None with fewer than two humans (one person always agrees with
  themself).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import combinations, groupby
from typing import Any, NamedTuple

import numpy as np
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, TextField
from django.db.models.functions import Cast, Mod
from django.utils import timezone

from annotate import verdicts
from annotate.models import (
    FinalLabel,
    Item,
    JobBusy,
    Judge,
    Judgment,
    LabelRun,
    Project,
    TaskType,
)

log = logging.getLogger(__name__)

METHODS = ("majority", "dawid_skene")
WRITE_BATCH = 2000
READ_CHUNK = 5000

# Direction classes of one response pair (i < j), used by Dawid–Skene and Cohen's kappa.
FIRST, TIE, SECOND = 0, 1, 2


class LabelsError(ValueError):
    """Final labels cannot be computed as asked (an unknown method …)."""


class LabelRunBusy(LabelsError):
    """The project's final labels are already being computed; a second run must wait."""


class Vote(NamedTuple):
    """One human verdict on one unit (item + aspect)."""

    annotator: str  # "user:<id>" or "ext:<name>": stable within the project
    value: dict
    created_at: Any
    time_ms: int | None


class AiVote(NamedTuple):
    judge_id: int
    value: dict
    confidence: float | None
    pk: int


class Unit(NamedTuple):
    item_id: int
    aspect: str
    route: str
    is_gold: bool
    gold_label: dict | None
    humans: list[Vote]
    ais: list[AiVote]


@dataclass
class LabelsSummary:
    method: str
    total: int = 0
    human: int = 0
    ai: int = 0
    removed: int = 0
    learned: int = 0  # AI labels corrected by the label model learned from human labels
    seconds: float = 0.0

    def __str__(self) -> str:
        return (
            f"{self.total} final labels ({self.human} human, {self.ai} AI, {self.learned} AI labels"
            f" corrected from human labels) by {self.method} in {self.seconds:.1f}s"
        )


# --- Reading judgments as units -----------------------------------------------------------------


def annotator_key(annotator_id: int | None, external: str, source: str) -> str:
    return f"user:{annotator_id}" if annotator_id else f"ext:{external or source}"


def project_units(
    project: Project, *, aspect: str | None = None, kind: str | None = None
) -> Iterator[Unit]:
    """Every (item, aspect) with at least one judgment, streamed in item order (bounded memory)."""
    qs = Judgment.objects.filter(item__project=project)
    if aspect:
        qs = qs.filter(aspect=aspect)
    if kind:
        qs = qs.filter(kind=kind)
    rows = (
        qs.order_by("item_id", "aspect", "pk")
        .values_list(
            "item_id",
            "aspect",
            "kind",
            "annotator_id",
            "external_annotator",
            "source",
            "judge_id",
            "value",
            "confidence",
            "pk",
            "created_at",
            "time_spent_ms",
            "item__route",
            "item__is_gold",
            "item__gold_label",
        )
        .iterator(chunk_size=READ_CHUNK)
    )
    for (item_id, unit_aspect), group in groupby(rows, key=lambda r: (r[0], r[1])):
        humans: list[Vote] = []
        ais: list[AiVote] = []
        route = is_gold = gold = None
        for r in group:
            route, is_gold, gold = r[12], r[13], r[14]
            if r[2] == Judgment.Kind.HUMAN:
                humans.append(Vote(annotator_key(r[3], r[4], r[5]), r[7], r[10], r[11]))
            elif r[6] is not None:
                ais.append(AiVote(r[6], r[7], r[8], r[9]))
        yield Unit(item_id, unit_aspect, route, bool(is_gold), gold, humans, ais)


# --- Directions ---------------------------------------------------------------------------------


def directions(task_type: str, value: dict, k: int) -> dict[tuple[int, int], int]:
    """{(i, j) with i < j: FIRST | TIE | SECOND} for every pair the verdict speaks about."""
    out: dict[tuple[int, int], int] = {}
    for p in verdicts.to_preferences(task_type, value, k=k):
        i, j = min(p.winner, p.loser), max(p.winner, p.loser)
        out[(i, j)] = TIE if p.is_tie else (FIRST if p.winner == i else SECOND)
    return out


def direction_agreement(
    task_type: str, value: dict, reference: dict[tuple[int, int], int], k: int
) -> tuple[int, int]:
    """(matching pairs, pairs both speak about) between a verdict and reference directions."""
    mine = directions(task_type, value, k)
    shared = [pair for pair in mine if pair in reference]
    return sum(mine[p] == reference[p] for p in shared), len(shared)


# --- Consensus ----------------------------------------------------------------------------------


def _median_toward_zero(values: Sequence[float], weights: Sequence[float]) -> int:
    """Weighted median; between two grades it rounds towards 0 (a tie), see the module doc."""
    pairs = sorted(zip(values, weights, strict=True))
    total = sum(w for _, w in pairs)
    cum = 0.0
    lower = upper = None
    for v, w in pairs:
        cum += w
        if lower is None and cum >= total / 2 - 1e-12:
            lower = v
        if cum > total / 2 + 1e-12:
            upper = v
            break
    if upper is None:
        upper = pairs[-1][0]
    mid = ((lower if lower is not None else upper) + upper) / 2
    return math.trunc(mid)


def _competition_ranks(scores: Sequence[float], *, higher_is_better: bool) -> list[int]:
    """1 + the number of responses strictly better: equal scores share a rank ("1, 1, 3")."""
    sign = -1.0 if higher_is_better else 1.0
    keyed = [sign * s for s in scores]
    return [1 + sum(other < mine - 1e-9 for other in keyed) for mine in keyed]


def consensus_value(
    task_type: str,
    values: Sequence[dict],
    *,
    k: int,
    weights: Sequence[float] | None = None,
) -> dict:
    """The humans' consensus verdict (see the module doc for the rule of each task type)."""
    if not values:
        raise LabelsError("no verdicts to agree on")
    w = list(weights) if weights is not None else [1.0] * len(values)
    if task_type == TaskType.PAIRWISE:
        return {"strength": _median_toward_zero([v["strength"] for v in values], w)}
    if task_type == TaskType.RANKING:
        total = sum(w)
        mean_rank = [
            sum(wi * v["ranks"][r] for v, wi in zip(values, w, strict=True)) / total
            for r in range(k)
        ]
        return {
            "ranks": _competition_ranks(mean_rank, higher_is_better=False),
            "scores": [round(k - m, 4) for m in mean_rank],  # Borda points: K-1 for always first
        }
    if task_type == TaskType.KWISE:
        scores = [0.0] * k
        for v, wi in zip(values, w, strict=True):
            scores[v["best"]] += wi
            scores[v["worst"]] -= wi
        best = max(range(k), key=lambda i: (scores[i], -i))
        worst = min((i for i in range(k) if i != best), key=lambda i: (scores[i], i))
        return {"best": best, "worst": worst, "scores": [round(s, 4) for s in scores]}
    raise LabelsError(f"unknown task type {task_type!r}")


def item_agreement(task_type: str, values: Sequence[dict], final: dict, *, k: int) -> float | None:
    """Share of the humans' pair directions that match the final label; None below two humans."""
    if len(values) < 2:
        return None
    reference = directions(task_type, final, k)
    match = total = 0
    for v in values:
        m, n = direction_agreement(task_type, v, reference, k)
        match, total = match + m, total + n
    return round(match / total, 4) if total else None


def _pairwise_from_direction(direction: int, strengths: Sequence[int]) -> dict:
    """Dawid–Skene pairwise label: the direction, graded by the humans who chose it."""
    if direction == TIE:
        return {"strength": 0}
    sign = 1 if direction == FIRST else -1
    agreeing = [abs(s) for s in strengths if s * sign > 0]
    magnitude = _median_toward_zero(agreeing, [1.0] * len(agreeing)) if agreeing else 1
    return {"strength": sign * max(1, magnitude)}


# --- Dawid–Skene --------------------------------------------------------------------------------


@dataclass
class DawidSkene:
    """EM estimates over pair directions: per-annotator accuracy and each unit's posterior."""

    accuracy: dict[str, float]
    posterior: dict[tuple[int, str, int, int], np.ndarray]  # (item, aspect, i, j) → P(class)
    iterations: int


def dawid_skene_fit(
    observations: Sequence[tuple[Any, str, int]], *, max_iter: int = 100, tol: float = 1e-6
) -> tuple[dict[Any, np.ndarray], dict[str, np.ndarray], np.ndarray, int]:
    """Fit Dawid & Skene (1979) on (unit, annotator, class) triples with 3 classes.

    Returns (posterior per unit, confusion matrix per annotator, class prior, iterations).
    A small Dirichlet prior on each confusion row keeps annotators seen on few units from
    getting certain (0 or 1) entries that would veto everyone else.
    """
    n_classes = 3
    units = {u: n for n, u in enumerate(dict.fromkeys(o[0] for o in observations))}
    annotators = {a: n for n, a in enumerate(dict.fromkeys(o[1] for o in observations))}
    u_idx = np.fromiter(
        (units[o[0]] for o in observations), dtype=np.int64, count=len(observations)
    )
    a_idx = np.fromiter(
        (annotators[o[1]] for o in observations), dtype=np.int64, count=len(observations)
    )
    c_idx = np.fromiter((o[2] for o in observations), dtype=np.int64, count=len(observations))
    n_units, n_ann = len(units), len(annotators)

    post = np.full((n_units, n_classes), 1e-3)
    np.add.at(post, (u_idx, c_idx), 1.0)  # start from the vote shares
    post /= post.sum(axis=1, keepdims=True)
    iterations = 0
    confusion = np.zeros((n_ann, n_classes, n_classes))
    prior = np.full(n_classes, 1 / n_classes)
    for iterations in range(1, max_iter + 1):  # noqa: B007 — reported
        # M-step: class prior and confusion matrices (rows: true class, columns: observed).
        prior = (post.sum(axis=0) + 1.0) / (n_units + n_classes)
        confusion = np.full((n_ann, n_classes, n_classes), 0.5)
        confusion[:, np.arange(n_classes), np.arange(n_classes)] += 1.5  # mildly trust people
        for c in range(n_classes):
            mask = c_idx == c
            np.add.at(confusion[:, :, c], a_idx[mask], post[u_idx[mask]])
        confusion /= confusion.sum(axis=2, keepdims=True)
        # E-step: posterior of each unit's true class.
        log_post = np.tile(np.log(prior), (n_units, 1))
        np.add.at(log_post, u_idx, np.log(confusion[a_idx, :, c_idx]))
        log_post -= log_post.max(axis=1, keepdims=True)
        new = np.exp(log_post)
        new /= new.sum(axis=1, keepdims=True)
        delta = float(np.abs(new - post).max())
        post = new
        if delta < tol:
            break
    unit_list = list(units)
    ann_list = list(annotators)
    return (
        {u: post[n] for n, u in enumerate(unit_list)},
        {a: confusion[n] for n, a in enumerate(ann_list)},
        prior,
        iterations,
    )


def _dawid_skene_project(project: Project) -> DawidSkene:
    k = project.num_responses
    observations: list[tuple[tuple[int, str, int, int], str, int]] = []
    for unit in project_units(project):
        for vote in unit.humans:
            for (i, j), d in directions(project.task_type, vote.value, k).items():
                observations.append(((unit.item_id, unit.aspect, i, j), vote.annotator, d))
    if not observations:
        return DawidSkene(accuracy={}, posterior={}, iterations=0)
    posterior, confusion, prior, iterations = dawid_skene_fit(observations)
    accuracy = {a: float(np.dot(prior, np.diag(m))) for a, m in confusion.items()}
    return DawidSkene(accuracy=accuracy, posterior=posterior, iterations=iterations)


# --- Final labels -------------------------------------------------------------------------------


def _panel_choice(ais: Sequence[AiVote], panel: set[int]) -> AiVote | None:
    """The most confident panel verdict (each judge's latest), ties to the latest verdict."""
    latest: dict[int, AiVote] = {}
    for vote in ais:
        if panel and vote.judge_id not in panel:
            continue
        if vote.judge_id not in latest or vote.pk > latest[vote.judge_id].pk:
            latest[vote.judge_id] = vote
    if not latest:
        return None
    return max(
        latest.values(),
        key=lambda v: (v.confidence if v.confidence is not None else -1.0, v.pk),
    )


def _human_label(
    project: Project, unit: Unit, method: str, ds: DawidSkene | None
) -> tuple[dict, float | None]:
    k, task_type = project.num_responses, project.task_type
    values = [v.value for v in unit.humans]
    if method == "dawid_skene" and ds is not None:
        if task_type == TaskType.PAIRWISE:
            post = ds.posterior.get((unit.item_id, unit.aspect, 0, 1))
            direction = int(np.argmax(post)) if post is not None else TIE
            final = _pairwise_from_direction(direction, [v["strength"] for v in values])
        else:
            weights = [max(ds.accuracy.get(v.annotator, 0.5), 1e-3) for v in unit.humans]
            final = consensus_value(task_type, values, k=k, weights=weights)
    else:
        final = consensus_value(task_type, values, k=k)
    return final, item_agreement(task_type, values, final, k=k)


def final_label_for(
    project: Project,
    unit: Unit,
    *,
    method: str,
    panel: set[int],
    judge_names: dict[int, str],
    ds: DawidSkene | None = None,
    now: Any = None,
    learned: AiLabelMap | None = None,
    weighed: AiLabelMap | None = None,
) -> FinalLabel | None:
    """The final label of one unit, unsaved (None when nobody has judged it yet).

    `learned` maps (item, aspect) to a corrected AI label (class, confidence) for items whose
    learned label differs from the panel's, `weighed` to the weighed panel's label (see
    `routing_ai_labels`). A learned label wins over a weighed one.
    """
    ai = _panel_choice(unit.ais, panel)
    use_ai = (unit.route == "ai" and ai is not None) or not unit.humans
    common = {
        "item_id": unit.item_id,
        "aspect": unit.aspect,
        "task_type": project.task_type,
        "num_humans": len(unit.humans),
        "ai_confidence": ai.confidence if ai else None,
        "computed_at": now or timezone.now(),
    }
    if use_ai:
        if ai is None:
            return None
        value = dict(ai.value)
        method_name = f"judge:{judge_names.get(ai.judge_id, ai.judge_id)}"
        key = (unit.item_id, unit.aspect)
        for name, labels in (("learned", learned), ("panel", weighed)):
            corrected = (labels or {}).get(key)
            if corrected is not None:
                value, common["ai_confidence"] = _corrected_value(value, *corrected), corrected[1]
                method_name = name
                break
        return FinalLabel(
            **common,
            value=value,
            source=FinalLabel.Source.AI,
            method=method_name[:32],
            agreement=None,
        )
    value, agreement = _human_label(project, unit, method, ds)
    return FinalLabel(
        **common, value=value, source=FinalLabel.Source.HUMAN, method=method, agreement=agreement
    )


AiLabelMap = dict[tuple[int, str], tuple[int, float]]


def routing_ai_labels(*, project: Project) -> tuple[AiLabelMap, AiLabelMap]:
    """The AI labels routing credits, as `(learned, weighed)` maps of (item, aspect) to (class,
    confidence). Pairwise projects only, on the aspect routing reads (the first); both empty
    otherwise.

    - `learned`: corrected AI labels learned from the human labels collected so far
      (routing.relabel). A label model fitted only on items humans judged predicts what a human
      would say elsewhere, starting from the panel's label and moving away from it only as far
      as cross-validation on those human labels supports (bench/RESULTS.md, "## routing": +0.2
      to +1.8 points of final accuracy on PandaLM). Only the items whose label changes; empty on
      a cold start (< 30 human labels).
    - `weighed`: the panel's label where routing weighs it (three or more judges, see
      `annotate.services.routing.weighed_panel_labels`), every item; empty otherwise.

    Where a label model can learn, routing's whole pool is built once and both maps come from
    it; otherwise only the verdicts are read, for the weighed panel.
    """
    import routing
    from annotate.services.routing import (
        RoutingError,
        routing_aspect,
        routing_pool,
        weighed_panel_labels,
    )
    from routing.relabel import MIN_LABELS

    if project.task_type != TaskType.PAIRWISE:
        return {}, {}
    aspect = routing_aspect(project)

    def keyed(labels: dict[int, tuple[int, float]]) -> AiLabelMap:
        return {
            (pk, aspect): (label, confidence)
            for pk, (label, confidence) in labels.items()
            if project.allow_ties or label != routing.TIE
        }

    # A cheap count first: below the model's minimum it would return the AI labels unchanged,
    # and building the pool reads every item's text.
    collected = (
        Judgment.objects.filter(
            item__project=project, kind=Judgment.Kind.HUMAN, aspect=aspect, assignment__isnull=False
        )
        .values("item_id")
        .distinct()
        .count()
    )
    if collected < MIN_LABELS:
        return {}, keyed(weighed_panel_labels(project=project))
    try:
        pp = routing_pool(project=project)
    except RoutingError:
        return {}, {}
    weighed = keyed(weighed_panel_labels(project=project, pool=pp))
    state = routing.RoutingState.of(len(pp.item_ids), pp.started, pp.human_labels)
    result = routing.relabel_ai_labels(pp.pool, state)
    if not result.fitted:
        return {}, weighed
    changed = np.flatnonzero(result.changed & ~pp.started)
    learned = keyed(
        {int(pp.item_ids[i]): (int(result.labels[i]), float(result.confidence[i])) for i in changed}
    )
    return learned, weighed


def _corrected_value(panel_value: dict, label: int, confidence: float) -> dict:
    """The corrected class as a pairwise verdict: the panel's strength where the side agrees,
    "slightly" where the correction picked the other side (it claims no "much")."""
    import routing

    if label == routing.TIE:
        return {"strength": 0}
    sign = 1 if label == routing.A_BETTER else -1
    strength = int(panel_value.get("strength", 0))
    return {"strength": strength if strength * sign > 0 else sign}


def final_labels_compute(*, project: Project, method: str = "majority") -> LabelsSummary:
    """Compute and upsert every final label of the project; labels of units with no judgment
    left are removed. Streams the judgments and writes in bulk, so it runs in bounded memory
    apart from Dawid–Skene's per-pair arrays."""
    _check_method(method)
    started = time.monotonic()
    summary = LabelsSummary(method=method)
    panel = set(project.judges.values_list("pk", flat=True))
    judge_names = dict(Judge.objects.values_list("pk", "name"))
    ds = _dawid_skene_project(project) if method == "dawid_skene" else None
    learned, weighed = routing_ai_labels(project=project)
    summary.learned = len(learned)
    now = timezone.now()
    fields = [
        "task_type",
        "value",
        "source",
        "method",
        "num_humans",
        "agreement",
        "ai_confidence",
        "computed_at",
    ]
    batch: list[FinalLabel] = []

    def flush() -> None:
        FinalLabel.objects.bulk_create(
            batch, update_conflicts=True, unique_fields=["item", "aspect"], update_fields=fields
        )
        batch.clear()

    with transaction.atomic():
        for unit in project_units(project):
            label = final_label_for(
                project,
                unit,
                method=method,
                panel=panel,
                judge_names=judge_names,
                ds=ds,
                now=now,
                learned=learned,
                weighed=weighed,
            )
            if label is None:
                continue
            batch.append(label)
            summary.total += 1
            if label.source == FinalLabel.Source.HUMAN:
                summary.human += 1
            else:
                summary.ai += 1
            if len(batch) >= WRITE_BATCH:
                flush()
        if batch:
            flush()
        # Everything written in this run carries `now`; older rows lost their judgments.
        summary.removed, _ = FinalLabel.objects.filter(
            item__project=project, computed_at__lt=now
        ).delete()
    summary.seconds = time.monotonic() - started
    return summary


# --- Computing on a worker ---------------------------------------------------------------------


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise LabelsError(f"method {method!r} is not one of {', '.join(METHODS)}")


def _busy_message(run: LabelRun) -> str:
    return (
        f"final labels are already being computed (run #{run.pk}, {run.status}); "
        "wait for it to finish"
    )


def label_run_start(
    *, project: Project, method: str = "majority", user: Any = None, enqueue: bool = True
) -> LabelRun:
    """Record a run of `final_labels_compute` and queue it on a worker once the row is committed.

    Refuses (LabelRunBusy) while another run of the project is queued or running: the unique
    constraint on the row settles two requests that check at the same moment.
    """
    _check_method(method)
    try:
        run = LabelRun.start_exclusive(scope={"project": project}, method=method, created_by=user)
    except JobBusy as busy:  # label_run_one_active_per_project
        raise LabelRunBusy(
            _busy_message(busy.active) if busy.active else "final labels are already being computed"
        ) from None
    if enqueue:
        transaction.on_commit(lambda: _enqueue(run.pk))
    return run


def _enqueue(run_id: int) -> None:
    from annotate.tasks import compute_final_labels

    compute_final_labels.delay(run_id)


def label_run_execute(*, run_id: int) -> LabelRun | None:
    """Compute the run's final labels and record the summary, or the error, on the row.

    None (nothing done) when the row is gone or already finished. A row still "running" is run
    again: that is a redelivery after its worker was lost, and the computation is one
    transaction that replaces every label, so repeating it is safe.
    """
    run = LabelRun.claim(run_id)
    if run is None:
        return None
    try:
        summary = final_labels_compute(project=run.project, method=run.method)
    except Exception as exc:
        log.exception("final labels run %s failed", run_id)
        LabelRun.mark_failed(run_id, exc)
    else:
        result = dataclasses.asdict(summary)
        result["seconds"] = round(summary.seconds, 3)
        LabelRun.objects.filter(pk=run_id).update(
            status=LabelRun.Status.SUCCEEDED,
            summary=result,
            error="",
            finished_at=timezone.now(),
        )
    run.refresh_from_db()
    return run


def label_run_latest(*, project: Project) -> LabelRun | None:
    """The project's most recent run, for the quality page."""
    return LabelRun.objects.filter(project=project).order_by("-created_at", "-pk").first()


# --- Agreement ----------------------------------------------------------------------------------


def _alpha_units(task_type: str, value: dict, k: int) -> list[tuple[int, int]]:
    """(sub-unit, ordinal value) pairs of one verdict for Krippendorff's alpha.

    Pairwise: one unit, the strength (-2..2). Ranking: one unit per response, its rank. K-wise:
    one unit per response, +1 best / 0 middle / -1 worst.
    """
    if task_type == TaskType.PAIRWISE:
        return [(0, value["strength"])]
    if task_type == TaskType.RANKING:
        return list(enumerate(value["ranks"]))
    return [(i, 1 if i == value["best"] else -1 if i == value["worst"] else 0) for i in range(k)]


def _alpha_domain(task_type: str, k: int) -> list[int]:
    if task_type == TaskType.PAIRWISE:
        return [-2, -1, 0, 1, 2]
    if task_type == TaskType.RANKING:
        return list(range(1, k + 1))
    return [-1, 0, 1]


def krippendorff_alpha(value_counts: np.ndarray, domain: Sequence[int]) -> float | None:
    """Ordinal alpha from a units × values count matrix; None where it is undefined."""
    import krippendorff

    pairable = value_counts[value_counts.sum(axis=1) >= 2]
    if len(pairable) == 0 or np.count_nonzero(pairable.sum(axis=0)) < 2:
        return None  # fewer than two coders on every unit, or one value only
    alpha = krippendorff.alpha(
        value_counts=pairable, value_domain=list(domain), level_of_measurement="ordinal"
    )
    return None if alpha is None or math.isnan(alpha) else round(float(alpha), 4)


def cohen_kappa(a: Sequence[int], b: Sequence[int]) -> float | None:
    """Cohen's kappa of two label sequences (plain numpy: scikit-learn takes seconds to import)."""
    if len(a) < 2:
        return None
    x, y = np.asarray(a), np.asarray(b)
    observed = float(np.mean(x == y))
    labels_seen = np.union1d(x, y)
    expected = float(sum(np.mean(x == c) * np.mean(y == c) for c in labels_seen))
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else None  # one label throughout: kappa is 0/0
    return round((observed - expected) / (1.0 - expected), 4)


def agreement_alpha(*, project: Project, every: int = 1) -> dict[str, float | None]:
    """Krippendorff's alpha (ordinal) per aspect over the human verdicts only (for cards).

    The database groups identical verdicts per unit first, so this reads one row per distinct
    verdict (usually fewer than one per judgment) and decodes each with orjson. `every` > 1
    estimates it on the items whose id is a multiple of `every` (a systematic sample).
    """
    import orjson

    k, task_type = project.num_responses, project.task_type
    domain = _alpha_domain(task_type, k)
    value_index = {v: n for n, v in enumerate(domain)}
    humans = Judgment.objects.filter(item__project=project, kind=Judgment.Kind.HUMAN)
    if every > 1:
        humans = humans.annotate(bucket=Mod("item_id", every)).filter(bucket=0)
    groups = (
        humans.annotate(verdict=Cast("value", TextField()))
        .values_list("item_id", "aspect", "verdict")
        .annotate(n=Count("pk"))
        .order_by("item_id", "aspect")
        .iterator(chunk_size=READ_CHUNK)
    )
    rows: dict[str, list[np.ndarray]] = defaultdict(list)
    for (_, aspect), unit in groupby(groups, key=lambda g: (g[0], g[1])):
        counts: dict[int, np.ndarray] = {}
        coders = 0
        for _, _, text, n in unit:
            coders += n
            for sub, v in _alpha_units(task_type, orjson.loads(text), k):
                counts.setdefault(sub, np.zeros(len(domain)))[value_index[v]] += n
        if coders >= 2:
            rows[aspect].extend(counts.values())
    return {
        aspect: krippendorff_alpha(np.vstack(rows[aspect]), domain) if rows.get(aspect) else None
        for aspect in project.aspects
    }


@dataclass
class AnnotatorStats:
    key: str
    name: str
    judgments: int = 0
    gold_seen: int = 0
    gold_correct: float = 0.0
    consensus_pairs: int = 0
    consensus_match: int = 0
    time_ms: list[int] = field(default_factory=list)

    @property
    def gold_accuracy(self) -> float | None:
        return round(self.gold_correct / self.gold_seen, 4) if self.gold_seen else None

    @property
    def consensus_agreement(self) -> float | None:
        return (
            round(self.consensus_match / self.consensus_pairs, 4) if self.consensus_pairs else None
        )

    @property
    def median_seconds(self) -> float | None:
        if not self.time_ms:
            return None
        return round(float(np.median(self.time_ms)) / 1000, 1)


@dataclass
class JudgeStats:
    judge: str
    judgments: int = 0
    compared: int = 0  # units that also have a human consensus
    matches: int = 0  # units whose every pair direction matches the humans'
    pair_match: int = 0
    pairs: int = 0
    human_dirs: list[int] = field(default_factory=list)
    judge_dirs: list[int] = field(default_factory=list)

    @property
    def agreement(self) -> float | None:
        return round(self.matches / self.compared, 4) if self.compared else None

    @property
    def pair_agreement(self) -> float | None:
        return round(self.pair_match / self.pairs, 4) if self.pairs else None

    @property
    def kappa(self) -> float | None:
        return cohen_kappa(self.human_dirs, self.judge_dirs)


@dataclass
class QualityReport:
    """Everything the quality page and the agreement API show."""

    project_id: int
    units: int = 0
    human_judgments: int = 0
    ai_judgments: int = 0
    alpha: dict[str, float | None] = field(default_factory=dict)  # per aspect, ordinal
    alpha_units: dict[str, int] = field(default_factory=dict)
    kappas: list[dict] = field(default_factory=list)  # annotator pairs
    annotators: list[AnnotatorStats] = field(default_factory=list)
    judges: list[JudgeStats] = field(default_factory=list)
    per_day: list[tuple[date, int]] = field(default_factory=list)  # human judgments per day
    per_week_agreement: list[tuple[date, float]] = field(default_factory=list)
    disputed: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "units": self.units,
            "human_judgments": self.human_judgments,
            "ai_judgments": self.ai_judgments,
            "alpha": self.alpha,
            "alpha_units": self.alpha_units,
            "kappas": self.kappas,
            "annotators": [
                {
                    "annotator": a.name,
                    "judgments": a.judgments,
                    "gold_seen": a.gold_seen,
                    "gold_accuracy": a.gold_accuracy,
                    "consensus_agreement": a.consensus_agreement,
                    "median_seconds": a.median_seconds,
                }
                for a in self.annotators
            ],
            "judges": [
                {
                    "judge": j.judge,
                    "judgments": j.judgments,
                    "compared": j.compared,
                    "agreement": j.agreement,
                    "pair_agreement": j.pair_agreement,
                    "kappa": j.kappa,
                }
                for j in self.judges
            ],
            "per_day": [{"day": d.isoformat(), "judgments": n} for d, n in self.per_day],
            "per_week_agreement": [
                {"week": d.isoformat(), "agreement": a} for d, a in self.per_week_agreement
            ],
            "disputed": self.disputed,
        }


def _annotator_names(keys: Iterable[str]) -> dict[str, str]:
    user_ids = [int(k.split(":", 1)[1]) for k in keys if k.startswith("user:")]
    users = dict(get_user_model().objects.filter(pk__in=user_ids).values_list("pk", "username"))
    return {k: (users.get(int(k[5:]), k) if k.startswith("user:") else k[4:]) for k in keys}


def quality_report(
    *,
    project: Project,
    min_shared: int = 5,
    max_kappa_pairs: int = 200,
    disputed: int = 20,
    progress: Callable[[int], None] | None = None,
) -> QualityReport:
    """Agreement over the whole project in one streaming pass over its judgments.

    - Krippendorff's alpha (ordinal) per aspect over human verdicts.
    - Cohen's kappa between annotator pairs on pair directions, for pairs sharing at least
      `min_shared` response pairs (the `max_kappa_pairs` best-covered pairs, so a crowd of
      annotators does not make the page quadratic).
    - Each judge against the human consensus (majority), on units with humans: exact agreement
      (every pair direction matches), pair agreement and kappa.
    - Each annotator: gold accuracy (pair directions against the gold label, first aspect),
      agreement with the consensus of the *other* humans (leave-one-out, so one's own vote does
      not inflate it) and median time.

    `progress`, when given, is called with the number of judgments read so far, every
    READ_CHUNK or so (a worker records it for the page).
    """
    k, task_type = project.num_responses, project.task_type
    report = QualityReport(project_id=project.pk)
    reported = 0
    judge_names = dict(Judge.objects.values_list("pk", "name"))
    domain = _alpha_domain(task_type, k)
    value_index = {v: n for n, v in enumerate(domain)}
    alpha_rows: dict[str, list[np.ndarray]] = defaultdict(list)
    annotators: dict[str, AnnotatorStats] = {}
    judges: dict[int, JudgeStats] = {}
    # For kappa: per annotator, {(item, aspect, i, j): direction}
    pair_dirs: dict[str, dict[tuple[int, str, int, int], int]] = defaultdict(dict)
    per_day: Counter[date] = Counter()
    week_match: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    gold_aspect = project.aspects[0] if project.aspects else "overall"

    for unit in project_units(project):
        report.units += 1
        report.human_judgments += len(unit.humans)
        report.ai_judgments += len(unit.ais)
        if progress is not None:
            read = report.human_judgments + report.ai_judgments
            if read - reported >= READ_CHUNK:
                progress(read)
                reported = read
        # Alpha: one row of value counts per sub-unit.
        if len(unit.humans) >= 2:
            counts: dict[int, np.ndarray] = {}
            for vote in unit.humans:
                for sub, v in _alpha_units(task_type, vote.value, k):
                    counts.setdefault(sub, np.zeros(len(domain)))[value_index[v]] += 1
            alpha_rows[unit.aspect].extend(counts.values())
        consensus = None
        if unit.humans:
            consensus = directions(
                task_type, consensus_value(task_type, [v.value for v in unit.humans], k=k), k
            )
        for n, vote in enumerate(unit.humans):
            stats = annotators.setdefault(vote.annotator, AnnotatorStats(vote.annotator, ""))
            stats.judgments += 1
            if vote.time_ms:
                stats.time_ms.append(vote.time_ms)
            if vote.created_at:
                per_day[timezone.localdate(vote.created_at)] += 1
            mine = directions(task_type, vote.value, k)
            for (i, j), d in mine.items():
                pair_dirs[vote.annotator][(unit.item_id, unit.aspect, i, j)] = d
            if unit.is_gold and unit.gold_label and unit.aspect == gold_aspect:
                try:
                    gold = directions(task_type, unit.gold_label, k)
                except (KeyError, TypeError, verdicts.VerdictError):
                    gold = {}
                m, total = direction_agreement(task_type, vote.value, gold, k)
                if total:
                    stats.gold_seen += 1
                    stats.gold_correct += m / total
            others = [v.value for o, v in enumerate(unit.humans) if o != n]
            if len(others) >= 2:
                loo = directions(task_type, consensus_value(task_type, others, k=k), k)
                m, total = direction_agreement(task_type, vote.value, loo, k)
                stats.consensus_match += m
                stats.consensus_pairs += total
                if vote.created_at and total:
                    day = timezone.localdate(vote.created_at)
                    week = day - timedelta(days=day.weekday())
                    week_match[week][0] += m
                    week_match[week][1] += total
        # Judges against the human consensus.
        latest: dict[int, AiVote] = {}
        for vote in unit.ais:
            if vote.judge_id not in latest or vote.pk > latest[vote.judge_id].pk:
                latest[vote.judge_id] = vote
        for judge_id, vote in latest.items():
            js = judges.setdefault(judge_id, JudgeStats(judge_names.get(judge_id, str(judge_id))))
            js.judgments += 1
            if consensus is None:
                continue
            mine = directions(task_type, vote.value, k)
            shared = [p for p in mine if p in consensus]
            if not shared:
                continue
            js.compared += 1
            matched = [mine[p] == consensus[p] for p in shared]
            js.matches += all(matched)
            js.pair_match += sum(matched)
            js.pairs += len(shared)
            js.human_dirs.extend(consensus[p] for p in shared)
            js.judge_dirs.extend(mine[p] for p in shared)

    for aspect in project.aspects:
        rows = alpha_rows.get(aspect)
        report.alpha_units[aspect] = len(rows) if rows else 0
        report.alpha[aspect] = krippendorff_alpha(np.vstack(rows), domain) if rows else None

    names = _annotator_names(annotators)
    for stats in annotators.values():
        stats.name = names[stats.key]
    report.annotators = sorted(annotators.values(), key=lambda a: (-a.judgments, a.name))
    report.judges = sorted(judges.values(), key=lambda j: j.judge)
    report.kappas = _kappas(pair_dirs, names, min_shared=min_shared, limit=max_kappa_pairs)
    report.per_day = sorted(per_day.items())
    report.per_week_agreement = [
        (week, round(m / n, 4)) for week, (m, n) in sorted(week_match.items()) if n
    ]
    report.disputed = disputed_items(project=project, limit=disputed)
    return report


def _kappas(
    pair_dirs: dict[str, dict[tuple, int]], names: dict[str, str], *, min_shared: int, limit: int
) -> list[dict]:
    candidates = []
    for a, b in combinations(sorted(pair_dirs), 2):
        da, db = pair_dirs[a], pair_dirs[b]
        small, large = (da, db) if len(da) <= len(db) else (db, da)
        shared = [u for u in small if u in large]
        if len(shared) >= min_shared:
            candidates.append((len(shared), a, b, shared))
    candidates.sort(key=lambda c: -c[0])
    out = []
    for n, a, b, shared in candidates[:limit]:
        out.append(
            {
                "a": names[a],
                "b": names[b],
                "shared": n,
                "kappa": cohen_kappa(
                    [pair_dirs[a][u] for u in shared], [pair_dirs[b][u] for u in shared]
                ),
            }
        )
    return out


def disputed_items(*, project: Project, limit: int = 20) -> list[dict]:
    """The human-labelled items whose annotators agreed least, with how each of them voted."""
    labels = list(
        # Only real disputes: an item whose annotators all agreed is not "disputed", however
        # few disputes the project has.
        FinalLabel.objects.filter(
            item__project=project, source=FinalLabel.Source.HUMAN, agreement__lt=1.0
        )
        .order_by("agreement", "-num_humans", "item_id")
        .values(
            "item_id",
            "item__external_id",
            "item__prompt",
            "aspect",
            "value",
            "agreement",
            "num_humans",
        )[:limit]
    )
    votes: dict[tuple[int, str], list[dict]] = defaultdict(list)
    for item_id, aspect, value in Judgment.objects.filter(
        item_id__in=[lbl["item_id"] for lbl in labels], kind=Judgment.Kind.HUMAN
    ).values_list("item_id", "aspect", "value"):
        votes[(item_id, aspect)].append(value)
    out = []
    for lbl in labels:
        prompt = lbl["item__prompt"]
        text = (
            prompt if isinstance(prompt, str) else " / ".join(t.get("content", "") for t in prompt)
        )
        out.append(
            {
                "item_id": lbl["item_id"],
                "external_id": lbl["item__external_id"],
                "prompt": text[:160],
                "aspect": lbl["aspect"],
                "final": lbl["value"],
                "agreement": lbl["agreement"],
                "num_humans": lbl["num_humans"],
                "votes": votes[(lbl["item_id"], lbl["aspect"])],
            }
        )
    return out


def labels_summary(*, project: Project) -> dict[str, Any]:
    """Counts of the project's final labels by source, for pages and the dataset card."""
    labels = FinalLabel.objects.filter(item__project=project)
    by_source = dict(labels.values("source").annotate(n=Count("pk")).values_list("source", "n"))
    last = labels.order_by("-computed_at").values_list("computed_at", "method").first()
    return {
        "total": sum(by_source.values()),
        "human": by_source.get(FinalLabel.Source.HUMAN, 0),
        "ai": by_source.get(FinalLabel.Source.AI, 0),
        "items": Item.objects.filter(project=project).count(),
        "computed_at": last[0] if last else None,
        "method": last[1] if last else None,
    }
