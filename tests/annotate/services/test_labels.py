from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from django.utils import timezone

from annotate.models import FinalLabel, Item, Judge, Judgment, LabelRun
from annotate.services import labels
from annotate.services.labels import consensus_value, final_labels_compute, quality_report
from tests.annotate.pandalm import HUMANS, pandalm_project
from tests.factories import add_imported_judges

pytestmark = pytest.mark.django_db


def human(item: Item, who: str, value: dict, aspect: str = "overall") -> Judgment:
    return Judgment.objects.create(
        item=item,
        aspect=aspect,
        kind="human",
        source="imported",
        external_annotator=who,
        task_type=item.project.task_type,
        value=value,
    )


def annotated_in_app(item: Item, annotator: Any, *, strength: int) -> Judgment:
    """A pairwise judgment `annotator` submitted in the app (with its assignment): what the
    label model learns from."""
    from annotate.models import Assignment

    assignment = Assignment.objects.create(
        project=item.project,
        item=item,
        annotator=annotator,
        status="submitted",
        presentation_order=[0, 1],
        expires_at=Assignment.expiry_from_now(item.project),
    )
    return Judgment.objects.create(
        item=item,
        kind="human",
        source="annotate",
        task_type="pairwise",
        annotator=annotator,
        assignment=assignment,
        value={"strength": strength},
    )


def ai(
    item: Item, judge: Judge, value: dict, confidence: float | None, aspect: str = "overall"
) -> Judgment:
    return Judgment.objects.create(
        item=item,
        aspect=aspect,
        kind="ai",
        source=judge.name,
        judge=judge,
        prompt_version="v1",
        task_type=item.project.task_type,
        value=value,
        confidence=confidence,
    )


# --- Consensus rules ---------------------------------------------------------------------------


def test_pairwise_consensus_is_the_median_strength() -> None:
    assert consensus_value(
        "pairwise", [{"strength": 2}, {"strength": 1}, {"strength": 2}], k=2
    ) == {"strength": 2}
    assert consensus_value(
        "pairwise", [{"strength": -1}, {"strength": -2}, {"strength": 1}], k=2
    ) == {"strength": -1}


def test_pairwise_consensus_between_two_grades_rounds_towards_a_tie() -> None:
    assert consensus_value("pairwise", [{"strength": 2}, {"strength": 1}], k=2) == {"strength": 1}
    assert consensus_value("pairwise", [{"strength": 1}, {"strength": -1}], k=2) == {"strength": 0}


def test_ranking_consensus_is_the_mean_rank_with_borda_points() -> None:
    value = consensus_value(
        "ranking", [{"ranks": [1, 2, 3]}, {"ranks": [2, 1, 3]}, {"ranks": [1, 3, 2]}], k=3
    )
    assert value["ranks"] == [1, 2, 3]
    assert value["scores"][0] > value["scores"][1] > value["scores"][2]


def test_ranking_consensus_keeps_ties_between_equal_mean_ranks() -> None:
    value = consensus_value("ranking", [{"ranks": [1, 2, 3]}, {"ranks": [2, 1, 3]}], k=3)
    assert value["ranks"] == [1, 1, 3]


def test_kwise_consensus_counts_best_minus_worst() -> None:
    value = consensus_value(
        "kwise", [{"best": 2, "worst": 0}, {"best": 2, "worst": 1}, {"best": 1, "worst": 0}], k=4
    )
    assert value["best"] == 2
    assert value["worst"] == 0
    assert value["scores"] == [-2.0, 0.0, 2.0, 0.0]


def test_weights_let_a_reliable_annotator_outvote_two_others() -> None:
    values = [{"strength": -2}, {"strength": 1}, {"strength": 1}]
    assert consensus_value("pairwise", values, k=2, weights=[5.0, 1.0, 1.0]) == {"strength": -2}


# --- Final labels ------------------------------------------------------------------------------


def test_items_with_humans_get_the_human_consensus_with_agreement(project: Any) -> None:
    item = project.items.get(external_id="0")
    for who, s in (("x", 2), ("y", 1), ("z", -1)):
        human(item, who, {"strength": s})
    summary = final_labels_compute(project=project)
    label = FinalLabel.objects.get(item=item)
    assert (summary.total, summary.human) == (1, 1)
    assert label.source == "human"
    assert label.method == "majority"
    assert label.value == {"strength": 1}
    assert label.num_humans == 3
    assert label.agreement == pytest.approx(2 / 3, abs=1e-3)


def test_one_human_has_no_agreement_measure(project: Any) -> None:
    item = project.items.get(external_id="0")
    human(item, "x", {"strength": 2})
    final_labels_compute(project=project)
    assert FinalLabel.objects.get(item=item).agreement is None


def test_items_routed_to_the_ai_take_the_most_confident_panel_verdict(project: Any) -> None:
    sure, unsure, off_panel = (
        Judge.objects.create(name=n, backend="imported") for n in ("sure", "unsure", "off")
    )
    project.judges.add(sure, unsure)
    item = project.items.get(external_id="1")
    Item.objects.filter(pk=item.pk).update(route="ai")
    ai(item, unsure, {"strength": 1}, 0.6)
    ai(item, sure, {"strength": -2}, 0.9)
    ai(item, off_panel, {"strength": 2}, 0.99)
    human(item, "x", {"strength": 2})  # e.g. a gold check: the route decides, not the presence
    final_labels_compute(project=project)
    label = FinalLabel.objects.get(item=item)
    assert (label.source, label.method, label.value) == ("ai", "judge:sure", {"strength": -2})
    assert label.ai_confidence == pytest.approx(0.9)
    assert label.num_humans == 1


def test_a_panel_of_three_judges_labels_by_its_weighed_votes_not_by_the_most_confident(
    make_project: Any,
) -> None:
    """A weak judge that reports a confidence would win "most confident" on every item over
    imported labels that report none; weighed by agreement, the panel follows the strong two."""
    project = add_imported_judges(
        make_project("weighed", items=60), {"gpt": 0.9, "sharp": 0.9, "dull": 0.55}
    )
    Judgment.objects.filter(item__project=project, judge__name="dull").update(confidence=0.99)
    final_labels_compute(project=project)
    finals = {
        f.item.external_id: f
        for f in FinalLabel.objects.filter(item__project=project).select_related("item")
    }
    assert {f.method for f in finals.values()} == {"panel"}
    truth = {
        item.external_id: (1 if i % 2 else -1)
        for i, item in enumerate(project.items.order_by("pk"))
    }
    dull = {
        j.item.external_id: j.value["strength"]
        for j in Judgment.objects.filter(judge__name="dull").select_related("item")
    }

    def right(labels: dict[str, int]) -> float:
        return sum(np.sign(labels[x]) == truth[x] for x in truth) / len(truth)

    assert right({x: f.value["strength"] for x, f in finals.items()}) > right(dull) + 0.2
    assert all(0.0 < f.ai_confidence <= 1.0 for f in finals.values())


def test_with_enough_human_labels_the_weighed_panel_still_labels_what_nothing_learned(
    make_project: Any, owner: Any
) -> None:
    """Once a label model can learn, routing's pool is built once for both maps: items the
    model leaves alone keep the weighed panel's label, not the most confident verdict."""
    from annotate.services.routing import weighed_panel_labels

    project = add_imported_judges(
        make_project("weighed-learning", items=80), {"gpt": 0.9, "sharp": 0.9, "dull": 0.55}
    )
    Judgment.objects.filter(item__project=project, judge__name="dull").update(confidence=0.99)
    items = list(project.items.order_by("pk"))
    for i, item in enumerate(items[:40]):
        item.route, item.human_assigned, item.human_done = "human", 1, 1
        item.save(update_fields=["route", "human_assigned", "human_done"])
        annotated_in_app(item, owner, strength=1 if i % 2 else -1)
    Item.objects.filter(pk__in=[item.pk for item in items[40:]]).update(route="ai")
    final_labels_compute(project=project)
    unrouted = FinalLabel.objects.filter(item__project=project, item__route="ai")
    weighed = weighed_panel_labels(project=project)
    panel = unrouted.filter(method="panel")
    assert panel.exists() and set(unrouted.values_list("method", flat=True)) <= {"panel", "learned"}
    assert all(
        np.sign(f.value["strength"]) == (1 if weighed[f.item_id][0] == 1 else -1) for f in panel
    )


def test_two_judges_keep_the_most_confident_verdict(make_project: Any) -> None:
    project = add_imported_judges(make_project("two", items=40), {"gpt": 0.9, "pl": 0.6})
    Judgment.objects.filter(item__project=project, judge__name="pl").update(confidence=0.99)
    final_labels_compute(project=project)
    methods = set(FinalLabel.objects.filter(item__project=project).values_list("method", flat=True))
    assert methods == {"judge:pl"}


def test_an_item_without_humans_falls_back_to_the_ai_label(project: Any) -> None:
    judge = Judge.objects.create(name="j", backend="imported")
    project.judges.add(judge)
    item = project.items.get(external_id="2")
    Item.objects.filter(pk=item.pk).update(route="human")
    ai(item, judge, {"strength": 1}, None)
    final_labels_compute(project=project)
    label = FinalLabel.objects.get(item=item)
    assert (label.source, label.ai_confidence) == ("ai", None)


def test_human_labels_record_the_ai_confidence_beside_them(project: Any) -> None:
    judge = Judge.objects.create(name="j", backend="imported")
    project.judges.add(judge)
    item = project.items.get(external_id="0")
    human(item, "x", {"strength": 2})
    ai(item, judge, {"strength": -1}, 0.7)
    final_labels_compute(project=project)
    label = FinalLabel.objects.get(item=item)
    assert (label.source, label.ai_confidence) == ("human", pytest.approx(0.7))


def test_recomputing_updates_in_place_and_drops_labels_whose_judgments_are_gone(
    project: Any,
) -> None:
    a, b = project.items.get(external_id="0"), project.items.get(external_id="1")
    human(a, "x", {"strength": 2})
    gone = human(b, "x", {"strength": -2})
    final_labels_compute(project=project)
    first = FinalLabel.objects.get(item=a).pk
    gone.delete()
    human(a, "y", {"strength": -2})
    summary = final_labels_compute(project=project)
    assert summary.removed == 1
    assert list(FinalLabel.objects.values_list("pk", "item_id")) == [(first, a.pk)]
    assert FinalLabel.objects.get(item=a).value == {"strength": 0}


def test_each_aspect_gets_its_own_label(project: Any) -> None:
    item = project.items.get(external_id="0")
    human(item, "x", {"strength": 2}, aspect="overall")
    human(item, "x", {"strength": -1}, aspect="harmlessness")
    final_labels_compute(project=project)
    assert dict(FinalLabel.objects.values_list("aspect", "value")) == {
        "overall": {"strength": 2},
        "harmlessness": {"strength": -1},
    }


def test_rankings_and_kwise_get_their_own_consensus(make_project: Any) -> None:
    ranking = make_project("rank", items=1, task_type="ranking", k=3)
    item = ranking.items.get()
    human(item, "x", {"ranks": [1, 2, 3]})
    human(item, "y", {"ranks": [1, 3, 2]})
    final_labels_compute(project=ranking)
    label = FinalLabel.objects.get(item=item)
    assert label.value["ranks"] == [1, 2, 2]
    # pairs: (0,1) both agree, (0,2) both agree, (1,2) split against the tie → 4 of 6 match
    assert label.agreement == pytest.approx(4 / 6, abs=1e-3)

    kwise = make_project("bw", items=1, task_type="kwise", k=4)
    item = kwise.items.get()
    human(item, "x", {"best": 3, "worst": 0})
    human(item, "y", {"best": 3, "worst": 1})
    final_labels_compute(project=kwise)
    value = FinalLabel.objects.get(item=item).value
    assert (value["best"], value["worst"]) == (3, 0)


def test_an_unknown_method_is_refused(project: Any) -> None:
    with pytest.raises(labels.LabelsError):
        final_labels_compute(project=project, method="vibes")


def test_dawid_skene_outvotes_noisy_annotators_that_fool_the_majority(make_project: Any) -> None:
    project = make_project("ds", items=120)
    rng = random.Random(7)
    truth = {}
    for item in project.items.all():
        truth[item.pk] = rng.choice([2, -2])
        for good in ("good1", "good2"):
            human(item, good, {"strength": truth[item.pk]})
        for noisy in ("noisy1", "noisy2", "noisy3"):
            human(item, noisy, {"strength": rng.choice([2, -2])})

    def accuracy() -> float:
        return np.mean(
            [
                np.sign(v["strength"]) == np.sign(truth[i])
                for i, v in FinalLabel.objects.values_list("item_id", "value")
            ]
        )

    final_labels_compute(project=project, method="majority")
    majority = accuracy()
    final_labels_compute(project=project, method="dawid_skene")
    assert set(FinalLabel.objects.values_list("method", flat=True)) == {"dawid_skene"}
    assert majority < 0.95
    assert accuracy() == 1.0


def test_dawid_skene_rates_the_reliable_annotators_highest() -> None:
    rng = random.Random(3)
    obs = []
    for u in range(200):
        t = rng.choice([0, 2])

        def noisy(flip: float, t: int = t) -> int:
            return 2 - t if rng.random() < flip else t

        obs += [(u, "good", noisy(0.02)), (u, "fair", noisy(0.05)), (u, "flipper", noisy(0.3))]
        obs.append((u, "coin", rng.choice([0, 2])))
    _, confusion, prior, _ = labels.dawid_skene_fit(obs)
    acc = {a: float(np.dot(prior, np.diag(m))) for a, m in confusion.items()}
    assert acc["good"] > acc["flipper"] > acc["coin"]
    assert acc["coin"] == pytest.approx(0.5, abs=0.1)


# --- Agreement ---------------------------------------------------------------------------------


def test_alpha_is_one_when_every_annotator_agrees(project: Any) -> None:
    for item in project.items.all():
        s = 2 if int(item.external_id) % 2 else -1
        human(item, "x", {"strength": s})
        human(item, "y", {"strength": s})
    report = quality_report(project=project)
    assert report.alpha["overall"] == pytest.approx(1.0)
    assert report.kappas == [{"a": "x", "b": "y", "shared": 5, "kappa": 1.0}]


def test_gold_accuracy_counts_each_annotator_against_the_gold_label(project: Any) -> None:
    item = project.items.get(external_id="0")
    Item.objects.filter(pk=item.pk).update(is_gold=True, gold_label={"strength": 2})
    human(item, "right", {"strength": 1})
    human(item, "wrong", {"strength": -1})
    report = quality_report(project=project)
    acc = {a.name: a.gold_accuracy for a in report.annotators}
    assert acc == {"right": 1.0, "wrong": 0.0}


def test_annotators_are_named_by_username_or_imported_name(project: Any, member: Any) -> None:
    item = project.items.get(external_id="0")
    Judgment.objects.create(
        item=item,
        kind="human",
        source="annotate",
        annotator=member,
        task_type="pairwise",
        value={"strength": 1},
    )
    human(item, "ext-person", {"strength": 1})
    assert {a.name for a in quality_report(project=project).annotators} == {"member", "ext-person"}


def test_disputed_items_list_only_real_disputes_least_agreed_first_with_the_votes(
    project: Any,
) -> None:
    split, agreed = project.items.get(external_id="0"), project.items.get(external_id="1")
    mostly = project.items.get(external_id="2")
    for who, s in (("x", 2), ("y", -2), ("z", 1)):
        human(split, who, {"strength": s})
    for who, s in (("w", 1), ("x", 1), ("y", 1), ("z", -1)):
        human(mostly, who, {"strength": s})
    for who in ("x", "y"):
        human(agreed, who, {"strength": 1})
    final_labels_compute(project=project)
    disputed = labels.disputed_items(project=project)
    assert [d["external_id"] for d in disputed] == ["0", "2"]  # "1" is agreed, not disputed
    assert sorted(v["strength"] for v in disputed[0]["votes"]) == [-2, 1, 2]


def test_pandalm_agreement_matches_the_published_facts(shared_data: Any) -> None:
    """Real data: 999 items, 3 annotators, GPT-3.5 and PandaLM-7B (facts in shared/data/README)."""
    import krippendorff

    project = pandalm_project(shared_data)
    summary = final_labels_compute(project=project)
    assert (summary.total, summary.human, summary.ai) == (999, 999, 0)
    assert FinalLabel.objects.filter(num_humans=3).count() == 999

    report = quality_report(project=project)
    judges = {j.judge: j for j in report.judges}
    # "GPT-3.5 agrees with the majority on 69.8 %, PandaLM-7B on 66.8 %" (of all 999 items;
    # GPT-3.5's unparseable verdicts were skipped at import, so they count as disagreements).
    assert judges["gpt-35-turbo"].matches / 999 == pytest.approx(0.698, abs=0.0015)
    assert judges["pandalm-7b"].matches / 999 == pytest.approx(0.668, abs=0.0015)
    assert {a.name for a in report.annotators} == set(HUMANS)

    # Our alpha from value counts equals the library's on the plain reliability matrix.
    rows = {name: {} for name in HUMANS}
    for who, item_id, s in Judgment.objects.filter(kind="human").values_list(
        "external_annotator", "item_id", "value__strength"
    ):
        rows[who][item_id] = s
    ids = sorted(rows["annotator1"])
    matrix = np.array([[rows[w].get(i, np.nan) for i in ids] for w in HUMANS], dtype=float)
    expected = krippendorff.alpha(
        reliability_data=matrix, level_of_measurement="ordinal", value_domain=[-2, -1, 0, 1, 2]
    )
    assert report.alpha["overall"] == pytest.approx(expected, abs=1e-3)
    assert 0.5 < report.alpha["overall"] < 1.0
    assert len(report.kappas) == 3


def test_ai_labels_of_unrouted_items_are_corrected_from_the_human_labels_collected(
    make_project: Any, owner: Any
) -> None:
    """The panel calls every pair "A"; humans say identical responses tie. Items humans never
    saw get the learned label (a tie where the responses are identical), and say so."""
    from annotate.models import FinalLabel, Item, Judge, Judgment
    from annotate.records import hash_content
    from annotate.services.labels import final_labels_compute

    project = make_project("learned")
    judge = Judge.objects.create(name="panel", backend=Judge.Backend.IMPORTED)
    project.judges.add(judge)
    for i in range(120):
        same = i % 2 == 0
        text_b = f"Answer {i} is forty-two." if same else f"I refuse to answer question {i} at all."
        responses = [
            {"model": "m1", "text": f"Answer {i} is forty-two."},
            {"model": "m2", "text": text_b},
        ]
        routed = i < 60
        item = Item.objects.create(
            project=project,
            external_id=str(i),
            content_hash=hash_content("q", responses),
            prompt=f"Question {i}?",
            responses=responses,
            route="human" if routed else "ai",
            human_assigned=int(routed),
            human_done=int(routed),
        )
        Judgment.objects.create(
            item=item,
            kind="ai",
            source="panel",
            task_type="pairwise",
            value={"strength": 1},
            judge=judge,
            prompt_version="imported",
            confidence=0.9,
        )
        if routed:
            annotated_in_app(item, owner, strength=0 if same else 1)
    summary = final_labels_compute(project=project)
    aspect = project.aspects[0]
    unrouted = FinalLabel.objects.filter(item__project=project, item__route="ai", aspect=aspect)
    identical = unrouted.filter(item__external_id__in=[str(i) for i in range(60, 120, 2)])
    distinct = unrouted.exclude(pk__in=identical)
    assert summary.learned == identical.count() == 30
    assert all(f.value == {"strength": 0} and f.method == "learned" for f in identical)
    assert all(f.value == {"strength": 1} and f.method == "judge:panel" for f in distinct)


# --- Computing on a worker (LabelRun) -----------------------------------------------------------


def test_starting_a_run_records_it_and_queues_it_after_commit(
    project: Any, owner: Any, monkeypatch: Any, django_capture_on_commit_callbacks: Any
) -> None:
    queued: list[int] = []
    monkeypatch.setattr(labels, "_enqueue", queued.append)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run = labels.label_run_start(project=project, method="dawid_skene", user=owner)
        assert queued == []  # nothing is sent before the row is committed
    assert len(callbacks) == 1 and queued == [run.pk]
    assert (run.status, run.method, run.created_by) == ("queued", "dawid_skene", owner)


def test_the_run_goes_to_the_default_queue(project: Any, monkeypatch: Any) -> None:
    from annotate.tasks import compute_final_labels
    from config.celery import app as celery_app

    sent: list[tuple[Any, ...]] = []
    monkeypatch.setattr(compute_final_labels, "delay", lambda *a: sent.append(a))
    labels._enqueue(7)
    assert sent == [(7,)]
    route = celery_app.amqp.router.route({}, compute_final_labels.name)
    assert route["queue"].name == "default"


def test_starting_a_run_refuses_an_unknown_method_up_front(project: Any) -> None:
    with pytest.raises(labels.LabelsError, match="not one of"):
        labels.label_run_start(project=project, method="vibes", enqueue=False)
    assert not LabelRun.objects.exists()


def test_a_second_run_is_refused_while_one_is_queued_or_running(
    project: Any, make_project: Any
) -> None:
    first = labels.label_run_start(project=project, enqueue=False)
    with pytest.raises(labels.LabelRunBusy, match=f"already being computed \\(run #{first.pk}"):
        labels.label_run_start(project=project, enqueue=False)
    LabelRun.objects.filter(pk=first.pk).update(status="running", started_at=timezone.now())
    with pytest.raises(labels.LabelRunBusy):
        labels.label_run_start(project=project, enqueue=False)
    # Another project is not blocked, and a finished run does not block.
    labels.label_run_start(project=make_project("other"), enqueue=False)
    LabelRun.objects.filter(pk=first.pk).update(status="succeeded")
    assert labels.label_run_start(project=project, enqueue=False).pk != first.pk


def test_the_database_refuses_two_active_runs_of_one_project(project: Any) -> None:
    from django.db import IntegrityError, transaction

    LabelRun.objects.create(project=project, method="majority")
    with pytest.raises(IntegrityError), transaction.atomic():
        LabelRun.objects.create(project=project, method="majority", status="running")


def test_a_run_lost_past_the_time_limit_no_longer_blocks(project: Any, settings: Any) -> None:
    lost = labels.label_run_start(project=project, enqueue=False)
    long_ago = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 120)
    LabelRun.objects.filter(pk=lost.pk).update(status="running", started_at=long_ago)
    labels.label_run_start(project=project, enqueue=False)
    lost.refresh_from_db()
    assert lost.status == "failed" and "time limit" in lost.error


def test_running_a_run_computes_the_labels_and_records_the_summary(project: Any) -> None:
    for item in project.items.all():
        human(item, "a", {"strength": 2})
        human(item, "b", {"strength": 1})
    run = labels.label_run_start(project=project, method="dawid_skene", enqueue=False)
    done = labels.label_run_execute(run_id=run.pk)
    assert done is not None and done.status == "succeeded"
    assert done.summary["total"] == 5 and done.summary["human"] == 5
    assert done.summary["method"] == "dawid_skene" and done.error == ""
    assert done.started_at and done.finished_at and done.finished_at >= done.started_at
    assert set(FinalLabel.objects.values_list("method", flat=True)) == {"dawid_skene"}


def test_a_failing_run_records_the_error(project: Any, monkeypatch: Any) -> None:
    def boom(**kwargs: Any) -> Any:
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(labels, "final_labels_compute", boom)
    run = labels.label_run_start(project=project, enqueue=False)
    done = labels.label_run_execute(run_id=run.pk)
    assert done is not None and done.status == "failed"
    assert done.error == "RuntimeError: the disk is full" and done.finished_at
    assert done.summary == {}


def test_a_gone_or_finished_run_is_left_alone(project: Any, monkeypatch: Any) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(labels, "final_labels_compute", lambda **kw: calls.append(kw))
    assert labels.label_run_execute(run_id=123456) is None
    run = labels.label_run_start(project=project, enqueue=False)
    LabelRun.objects.filter(pk=run.pk).update(status="succeeded", summary={"total": 9})
    assert labels.label_run_execute(run_id=run.pk) is None
    assert calls == [] and LabelRun.objects.get(pk=run.pk).summary == {"total": 9}


def test_the_task_runs_the_run_after_commit(
    project: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from config.celery import app as celery_app

    human(project.items.first(), "a", {"strength": 1})
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            run = labels.label_run_start(project=project)
    finally:
        celery_app.conf.task_always_eager = eager
    run.refresh_from_db()
    assert run.status == "succeeded" and run.summary["total"] == 1
    assert FinalLabel.objects.count() == 1


def test_the_task_exits_quietly_when_the_row_is_gone(project: Any) -> None:
    from annotate.tasks import compute_final_labels

    compute_final_labels(123456)
    run = labels.label_run_start(project=project, enqueue=False)
    compute_final_labels(run.pk)
    assert LabelRun.objects.get(pk=run.pk).status == "succeeded"
    compute_final_labels(run.pk)  # a second delivery: finished, nothing to do
    assert LabelRun.objects.get(pk=run.pk).status == "succeeded"
