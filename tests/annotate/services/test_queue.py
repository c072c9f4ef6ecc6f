"""The human queue: serving, expiry, gold, submitting, skipping, progress, order mapping."""

from __future__ import annotations

import random
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from annotate.models import Assignment, Item, Judgment
from annotate.services.queue import (
    STARTED_BAND,
    AssignmentClosed,
    InvalidVerdict,
    NotYourAssignment,
    assignment_next,
    assignment_renew,
    assignment_skip,
    assignments_expire,
    judgment_submit,
    queue_progress,
    verdict_to_canonical,
    verdict_to_presented,
)
from tests.conftest import REQUIRE_SERVICES, need_service

pytestmark = pytest.mark.django_db

ALL_OVERALL = {"aspects": ["overall"]}


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    # Autouse runs before the user fixtures; PBKDF2 would spend most of this file hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def pairwise(strength: int = 1) -> dict[str, dict]:
    return {"overall": {"strength": strength}}


@pytest.fixture
def simple(make_project: Any, member: Any, set_role: Any) -> Any:
    """A pairwise project with one aspect, no gold draws, three items; member annotates."""
    project = make_project("simple", items=3, gold_rate=0.0, **ALL_OVERALL)
    set_role(project, member, "annotator")
    return project


def fresh(item: Item) -> Item:
    item.refresh_from_db()
    return item


# --- Serving ------------------------------------------------------------------------------------


def test_it_serves_an_item_and_counts_the_hold(simple: Any, member: Any) -> None:
    a = assignment_next(project=simple, annotator=member)
    assert a is not None and a.status == Assignment.Status.ACTIVE
    assert fresh(a.item).human_assigned == 1
    assert sorted(a.presentation_order) == [0, 1]
    assert a.expires_at > timezone.now() + timedelta(minutes=simple.assignment_minutes - 1)


def test_it_resumes_the_open_assignment_instead_of_serving_a_new_one(
    simple: Any, member: Any
) -> None:
    first = assignment_next(project=simple, annotator=member)
    again = assignment_next(project=simple, annotator=member)
    assert again.pk == first.pk
    assert Assignment.objects.count() == 1
    assert fresh(first.item).human_assigned == 1


def test_it_never_serves_the_same_item_twice_to_one_annotator(simple: Any, member: Any) -> None:
    seen = []
    while (a := assignment_next(project=simple, annotator=member)) is not None:
        seen.append(a.item_id)
        judgment_submit(assignment=a, annotator=member, verdicts=pairwise())
    assert len(seen) == 3 == len(set(seen))


def test_it_stops_at_overlap_distinct_annotators(
    make_project: Any, make_user: Any, set_role: Any
) -> None:
    project = make_project("ov", items=1, overlap=2, gold_rate=0.0, **ALL_OVERALL)
    people = [make_user(f"u{i}") for i in range(3)]
    for person in people:
        set_role(project, person, "annotator")
    got = [assignment_next(project=project, annotator=p) for p in people]
    assert got[0] and got[1] and got[2] is None
    assert got[0].item_id == got[1].item_id
    assert Item.objects.get().human_assigned == 2


def test_it_serves_an_item_someone_started_before_fresh_ones(
    make_project: Any, make_user: Any, set_role: Any
) -> None:
    project = make_project("started", items=6, overlap=2, gold_rate=0.0, **ALL_OVERALL)
    bob, alice = make_user("bob"), make_user("alice")
    for person in (bob, alice):
        set_role(project, person, "annotator")
    held = assignment_next(project=project, annotator=bob)
    assert assignment_next(project=project, annotator=alice).item_id == held.item_id


def test_an_annotator_ahead_of_the_others_still_gets_every_open_item(
    make_project: Any, member: Any, set_role: Any
) -> None:
    # Alone on an overlap-2 project, every item they judge stays open (started) for someone
    # else; they must still reach every item, past all of those.
    items = STARTED_BAND + 5  # past the band of started items the queue looks at first
    project = make_project("ahead", items=items, overlap=2, gold_rate=0.0, **ALL_OVERALL)
    set_role(project, member, "annotator")
    seen = []
    while (a := assignment_next(project=project, annotator=member)) is not None:
        seen.append(a.item_id)
        judgment_submit(assignment=a, annotator=member, verdicts=pairwise())
    assert sorted(seen) == sorted(project.items.values_list("pk", flat=True))


def test_it_does_not_serve_items_routed_to_ai(simple: Any, member: Any) -> None:
    simple.items.update(route=Item.Route.AI)
    assert assignment_next(project=simple, annotator=member) is None


def test_it_serves_items_routed_to_humans_and_pending_ones(simple: Any, member: Any) -> None:
    items = list(simple.items.order_by("pk"))
    Item.objects.filter(pk=items[0].pk).update(route=Item.Route.HUMAN)
    Item.objects.filter(pk=items[1].pk).update(route=Item.Route.AI)
    served = set()
    while (a := assignment_next(project=simple, annotator=member)) is not None:
        served.add(a.item_id)
        judgment_submit(assignment=a, annotator=member, verdicts=pairwise())
    assert served == {items[0].pk, items[2].pk}


def test_it_returns_an_abandoned_item_to_the_pool_when_its_hold_expires(
    make_project: Any, make_user: Any, set_role: Any
) -> None:
    project = make_project("exp", items=1, gold_rate=0.0, **ALL_OVERALL)
    alice, bob = make_user("alice"), make_user("bob")
    set_role(project, alice, "annotator")
    set_role(project, bob, "annotator")
    held = assignment_next(project=project, annotator=alice)
    assert assignment_next(project=project, annotator=bob) is None
    Assignment.objects.filter(pk=held.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    got = assignment_next(project=project, annotator=bob)
    assert got is not None and got.item_id == held.item_id
    held.refresh_from_db()
    assert held.status == Assignment.Status.EXPIRED
    assert fresh(got.item).human_assigned == 1  # one expired (-1), one new (+1)


def test_expiring_twice_decrements_the_counter_once(simple: Any, member: Any) -> None:
    held = assignment_next(project=simple, annotator=member)
    Assignment.objects.filter(pk=held.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert assignments_expire(project=simple) == 1
    assert assignments_expire(project=simple) == 0
    assert fresh(held.item).human_assigned == 0


def test_an_expired_hold_can_come_back_to_the_same_annotator(simple: Any, member: Any) -> None:
    simple.items.exclude(pk=simple.items.order_by("pk").first().pk).delete()
    held = assignment_next(project=simple, annotator=member)
    Assignment.objects.filter(pk=held.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    again = assignment_next(project=simple, annotator=member)
    assert again is not None and again.pk != held.pk and again.item_id == held.item_id


def test_it_mixes_in_gold_at_the_gold_rate(make_project: Any, member: Any, set_role: Any) -> None:
    project = make_project("gold", items=4, gold_rate=1.0, **ALL_OVERALL)
    set_role(project, member, "annotator")
    gold = project.items.order_by("pk").last()
    Item.objects.filter(pk=gold.pk).update(is_gold=True, route=Item.Route.AI)
    a = assignment_next(project=project, annotator=member)
    assert a.item_id == gold.pk and a.is_gold


def test_it_serves_regular_items_when_the_gold_draw_misses(
    make_project: Any, member: Any, set_role: Any
) -> None:
    project = make_project("nogold", items=2, gold_rate=0.0, **ALL_OVERALL)
    set_role(project, member, "annotator")
    Item.objects.filter(pk=project.items.order_by("pk").first().pk).update(is_gold=True)
    a = assignment_next(project=project, annotator=member)
    assert not a.is_gold


def test_gold_items_are_not_capped_by_overlap_so_every_annotator_meets_them(
    make_project: Any, make_user: Any, set_role: Any
) -> None:
    project = make_project("goldcap", items=1, gold_rate=1.0, overlap=1, **ALL_OVERALL)
    Item.objects.update(is_gold=True)
    people = [make_user(f"g{i}") for i in range(3)]
    for person in people:
        set_role(project, person, "annotator")
    got = [assignment_next(project=project, annotator=p) for p in people]
    assert all(a is not None and a.is_gold for a in got)
    assert Item.objects.get().human_assigned == 3


def test_it_returns_none_when_the_queue_is_empty(simple: Any, member: Any) -> None:
    simple.items.all().delete()
    assert assignment_next(project=simple, annotator=member) is None


def test_presentation_orders_are_random_per_assignment(
    make_project: Any, member: Any, set_role: Any
) -> None:
    project = make_project("rnd", items=30, task_type="ranking", k=4, gold_rate=0.0)
    set_role(project, member, "annotator")
    orders = set()
    rng = random.Random(7)
    for _ in range(30):
        a = assignment_next(project=project, annotator=member, rng=rng)
        orders.add(tuple(a.presentation_order))
        assignment_skip(assignment=a, annotator=member, reason="other")
    assert len(orders) > 5


# --- Submitting ---------------------------------------------------------------------------------


def test_submitting_stores_one_judgment_per_aspect_and_counts_it_done(
    make_project: Any, member: Any, set_role: Any
) -> None:
    project = make_project("asp", items=1, gold_rate=0.0, aspects=["overall", "truthfulness"])
    set_role(project, member, "annotator")
    a = assignment_next(project=project, annotator=member)
    Assignment.objects.filter(pk=a.pk).update(created_at=timezone.now() - timedelta(seconds=42))
    a.refresh_from_db()
    judgments = judgment_submit(
        assignment=a,
        annotator=member,
        verdicts={"overall": {"strength": 2}, "truthfulness": {"strength": 0}},
        rationale="  A is right.  ",
        confidence_label="high",
    )
    assert {j.aspect for j in judgments} == {"overall", "truthfulness"}
    stored = Judgment.objects.get(aspect="overall")
    assert stored.kind == Judgment.Kind.HUMAN and stored.annotator == member
    assert stored.rationale == "A is right." and stored.confidence_label == "high"
    assert 42_000 <= stored.time_spent_ms < 60_000
    assert stored.presentation_order == a.presentation_order
    a.refresh_from_db()
    assert a.status == Assignment.Status.SUBMITTED and a.finished_at is not None
    item = fresh(a.item)
    assert (item.human_assigned, item.human_done) == (1, 1)


def test_a_repeated_identical_submit_returns_the_same_judgments(simple: Any, member: Any) -> None:
    a = assignment_next(project=simple, annotator=member)
    first = judgment_submit(assignment=a, annotator=member, verdicts=pairwise(-2))
    stale = Assignment.objects.get(pk=a.pk)  # a retried request loads the row again
    second = judgment_submit(assignment=stale, annotator=member, verdicts=pairwise(-2))
    assert [j.pk for j in first] == [j.pk for j in second]
    assert Judgment.objects.count() == 1
    assert fresh(a.item).human_done == 1


def test_a_different_verdict_for_a_submitted_assignment_is_refused(
    simple: Any, member: Any
) -> None:
    a = assignment_next(project=simple, annotator=member)
    judgment_submit(assignment=a, annotator=member, verdicts=pairwise(2))
    with pytest.raises(AssignmentClosed):
        judgment_submit(assignment=a, annotator=member, verdicts=pairwise(-2))
    assert Judgment.objects.get().value == verdict_to_canonical(
        "pairwise", {"strength": 2}, a.presentation_order
    )


@pytest.mark.parametrize(
    "verdicts",
    [
        {"overall": {"strength": 3}},
        {"overall": {"strength": "2"}},
        {"overall": {}},
        {},
        {"overall": {"strength": 1}, "style": {"strength": 1}},
        "not a dict",
    ],
)
def test_it_refuses_a_bad_pairwise_verdict_and_changes_nothing(
    simple: Any, member: Any, verdicts: Any
) -> None:
    a = assignment_next(project=simple, annotator=member)
    with pytest.raises(InvalidVerdict):
        judgment_submit(assignment=a, annotator=member, verdicts=verdicts)
    assert Judgment.objects.count() == 0
    a.refresh_from_db()
    assert a.status == Assignment.Status.ACTIVE and fresh(a.item).human_done == 0


def test_it_refuses_a_tie_when_the_project_allows_none(
    make_project: Any, member: Any, set_role: Any
) -> None:
    project = make_project("noties", items=1, allow_ties=False, gold_rate=0.0, **ALL_OVERALL)
    set_role(project, member, "annotator")
    a = assignment_next(project=project, annotator=member)
    with pytest.raises(InvalidVerdict, match="ties"):
        judgment_submit(assignment=a, annotator=member, verdicts=pairwise(0))


@pytest.mark.parametrize(
    "ranks", [[1, 2, 3], [1, 1, 2, 5], [2, 2, 3, 4], [0, 1, 2, 3], [1, 2, 3, 3]]
)
def test_it_refuses_a_ranking_that_is_not_a_permutation(
    make_project: Any, member: Any, set_role: Any, ranks: list[int]
) -> None:
    project = make_project(
        "rk", items=1, task_type="ranking", k=4, allow_ties=False, gold_rate=0.0, **ALL_OVERALL
    )
    set_role(project, member, "annotator")
    a = assignment_next(project=project, annotator=member)
    with pytest.raises(InvalidVerdict):
        judgment_submit(assignment=a, annotator=member, verdicts={"overall": {"ranks": ranks}})
    assert Judgment.objects.count() == 0


def test_it_refuses_best_equal_to_worst(make_project: Any, member: Any, set_role: Any) -> None:
    project = make_project("bw", items=1, task_type="kwise", k=4, gold_rate=0.0, **ALL_OVERALL)
    set_role(project, member, "annotator")
    a = assignment_next(project=project, annotator=member)
    with pytest.raises(InvalidVerdict):
        judgment_submit(
            assignment=a, annotator=member, verdicts={"overall": {"best": 1, "worst": 1}}
        )


def test_it_refuses_an_unknown_confidence(simple: Any, member: Any) -> None:
    a = assignment_next(project=simple, annotator=member)
    with pytest.raises(InvalidVerdict, match="confidence"):
        judgment_submit(
            assignment=a, annotator=member, verdicts=pairwise(), confidence_label="certain"
        )


def test_it_refuses_someone_elses_assignment(simple: Any, member: Any, owner: Any) -> None:
    a = assignment_next(project=simple, annotator=member)
    with pytest.raises(NotYourAssignment):
        judgment_submit(assignment=a, annotator=owner, verdicts=pairwise())
    with pytest.raises(NotYourAssignment):
        assignment_skip(assignment=a, annotator=owner, reason="unclear")
    assert Judgment.objects.count() == 0


def test_it_refuses_a_submit_after_the_hold_expired_and_frees_the_slot(
    simple: Any, member: Any
) -> None:
    a = assignment_next(project=simple, annotator=member)
    Assignment.objects.filter(pk=a.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    a.refresh_from_db()
    with pytest.raises(AssignmentClosed, match="expired"):
        judgment_submit(assignment=a, annotator=member, verdicts=pairwise())
    a.refresh_from_db()
    assert a.status == Assignment.Status.EXPIRED
    assert Judgment.objects.count() == 0
    assert fresh(a.item).human_assigned == 0


def test_it_refuses_a_submit_for_an_assignment_expired_by_someone_else(
    simple: Any, member: Any
) -> None:
    a = assignment_next(project=simple, annotator=member)
    Assignment.objects.filter(pk=a.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assignments_expire(project=simple)
    with pytest.raises(AssignmentClosed):
        judgment_submit(assignment=a, annotator=member, verdicts=pairwise())
    assert fresh(a.item).human_assigned == 0


def test_renewing_extends_an_open_hold_but_not_an_overdue_one(simple: Any, member: Any) -> None:
    a = assignment_next(project=simple, annotator=member)
    Assignment.objects.filter(pk=a.pk).update(expires_at=timezone.now() + timedelta(minutes=1))
    new_expiry = assignment_renew(assignment=a, annotator=member)
    assert new_expiry > timezone.now() + timedelta(minutes=simple.assignment_minutes - 1)
    Assignment.objects.filter(pk=a.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(AssignmentClosed):
        assignment_renew(assignment=a, annotator=member)


# --- Skipping -----------------------------------------------------------------------------------


def test_skipping_frees_the_slot_and_the_annotator_does_not_get_it_again(
    simple: Any, member: Any
) -> None:
    a = assignment_next(project=simple, annotator=member)
    assignment_skip(assignment=a, annotator=member, reason="unclear")
    a.refresh_from_db()
    assert a.status == Assignment.Status.SKIPPED and a.skip_reason == "unclear"
    assert fresh(a.item).human_assigned == 0
    served = []
    while (b := assignment_next(project=simple, annotator=member)) is not None:
        served.append(b.item_id)
        judgment_submit(assignment=b, annotator=member, verdicts=pairwise())
    assert a.item_id not in served and len(served) == 2


def test_skipping_twice_is_harmless(simple: Any, member: Any) -> None:
    a = assignment_next(project=simple, annotator=member)
    assignment_skip(assignment=a, annotator=member, reason="broken")
    assignment_skip(assignment=a, annotator=member, reason="broken")
    assert fresh(a.item).human_assigned == 0


def test_skipping_needs_a_reason(simple: Any, member: Any) -> None:
    a = assignment_next(project=simple, annotator=member)
    with pytest.raises(InvalidVerdict, match="reason"):
        assignment_skip(assignment=a, annotator=member, reason="  ")


def test_a_submitted_item_cannot_be_skipped_and_a_skipped_one_cannot_be_submitted(
    simple: Any, member: Any
) -> None:
    a = assignment_next(project=simple, annotator=member)
    judgment_submit(assignment=a, annotator=member, verdicts=pairwise())
    with pytest.raises(AssignmentClosed):
        assignment_skip(assignment=a, annotator=member, reason="other")
    b = assignment_next(project=simple, annotator=member)
    assignment_skip(assignment=b, annotator=member, reason="other")
    with pytest.raises(AssignmentClosed):
        judgment_submit(assignment=b, annotator=member, verdicts=pairwise())


# --- Progress -----------------------------------------------------------------------------------


def test_progress_counts_done_today_skipped_and_what_is_left(simple: Any, member: Any) -> None:
    assert queue_progress(project=simple, annotator=member).remaining == 3
    a = assignment_next(project=simple, annotator=member)
    judgment_submit(assignment=a, annotator=member, verdicts=pairwise())
    b = assignment_next(project=simple, annotator=member)
    assignment_skip(assignment=b, annotator=member, reason="other")
    progress = queue_progress(project=simple, annotator=member)
    assert (progress.done, progress.today, progress.skipped) == (1, 1, 1)
    assert progress.remaining == 1 and progress.remaining_label == "1"


def test_yesterdays_work_is_done_but_not_today(simple: Any, member: Any) -> None:
    a = assignment_next(project=simple, annotator=member)
    judgment_submit(assignment=a, annotator=member, verdicts=pairwise())
    Assignment.objects.filter(pk=a.pk).update(finished_at=timezone.now() - timedelta(days=1))
    progress = queue_progress(project=simple, annotator=member)
    assert (progress.done, progress.today) == (1, 0)


# --- Presentation order <-> canonical order -----------------------------------------------------


@pytest.mark.parametrize(
    ("order", "shown", "canonical"),
    [
        ([0, 1], 2, 2),
        ([1, 0], 2, -2),  # "A much better" when A was canonical response 1
        ([1, 0], -1, 1),
        ([1, 0], 0, 0),
    ],
)
def test_pairwise_verdicts_map_back_to_canonical_order(
    order: list[int], shown: int, canonical: int
) -> None:
    assert verdict_to_canonical("pairwise", {"strength": shown}, order) == {"strength": canonical}
    assert verdict_to_presented("pairwise", {"strength": canonical}, order) == {"strength": shown}


def test_rankings_map_back_to_canonical_order() -> None:
    # Shown C D A B (canonical 2 3 0 1); the annotator ranks the first shown (canonical 2) best.
    order = [2, 3, 0, 1]
    shown = {"ranks": [1, 2, 3, 4]}
    canonical = verdict_to_canonical("ranking", shown, order)
    assert canonical == {"ranks": [3, 4, 1, 2]}
    assert verdict_to_presented("ranking", canonical, order) == shown


def test_best_worst_maps_back_to_canonical_order() -> None:
    order = [3, 0, 2, 1]
    assert verdict_to_canonical("kwise", {"best": 0, "worst": 3}, order) == {"best": 3, "worst": 1}
    assert verdict_to_presented("kwise", {"best": 3, "worst": 1}, order) == {"best": 0, "worst": 3}


def test_the_stored_judgment_is_in_canonical_order_whatever_was_shown(
    make_project: Any, member: Any, set_role: Any
) -> None:
    project = make_project(
        "map", items=1, task_type="ranking", k=3, gold_rate=0.0, allow_ties=False, **ALL_OVERALL
    )
    set_role(project, member, "annotator")
    a = assignment_next(project=project, annotator=member)
    Assignment.objects.filter(pk=a.pk).update(presentation_order=[1, 2, 0])
    a.refresh_from_db()
    # The annotator puts the first card shown (canonical 1) first and the last (canonical 0) last.
    judgment_submit(assignment=a, annotator=member, verdicts={"overall": {"ranks": [1, 2, 3]}})
    stored = Judgment.objects.get()
    assert stored.value == {"ranks": [3, 1, 2]}
    prefs = stored.preferences()
    assert any(p.winner == 1 and p.loser == 0 and p.strength == 2 for p in prefs)


# --- Concurrency --------------------------------------------------------------------------------


def _race(
    make_project: Any,
    make_user: Any,
    set_role: Any,
    *,
    workers: int,
    items: int,
    caplog: pytest.LogCaptureFixture | None = None,
) -> None:
    """Many annotators pull and submit at once, each thread on its own connection; some submit
    twice at the same moment. Afterwards every counter must match the rows, and nothing may be
    lost, doubled, or past overlap."""
    overlap = 3
    project = make_project(
        "race", items=items, overlap=overlap, gold_rate=0.2, aspects=["overall", "style"]
    )
    Item.objects.filter(pk__in=list(project.items.values_list("pk", flat=True)[:3])).update(
        is_gold=True
    )
    people = [make_user(f"w{i}") for i in range(workers)]
    for person in people:
        set_role(project, person, "annotator")
    errors: list[BaseException] = []
    start = threading.Barrier(workers)

    def work(person: Any) -> None:
        try:
            start.wait()
            rng = random.Random(person.pk)
            while (a := assignment_next(project=project, annotator=person, rng=rng)) is not None:
                verdicts = {"overall": {"strength": 1}, "style": {"strength": -1}}
                if rng.random() < 0.3:
                    # A double click: two requests for the same assignment at the same moment.
                    twins = [
                        threading.Thread(target=_submit_closing, args=(a, person, verdicts, errors))
                        for _ in range(2)
                    ]
                    for t in twins:
                        t.start()
                    for t in twins:
                        t.join()
                else:
                    judgment_submit(assignment=a, annotator=person, verdicts=verdicts)
        except BaseException as exc:  # the main thread reports it
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    if caplog is not None:
        # A deadlock is retried, so it would not show as an error; the queue logs each one.
        deadlocks = [r.getMessage() for r in caplog.records if "deadlock" in r.getMessage()]
        assert not deadlocks, deadlocks

    assignments = Assignment.objects.filter(project=project)
    assert not assignments.filter(status=Assignment.Status.ACTIVE).exists()
    pairs = list(assignments.values_list("item_id", "annotator_id"))
    assert len(pairs) == len(set(pairs)), "an annotator got the same item twice"
    for item in Item.objects.filter(project=project):
        submitted = assignments.filter(item=item, status=Assignment.Status.SUBMITTED).count()
        assert item.human_assigned == submitted == item.human_done
        if item.is_gold:
            assert submitted == workers, "every annotator meets every gold item once"
        else:
            assert submitted == overlap, f"item {item.pk}: {submitted} judgments, overlap {overlap}"
    judgments = Judgment.objects.filter(item__project=project, kind=Judgment.Kind.HUMAN)
    assert judgments.count() == 2 * assignments.filter(status="submitted").count()


def _submit_closing(a: Assignment, person: Any, verdicts: dict, errors: list) -> None:
    try:
        judgment_submit(assignment=a, annotator=person, verdicts=verdicts)
    except BaseException as exc:
        errors.append(exc)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_concurrent_annotators_on_the_configured_database_never_exceed_overlap(
    make_project: Any, make_user: Any, set_role: Any
) -> None:
    # On SQLite the IMMEDIATE transactions serialise the writers; skip_locked is ignored there.
    _race(make_project, make_user, set_role, workers=6, items=12)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("workers", "items"),
    [(16, 60), (32, 10)],
    ids=["sixteen-annotators-on-sixty-items", "a-crowd-at-the-end-of-the-queue"],
)
def test_concurrent_annotators_on_postgresql_never_exceed_overlap_nor_deadlock(
    make_project: Any,
    make_user: Any,
    set_role: Any,
    caplog: pytest.LogCaptureFixture,
    workers: int,
    items: int,
) -> None:
    # 32 annotators on 10 items made the former waiting scan deadlock in most runs.
    _postgresql_only()
    _race(make_project, make_user, set_role, workers=workers, items=items, caplog=caplog)


def _postgresql_only() -> None:
    need_service("PostgreSQL", "127.0.0.1", 5432)
    if connection.vendor != "postgresql":
        message = "run with DATABASE_URL=postgres://… to test row locks under real concurrency"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)


def _next_while_another_request_holds_the_item(
    project: Any, annotator: Any, item: Item, *, fill_it: bool
) -> tuple[Assignment | None, bool]:
    """Another connection locks the project's last open item (as another annotator's "next" does)
    and keeps it locked; our annotator asks for the next item meanwhile. Returns what they got and
    whether the "next" was still waiting when the other request let go."""
    from django.db import connections

    locked, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def other_request() -> None:
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute("BEGIN")
                cursor.execute(
                    "SELECT id FROM annotate_item WHERE id = %s FOR NO KEY UPDATE", [item.pk]
                )
                locked.set()
                release.wait(timeout=30)
                if fill_it:
                    cursor.execute(
                        "UPDATE annotate_item SET human_assigned = %s WHERE id = %s",
                        [project.overlap, item.pk],
                    )
                cursor.execute("COMMIT")
        except BaseException as exc:
            errors.append(exc)
            locked.set()
        finally:
            connections["default"].close()

    holder = threading.Thread(target=other_request)
    holder.start()
    assert locked.wait(timeout=30)
    got: list[Assignment | None] = []

    def ask() -> None:
        try:
            got.append(assignment_next(project=project, annotator=annotator))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections["default"].close()

    asking = threading.Thread(target=ask)
    asking.start()
    asking.join(timeout=1.0)
    still_waiting = asking.is_alive()
    release.set()
    holder.join(timeout=30)
    asking.join(timeout=30)
    assert not errors, errors
    return got[0], still_waiting


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "fill_it", [False, True], ids=["gets-it-if-it-stays-open", "nothing-left-if-it-fills-up"]
)
def test_a_next_on_postgresql_waits_for_a_busy_last_item(
    make_project: Any, member: Any, set_role: Any, fill_it: bool
) -> None:
    _postgresql_only()
    project = make_project("busy", items=1, gold_rate=0.0, overlap=2, **ALL_OVERALL)
    set_role(project, member, "annotator")
    item = project.items.get()
    got, still_waiting = _next_while_another_request_holds_the_item(
        project, member, item, fill_it=fill_it
    )
    assert still_waiting, "a busy item is not 'nothing left': the next waits for it"
    if fill_it:
        assert got is None
        assert not Assignment.objects.filter(annotator=member).exists()
    else:
        assert got is not None and got.item_id == item.pk
        assert fresh(item).human_assigned == 1


def test_a_next_returns_every_overdue_hold_of_the_project_before_claiming(
    make_project: Any, make_user: Any, set_role: Any
) -> None:
    """On PostgreSQL the overdue probe rides on the annotator's lock; the holds it finds are
    given back, then the claim runs again and can serve one of them."""
    project = make_project("overdue", items=2, gold_rate=0.0, overlap=1, **ALL_OVERALL)
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    for user in (alice, bob, carol):
        set_role(project, user, "annotator")
    held = [assignment_next(project=project, annotator=u) for u in (alice, bob)]
    Assignment.objects.filter(pk__in=[a.pk for a in held]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    got = assignment_next(project=project, annotator=carol)
    assert got is not None and got.item_id in {a.item_id for a in held}
    statuses = set(Assignment.objects.filter(pk__in=[a.pk for a in held]).values_list("status"))
    assert statuses == {(Assignment.Status.EXPIRED,)}
    counts = Item.objects.filter(project=project).values_list("human_assigned", flat=True)
    assert sorted(counts) == [0, 1]
