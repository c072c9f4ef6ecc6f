"""The human queue: which item an annotator gets next, and how a judgment or a skip is recorded.

Invariants (each kept under a row lock, never by counting after the fact):
- A non-gold item never has more than `project.overlap` active + submitted assignments. The
  count lives on `Item.human_assigned`; it is read and incremented while the item row is locked
  (`select_for_update(skip_locked=True)` on PostgreSQL; on SQLite the IMMEDIATE transaction
  already holds the one write lock, and skip_locked is ignored, which is still correct).
- An annotator never gets the same item twice (an expired hold does not count: the item went
  back to the pool and may come back to them). The conditional unique constraint backs this up.
- A hold expires after `project.assignment_minutes`. Expiry is lazy: every `assignment_next`
  first returns overdue holds of its project to the pool with a conditional UPDATE, so two
  servers expiring the same hold decrement the counter once.
- Submitting is idempotent: the assignment row is locked and its status checked, and the
  unique constraint (assignment, aspect) stops a second set of judgments even if that failed.

How: on PostgreSQL the two hot paths are a few prepared, hand-written statements (a "next" is a
transaction that locks the annotator while probing for overdue holds, finds their open hold or
locks a candidate, and inserts the hold while bumping the counter; a submit is one statement), because
building ~20 ORM queries per cycle cost more CPU than everything else together (issue 3). The
same rules run through the ORM on other databases (SQLite: the demo and most tests), and the
rare paths (a repeated or refused submit, skip, renew) use the ORM everywhere.

Gold items are mixed in at `project.gold_rate` whatever their route, and they are *not* capped
by `overlap`: their purpose is to measure every annotator against a known answer, which a cap of
one or three annotators would defeat. Their judgments count like any other (human_done,
progress).

Locks, so that the services cannot deadlock each other: submit, skip and expiry lock the
assignment row, then the item row; a "next" locks the annotator's user row, then one item row,
and only ever *waits* for an item lock while holding nothing but that user row (scans over
pools use SKIP LOCKED). Row locks are NO KEY UPDATE, never FOR UPDATE, so the foreign-key checks
that PostgreSQL runs at commit (KEY SHARE on the item, user and project rows a new assignment or
judgment points at) never wait for them.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import orjson
import psycopg
from django.contrib.auth import get_user_model
from django.db import OperationalError, connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from annotate import fastsql
from annotate import verdicts as shapes
from annotate.models import Assignment, Item, Judgment, Project

log = logging.getLogger(__name__)

CONFIDENCE_LABELS = ("low", "medium", "high")
SKIP_REASONS = {
    "unclear": "The prompt or responses are unclear",
    "expertise": "Outside my expertise",
    "broken": "Broken, empty or truncated",
    "offensive": "Offensive content I won't judge",
    "other": "Other",
}
MAX_RATIONALE = 5000
# Progress counts the open queue up to this many: an exact count of a 100,000-item project on
# every screen would cost more than the rest of the request. The screen shows "1000+".
REMAINING_COUNT_CAP = 1000
# Overdue holds returned to the pool per call; the rest go on the next call.
EXPIRE_BATCH = 100
# Attempts at a "next" that PostgreSQL aborted to break a deadlock.
DEADLOCK_RETRIES = 3


class QueueError(Exception):
    """A request the queue refuses; nothing was changed. `status` is the HTTP status to answer."""

    status = 400


class InvalidVerdict(QueueError):
    status = 400


class NotYourAssignment(QueueError):
    # 404, not 403: someone else's assignment ids do not leak.
    status = 404


class AssignmentClosed(QueueError):
    """Expired, skipped, or already submitted with a different verdict."""

    status = 409


@dataclass(frozen=True, slots=True)
class Progress:
    done: int
    today: int
    skipped: int
    remaining: int
    remaining_capped: bool

    @property
    def remaining_label(self) -> str:
        return f"{self.remaining}+" if self.remaining_capped else str(self.remaining)


# --- Serving ----------------------------------------------------------------------------------


def assignment_next(
    *, project: Project, annotator: Any, rng: random.Random | None = None
) -> Assignment | None:
    """The annotator's current assignment, or a new one; None when nothing is left for them."""
    rng = rng or random.Random()
    now = timezone.now()
    if fastsql.enabled():
        return _next_postgresql(project=project, annotator=annotator, rng=rng, now=now)
    assignments_expire(project=project, now=now)
    with transaction.atomic():
        # Serialise one annotator's own requests (a double click, two tabs): without this two
        # concurrent calls would both see "no active hold" and hand out two items.
        list(
            get_user_model()
            .objects.select_for_update(no_key=True)
            .filter(pk=annotator.pk)
            .values_list("pk")
        )
        current = (
            Assignment.objects.filter(
                project=project,
                annotator=annotator,
                status=Assignment.Status.ACTIVE,
                expires_at__gt=now,
            )
            .select_related("item")
            .order_by("created_at")
            .first()
        )
        if current is not None:
            return current
        regular = [
            _regular_candidates(project=project, annotator=annotator, route=route)
            for route in (Item.Route.HUMAN, Item.Route.PENDING)  # routed to humans first
        ]
        gold = [_gold_candidates(project=project, annotator=annotator)]
        pools = gold + regular if rng.random() < project.gold_rate else regular + gold
        # First pass, SKIP LOCKED: a row another annotator is being given right now is passed
        # over instead of waited for, so concurrent calls fan out over the pool. Only if that
        # finds nothing, a second pass waits for the locked rows: "nothing left" must mean
        # nothing left, not "the last items were busy for a millisecond". (This path serves
        # SQLite, where one writer at a time makes the waiting pass safe; on PostgreSQL a waiting
        # scan over a pool could deadlock, so _next_postgresql waits for one row at a time.)
        for skip_locked in (True, False):
            for pool in pools:
                locked = pool.select_for_update(skip_locked=skip_locked, of=("self",), no_key=True)
                item = next(iter(locked[:1]), None)
                if item is not None:
                    return _assign(
                        project=project, item=item, annotator=annotator, now=now, rng=rng
                    )
    return None


def _not_seen_by(annotator: Any) -> Exists:
    # Matches the partial unique index (item, annotator) WHERE status <> 'expired'.
    return Exists(
        Assignment.objects.filter(item=OuterRef("pk"), annotator=annotator).exclude(
            status=Assignment.Status.EXPIRED
        )
    )


def _regular_candidates(*, project: Project, annotator: Any, route: str) -> QuerySet[Item]:
    """Open items of one route. Until routing exists every item is `pending`, and those are
    served too; `ai` items are not.

    One route per query, ordered by `human_assigned` descending, so PostgreSQL walks the
    (project, route, human_assigned) index from the fullest open items down: items already
    started are finished first, and full items are never scanned. (`route IN (...)` made it
    fall back to a sequential scan that grows with every item already done.)
    """
    return (
        Item.objects.filter(
            project=project, route=route, is_gold=False, human_assigned__lt=project.overlap
        )
        .exclude(_not_seen_by(annotator))
        .order_by("-human_assigned")
    )


def _gold_candidates(*, project: Project, annotator: Any) -> QuerySet[Item]:
    return Item.objects.filter(project=project, is_gold=True).exclude(_not_seen_by(annotator))


def _assign(
    *, project: Project, item: Item, annotator: Any, now: datetime, rng: random.Random
) -> Assignment:
    order = list(range(len(item.responses)))
    rng.shuffle(order)
    assignment = Assignment.objects.create(
        project=project,
        item=item,
        annotator=annotator,
        presentation_order=order,
        is_gold=item.is_gold,
        created_at=now,
        expires_at=now + timedelta(minutes=project.assignment_minutes),
    )
    # The item row is locked by the caller, so this read-and-increment cannot interleave.
    Item.objects.filter(pk=item.pk).update(human_assigned=F("human_assigned") + 1)
    item.human_assigned += 1
    assignment.item = item
    return assignment


def assignment_of(*, project: Project, annotator: Any, assignment_id: int) -> Assignment | None:
    """The annotator's own assignment in this project, or None: views answer 404 for anyone
    else's, so assignment ids do not leak. Its `project` is the one given (no second read)."""
    if fastsql.enabled():
        assignment = fastsql.assignment(
            assignment_id=assignment_id, project=project, user=annotator
        )
    else:
        assignment = Assignment.objects.filter(
            pk=assignment_id, project=project, annotator=annotator
        ).first()
    if assignment is not None:
        assignment.project = project
    return assignment


# --- Serving on PostgreSQL: the same rules in three statements -------------------------------


def _next_postgresql(
    *, project: Project, annotator: Any, rng: random.Random, now: datetime
) -> Assignment | None:
    gold_first = rng.random() < project.gold_rate
    expired = False
    deadlocks = 0
    busy: int | None = None
    for _ in range(MAX_CLAIM_ROUNDS):
        try:
            claimed = _claim_postgresql(
                project=project,
                annotator=annotator,
                rng=rng,
                now=now,
                gold_first=gold_first,
                stop_if_overdue=not expired,
                wait_for=busy,
            )
        except OperationalError as exc:
            # A safety net: by the lock rules above a "next" should not be part of a deadlock.
            # If PostgreSQL aborts one anyway, it changed nothing, so it starts again.
            if not isinstance(exc.__cause__, psycopg.errors.DeadlockDetected):
                raise
            # Logged: it means a lock rule above was broken somewhere (the race test fails on it).
            log.warning("queue: a next was aborted by a deadlock (%s)", exc)
            deadlocks += 1
            if deadlocks == DEADLOCK_RETRIES:
                raise
            continue
        if claimed is _OVERDUE:
            # The project has overdue holds (rare: an abandoned item): give them back to the
            # pool, as assignment_next does first on other databases, then claim again.
            assignments_expire(project=project, now=now)
            expired = True
            continue
        if isinstance(claimed, _Busy):
            # Every open item is locked by another request right now: wait for one of them in a
            # transaction of its own, then claim again.
            busy = claimed.item_id
            continue
        return claimed
    # Each round waited for a request that then took its item; the queue is draining under us.
    raise OperationalError("the queue stayed busy for too long; ask for the next item again")


# What _claim_postgresql returns, having written nothing, when it found overdue holds first.
_OVERDUE = object()
# Rounds of "wait for a busy item, claim again" before a next gives up (each round waits for
# one other request to finish, so reaching this takes a pathological load).
MAX_CLAIM_ROUNDS = 50


@dataclass(frozen=True, slots=True)
class _Busy:
    """What _claim_postgresql returns, having written nothing, when the only open items it found
    are locked by other requests."""

    item_id: int


def _claim_postgresql(
    *,
    project: Project,
    annotator: Any,
    rng: random.Random,
    now: datetime,
    gold_first: bool,
    stop_if_overdue: bool,
    wait_for: int | None,
) -> Assignment | object | None:
    """One transaction of a "next" on PostgreSQL.

    Deadlock-free by construction: the only item lock it ever waits for is `wait_for`, taken by
    the first item statement of the transaction, while it holds nothing but the annotator's own
    row. Every other item lock is taken with SKIP LOCKED, which never waits. (A waiting
    `FOR UPDATE` over a whole pool could deadlock: a row that no longer qualifies once its lock
    is granted stays locked until the end of the transaction, so two such scans could each
    hold a row the other was waiting for.)
    """
    params = {
        "project": project.pk,
        "annotator": annotator.pk,
        "now": now,
        "overlap": project.overlap,
    }
    with transaction.atomic(), fastsql.prepared_cursor() as cursor:
        # Serialise the annotator's own requests, as in assignment_next. Its own statement: the
        # next one must start after the lock is held, so that its snapshot sees a hold that a
        # twin request has just committed. It also says whether the project has overdue holds,
        # a probe that nearly always finds none and would otherwise cost a statement of its own.
        cursor.execute(_lock_annotator_sql(), params, prepare=True)
        (any_overdue,) = cursor.fetchone()  # the annotator is an authenticated, existing user
        if any_overdue and stop_if_overdue:
            return _OVERDUE  # leaves the transaction having only taken the annotator's lock
        row = None
        if wait_for is not None:
            cursor.execute(_wait_for_item_sql(), {**params, "item": wait_for}, prepare=True)
            row = cursor.fetchone()
        if row is None or (row[0] is None and row[1] is None):
            # The common case, one statement: the open hold, or an open item nobody holds.
            cursor.execute(_current_or_candidate_sql(gold_first, lock=True), params, prepare=True)
            row = cursor.fetchone()
        current_id, *item_row = row
        if current_id is not None:
            return Assignment.objects.select_related("item").get(pk=current_id)
        if item_row[0] is None:
            # Nothing free. "Nothing left" must mean nothing left, not "the last items were busy
            # for a millisecond": look again without locks for an item another request holds.
            cursor.execute(_current_or_candidate_sql(gold_first, lock=False), params, prepare=True)
            _, busy_id, *_ = cursor.fetchone()
            return None if busy_id is None else _Busy(busy_id)
        item = fastsql.instance(Item, item_row)
        order = list(range(len(item.responses)))
        rng.shuffle(order)
        expires_at = now + timedelta(minutes=project.assignment_minutes)
        # The item row is locked by the statement above, so this increment cannot interleave.
        cursor.execute(
            _HOLD_SQL,
            {
                **params,
                "item": item.pk,
                "order": orjson.dumps(order).decode(),
                "is_gold": item.is_gold,
                "expires_at": expires_at,
            },
            prepare=True,
        )
        (assignment_id,) = cursor.fetchone()
    item.human_assigned += 1
    assignment = Assignment(
        pk=assignment_id,
        project=project,
        item=item,
        annotator=annotator,
        presentation_order=order,
        is_gold=item.is_gold,
        created_at=now,
        expires_at=expires_at,
    )
    assignment._state.adding = False
    assignment._state.db = connection.alias
    return assignment


@cache
def _lock_annotator_sql() -> str:
    users = connection.ops.quote_name(get_user_model()._meta.db_table)
    overdue = (
        "SELECT 1 FROM annotate_assignment WHERE project_id = %(project)s"
        " AND status = 'active' AND expires_at <= %(now)s"
    )
    # NO KEY UPDATE: serialises the annotator's own "next"s without blocking the foreign-key
    # checks (KEY SHARE) of rows that point at the user, such as their judgments.
    return f"SELECT EXISTS ({overdue}) FROM {users} WHERE id = %(annotator)s FOR NO KEY UPDATE"


# Pools as in _regular_candidates / _gold_candidates: one route per scan so each walks the
# (project, route, human_assigned) index from the fullest open items down. Each route is asked
# three times, so that a "next" costs the same on the ten-thousandth item as on the first:
# - started: the fullest open items first, but only the first STARTED_BAND of them. Items this
#   annotator has already judged stay open until someone else judges them too; alone on a
#   project (or ahead of the others) they pile up at the top of that scan, and every "next"
#   read past all of them (~9 ms of PostgreSQL per cycle for one annotator after 700 items).
#   The band is read whole on every call, so it is small: enough to find one item that others
#   started and this annotator has not seen.
# - fresh: items nobody holds, which this annotator has almost never seen (a skip).
# - the whole route as before, for the end of the queue, when only started items are left.
STARTED_BAND = 16


def _regular_pools(route: str) -> dict[str, str]:
    # `route` is one of our own constants (never input), so it is written into the SQL.
    open_items = f"i.route = '{route}' AND NOT i.is_gold AND i.human_assigned < %(overlap)s"
    band = (
        f"SELECT b.id FROM annotate_item AS b WHERE b.project_id = %(project)s "
        f"AND b.route = '{route}' AND NOT b.is_gold AND b.human_assigned < %(overlap)s "
        f"AND b.human_assigned > 0 ORDER BY b.human_assigned DESC LIMIT {STARTED_BAND}"
    )
    return {
        f"{route}_started": f"{open_items} AND i.id IN ({band}) ORDER BY i.human_assigned DESC",
        f"{route}_fresh": f"i.route = '{route}' AND NOT i.is_gold AND i.human_assigned = 0",
        route: f"{open_items} ORDER BY i.human_assigned DESC",
    }


_POOLS = {**_regular_pools("human"), **_regular_pools("pending"), "gold": "i.is_gold"}
_REGULAR = [name for name in _POOLS if name != "gold"]


@cache
def _current_or_candidate_sql(gold_first: bool, *, lock: bool) -> str:
    """One row: the annotator's open hold (its id), or else the first open item of the first
    pool that has one, locked with SKIP LOCKED (or, with lock=False, read without a lock: an
    item that may be busy). A pool is only scanned when the ones before it came up empty (the
    NOT EXISTS on a CTE is a one-time filter), so at most one item is returned.

    OFFSET 0 keeps "not seen by this annotator" a probe of the partial unique index per
    candidate; as an anti-join PostgreSQL read all of the annotator's assignments first, a cost
    that grew with every item they had done.
    """
    names = ["gold", *_REGULAR] if gold_first else [*_REGULAR, "gold"]
    columns = fastsql.columns(Item, "i")
    # NO KEY UPDATE: the item's key never changes, and the foreign-key checks of other
    # requests' holds and judgments on this item (KEY SHARE) need not wait for it.
    locking = "FOR NO KEY UPDATE OF i SKIP LOCKED" if lock else ""
    ctes = [
        """cur AS (
            SELECT id FROM annotate_assignment
            WHERE project_id = %(project)s AND annotator_id = %(annotator)s
              AND status = 'active' AND expires_at > %(now)s
            ORDER BY created_at LIMIT 1
        )"""
    ]
    for n, name in enumerate(names):
        earlier = "".join(f" AND NOT EXISTS (SELECT 1 FROM pool{m})" for m in range(n))
        ctes.append(
            f"""pool{n} AS (
            SELECT {columns} FROM annotate_item AS i
            WHERE NOT EXISTS (SELECT 1 FROM cur){earlier}
              AND i.project_id = %(project)s
              AND NOT EXISTS (
                SELECT 1 FROM annotate_assignment AS seen
                WHERE seen.item_id = i.id AND seen.annotator_id = %(annotator)s
                  AND seen.status <> 'expired'
                OFFSET 0
              )
              AND {_POOLS[name]}
            LIMIT 1 {locking}
        )"""
        )
    candidates = " UNION ALL ".join(f"SELECT * FROM pool{n}" for n in range(len(names)))
    return (
        f"WITH {', '.join(ctes)} "
        f"SELECT (SELECT id FROM cur), c.* FROM (SELECT 1) AS one "
        f"LEFT JOIN ({candidates}) AS c ON true"
    )


# Waits for one item another request held: the annotator's open hold, or else that item locked
# if it is still open to this annotator (the same rules as the pools, rechecked once the lock is
# granted). Two NULLs when neither.
@cache
def _wait_for_item_sql() -> str:
    columns = fastsql.columns(Item, "i")
    return f"""
    WITH cur AS (
        SELECT id FROM annotate_assignment
        WHERE project_id = %(project)s AND annotator_id = %(annotator)s
          AND status = 'active' AND expires_at > %(now)s
        ORDER BY created_at LIMIT 1
    ), wanted AS (
        SELECT {columns} FROM annotate_item AS i
        WHERE NOT EXISTS (SELECT 1 FROM cur)
          AND i.id = %(item)s AND i.project_id = %(project)s
          AND (i.is_gold OR (i.route IN ('human', 'pending') AND i.human_assigned < %(overlap)s))
          AND NOT EXISTS (
            SELECT 1 FROM annotate_assignment AS seen
            WHERE seen.item_id = i.id AND seen.annotator_id = %(annotator)s
              AND seen.status <> 'expired'
          )
        FOR NO KEY UPDATE OF i
    )
    SELECT (SELECT id FROM cur), w.* FROM (SELECT 1) AS one LEFT JOIN wanted AS w ON true
    """


_HOLD_SQL = """
    WITH hold AS (
        INSERT INTO annotate_assignment (
            project_id, item_id, annotator_id, status, presentation_order, is_gold, skip_reason,
            created_at, expires_at
        ) VALUES (
            %(project)s, %(item)s, %(annotator)s, 'active', %(order)s::jsonb, %(is_gold)s, '',
            %(now)s, %(expires_at)s
        )
        RETURNING id
    ), counted AS (
        UPDATE annotate_item SET human_assigned = human_assigned + 1 WHERE id = %(item)s
    )
    SELECT id FROM hold
"""


def assignments_expire(*, project: Project, now: datetime | None = None) -> int:
    """Return overdue holds of the project to the pool. Safe to run from any number of servers."""
    now = now or timezone.now()
    overdue = list(
        Assignment.objects.filter(
            project=project, status=Assignment.Status.ACTIVE, expires_at__lte=now
        ).values_list("pk", "item_id")[:EXPIRE_BATCH]
    )
    expired = 0
    for pk, item_id in overdue:
        with transaction.atomic():
            expired += _expire_one(pk=pk, item_id=item_id, now=now)
    return expired


def _expire_one(*, pk: int, item_id: int, now: datetime) -> int:
    # Conditional UPDATE: of two servers expiring the same hold, only one sees a row count of 1,
    # so the counter is decremented once.
    changed = Assignment.objects.filter(pk=pk, status=Assignment.Status.ACTIVE).update(
        status=Assignment.Status.EXPIRED, finished_at=now
    )
    if changed:
        Item.objects.filter(pk=item_id).update(human_assigned=F("human_assigned") - 1)
    return changed


# --- Recording --------------------------------------------------------------------------------


def judgment_submit(
    *,
    assignment: Assignment,
    annotator: Any,
    verdicts: dict[str, Any],
    rationale: str = "",
    confidence_label: str = "",
) -> list[Judgment]:
    """Record one judgment per aspect, in canonical response order; idempotent.

    `verdicts` maps every aspect of the project to a verdict *as the annotator saw it* (response
    positions in presentation order: "A" is whatever was shown first); they are mapped back to the
    item's canonical order here. A repeat of the same submit returns the stored judgments; a
    different verdict for an already-submitted assignment is refused.
    """
    if assignment.annotator_id != annotator.pk:
        raise NotYourAssignment("No such assignment for you.")
    project = assignment.project
    rationale = (rationale or "").strip()
    confidence_label = (confidence_label or "").strip()
    if len(rationale) > MAX_RATIONALE:
        raise InvalidVerdict(f"rationale: at most {MAX_RATIONALE} characters")
    if confidence_label and confidence_label not in CONFIDENCE_LABELS:
        raise InvalidVerdict(
            f"confidence: must be one of {', '.join(CONFIDENCE_LABELS)}, got {confidence_label!r}"
        )
    canonical = _canonical_verdicts(
        project=project, verdicts=verdicts, order=assignment.presentation_order
    )
    now = timezone.now()
    if fastsql.enabled():
        judgments = _submit_postgresql(
            assignment=assignment,
            project=project,
            annotator=annotator,
            canonical=canonical,
            rationale=rationale,
            confidence_label=confidence_label,
            now=now,
        )
        if judgments is not None:
            assignment.status = Assignment.Status.SUBMITTED
            assignment.finished_at = now
            return judgments
        # Not an open hold (any more): a repeat, a skip, an expiry; settled under the lock below.
    with transaction.atomic():
        # The row lock makes a double click wait here, then see SUBMITTED and return the same.
        locked = Assignment.objects.select_for_update(no_key=True).get(pk=assignment.pk)
        if locked.status == Assignment.Status.SUBMITTED:
            return _repeat_of_submit(locked, canonical)
        if locked.status == Assignment.Status.SKIPPED:
            raise AssignmentClosed("This item was skipped; it cannot be judged now.")
        expired = locked.status == Assignment.Status.EXPIRED
        if not expired and locked.expires_at <= now:
            # Expire it for good (the next "next" would anyway), commit that, then refuse.
            expired = bool(_expire_one(pk=locked.pk, item_id=locked.item_id, now=now))
        if not expired:
            judgments = _record(
                assignment=locked,
                project=project,
                annotator=annotator,
                canonical=canonical,
                rationale=rationale,
                confidence_label=confidence_label,
                now=now,
            )
    if expired:
        raise AssignmentClosed(
            "Your hold on this item expired and it went back to the pool; nothing was saved."
        )
    assignment.status = Assignment.Status.SUBMITTED
    assignment.finished_at = now
    return judgments


def _record(
    *,
    assignment: Assignment,
    project: Project,
    annotator: Any,
    canonical: dict[str, dict],
    rationale: str,
    confidence_label: str,
    now: datetime,
) -> list[Judgment]:
    """Write the judgments; the caller holds the assignment's row lock."""
    judgments = _human_judgments(
        assignment=assignment,
        project=project,
        annotator=annotator,
        canonical=canonical,
        rationale=rationale,
        confidence_label=confidence_label,
        now=now,
    )
    # The unique constraint (assignment, aspect) would stop a second set even without the lock;
    # an IntegrityError here rolls the whole submit back.
    Judgment.objects.bulk_create(judgments)
    Assignment.objects.filter(pk=assignment.pk).update(
        status=Assignment.Status.SUBMITTED, finished_at=now
    )
    Item.objects.filter(pk=assignment.item_id).update(human_done=F("human_done") + 1)
    return judgments


def _submit_postgresql(
    *,
    assignment: Assignment,
    project: Project,
    annotator: Any,
    canonical: dict[str, dict],
    rationale: str,
    confidence_label: str,
    now: datetime,
) -> list[Judgment] | None:
    """The common submit as one statement; None when the hold is not open, written nothing.

    The conditional UPDATE takes the assignment's row lock and re-checks `status` and the expiry
    on the newest row version, so of two identical submits one writes and the other gets None
    (and then finds SUBMITTED under the lock). The presentation order and creation time it
    relies on are never changed after the hold is made.
    """
    rows = [{"aspect": aspect, "value": value} for aspect, value in canonical.items()]
    with fastsql.prepared_cursor() as cursor:
        cursor.execute(
            _SUBMIT_SQL,
            {
                "assignment": assignment.pk,
                "annotator": annotator.pk,
                "now": now,
                "task_type": project.task_type,
                "rationale": rationale,
                "confidence_label": confidence_label,
                "elapsed_ms": _elapsed_ms(assignment, now),
                "order": orjson.dumps(assignment.presentation_order).decode(),
                "verdicts": orjson.dumps(rows).decode(),
            },
            prepare=True,
        )
        written = {aspect: pk for pk, aspect in cursor.fetchall()}
    if not written:
        return None
    judgments = _human_judgments(
        assignment=assignment,
        project=project,
        annotator=annotator,
        canonical=canonical,
        rationale=rationale,
        confidence_label=confidence_label,
        now=now,
    )
    for judgment in judgments:  # the rows the statement wrote, as if loaded from the database
        judgment.pk = written[judgment.aspect]
        judgment._state.adding = False
        judgment._state.db = connection.alias
    return judgments


def _human_judgments(
    *,
    assignment: Assignment,
    project: Project,
    annotator: Any,
    canonical: dict[str, dict],
    rationale: str,
    confidence_label: str,
    now: datetime,
) -> list[Judgment]:
    """One unsaved Judgment per aspect: what both submit paths write (or wrote)."""
    return [
        Judgment(
            item_id=assignment.item_id,
            aspect=aspect,
            kind=Judgment.Kind.HUMAN,
            source="annotate",
            task_type=project.task_type,
            value=value,
            annotator=annotator,
            assignment=assignment,
            rationale=rationale,
            confidence_label=confidence_label,
            time_spent_ms=_elapsed_ms(assignment, now),
            presentation_order=assignment.presentation_order,
            created_at=now,
        )
        for aspect, value in canonical.items()
    ]


def _elapsed_ms(assignment: Assignment, now: datetime) -> int:
    """Time spent, measured on the server from the hold's creation."""
    return max(0, int((now - assignment.created_at).total_seconds() * 1000))


# Columns left out are NULL (AI-only fields); the NOT NULL ones without a Python default here get
# the values Judgment() would give them.
_SUBMIT_SQL = """
    WITH done AS (
        UPDATE annotate_assignment SET status = 'submitted', finished_at = %(now)s
        WHERE id = %(assignment)s AND annotator_id = %(annotator)s
          AND status = 'active' AND expires_at > %(now)s
        RETURNING id, item_id
    ), judged AS (
        INSERT INTO annotate_judgment (
            item_id, aspect, kind, source, task_type, value, annotator_id, external_annotator,
            assignment_id, rationale, confidence_label, time_spent_ms, presentation_order,
            prompt_version, signals, created_at
        )
        SELECT done.item_id, v.row ->> 'aspect', 'human', 'annotate', %(task_type)s,
               v.row -> 'value', %(annotator)s, '', done.id, %(rationale)s,
               %(confidence_label)s, %(elapsed_ms)s, %(order)s::jsonb, '', '{}'::jsonb, %(now)s
        FROM done, jsonb_array_elements(%(verdicts)s::jsonb) WITH ORDINALITY AS v(row, n)
        ORDER BY v.n
        RETURNING id, aspect
    ), counted AS (
        UPDATE annotate_item SET human_done = human_done + 1
        WHERE id = (SELECT item_id FROM done)
    )
    SELECT id, aspect FROM judged
"""


def _repeat_of_submit(assignment: Assignment, canonical: dict[str, dict]) -> list[Judgment]:
    stored = list(assignment.judgments.order_by("pk"))
    if {j.aspect: j.value for j in stored} != canonical:
        raise AssignmentClosed("This item was already submitted with a different verdict.")
    return stored


def assignment_skip(*, assignment: Assignment, annotator: Any, reason: str) -> Assignment:
    """Give the item back to the pool; this annotator will not be served it again. Idempotent."""
    if assignment.annotator_id != annotator.pk:
        raise NotYourAssignment("No such assignment for you.")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidVerdict("reason: say why you skip this item")
    if reason not in SKIP_REASONS and len(reason) > 500:
        raise InvalidVerdict("reason: at most 500 characters")
    now = timezone.now()
    with transaction.atomic():
        locked = Assignment.objects.select_for_update(no_key=True).get(pk=assignment.pk)
        if locked.status == Assignment.Status.SKIPPED:
            return locked
        if locked.status == Assignment.Status.SUBMITTED:
            raise AssignmentClosed("This item was already submitted; it cannot be skipped.")
        if locked.status == Assignment.Status.EXPIRED:
            raise AssignmentClosed("Your hold on this item already expired.")
        Assignment.objects.filter(pk=locked.pk).update(
            status=Assignment.Status.SKIPPED, skip_reason=reason, finished_at=now
        )
        # A skip frees the slot for someone else; the skipped row keeps it from this annotator.
        Item.objects.filter(pk=locked.item_id).update(human_assigned=F("human_assigned") - 1)
    locked.status, locked.skip_reason, locked.finished_at = Assignment.Status.SKIPPED, reason, now
    return locked


def assignment_renew(*, assignment: Assignment, annotator: Any) -> datetime:
    """Extend a hold the annotator is still working on; returns the new expiry.

    So a hold lasts `assignment_minutes` from the last sign of activity, not from when it was
    served. An overdue hold is not revived: same rule as a submit. The conditional UPDATE and
    the expiry's conditional UPDATE are serialised by the row lock.
    """
    if assignment.annotator_id != annotator.pk:
        raise NotYourAssignment("No such assignment for you.")
    now = timezone.now()
    expires_at = now + timedelta(minutes=assignment.project.assignment_minutes)
    changed = Assignment.objects.filter(
        pk=assignment.pk, status=Assignment.Status.ACTIVE, expires_at__gt=now
    ).update(expires_at=expires_at)
    if not changed:
        raise AssignmentClosed("This assignment is no longer open.")
    assignment.expires_at = expires_at
    return expires_at


# --- Reading ----------------------------------------------------------------------------------


def queue_progress(*, project: Project, annotator: Any) -> Progress:
    start_of_day = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    submitted = Q(status=Assignment.Status.SUBMITTED)
    # One pass over the annotator's rows (assignment_annotator_idx) instead of three counts.
    mine = Assignment.objects.filter(project=project, annotator=annotator).aggregate(
        done=Count("pk", filter=submitted),
        today=Count("pk", filter=submitted & Q(finished_at__gte=start_of_day)),
        skipped=Count("pk", filter=Q(status=Assignment.Status.SKIPPED)),
    )
    open_items = (
        Item.objects.filter(
            project=project,
            route__in=(Item.Route.HUMAN, Item.Route.PENDING),
            is_gold=False,
            human_assigned__lt=project.overlap,
        )
        .exclude(_not_seen_by(annotator))
        .values("pk")[:REMAINING_COUNT_CAP]
        .count()
    )
    return Progress(
        done=mine["done"],
        today=mine["today"],
        skipped=mine["skipped"],
        remaining=open_items,
        remaining_capped=open_items >= REMAINING_COUNT_CAP,
    )


# --- Presentation order <-> canonical order ---------------------------------------------------


def verdict_to_canonical(task_type: str, value: dict, order: list[int]) -> dict:
    """Map a verdict given over presented positions onto canonical response indices.

    `order[p]` is the canonical index of the response shown at position p.
    """
    if task_type == shapes.PAIRWISE:
        # Strength is from the first-shown response's point of view; flip it if that was B.
        return {"strength": value["strength"] if order[0] == 0 else -value["strength"]}
    if task_type == shapes.RANKING:
        ranks = [0] * len(order)
        for position, rank in enumerate(value["ranks"]):
            ranks[order[position]] = rank
        return {"ranks": ranks}
    if task_type == shapes.KWISE:
        return {"best": order[value["best"]], "worst": order[value["worst"]]}
    raise shapes.VerdictError(f"task type {task_type!r} is not one of {shapes.TASK_TYPES}")


def verdict_to_presented(task_type: str, value: dict, order: list[int]) -> dict:
    """The inverse of `verdict_to_canonical`: how a stored verdict looks on this screen."""
    if task_type == shapes.PAIRWISE:
        return {"strength": value["strength"] if order[0] == 0 else -value["strength"]}
    if task_type == shapes.RANKING:
        return {"ranks": [value["ranks"][canonical] for canonical in order]}
    if task_type == shapes.KWISE:
        return {"best": order.index(value["best"]), "worst": order.index(value["worst"])}
    raise shapes.VerdictError(f"task type {task_type!r} is not one of {shapes.TASK_TYPES}")


def _canonical_verdicts(
    *, project: Project, verdicts: dict[str, Any], order: list[int]
) -> dict[str, dict]:
    if not isinstance(verdicts, dict):
        raise InvalidVerdict("verdicts: must map each aspect to a verdict")
    unknown = sorted(set(verdicts) - set(project.aspects))
    if unknown:
        raise InvalidVerdict(f"verdicts: unknown aspect {unknown[0]!r}")
    canonical: dict[str, dict] = {}
    for aspect in project.aspects:
        if aspect not in verdicts:
            raise InvalidVerdict(f"{aspect}: missing a verdict")
        try:
            # Validation is order-free (a permutation stays a permutation), so check as shown.
            clean = project.validate_verdict(verdicts[aspect])
        except shapes.VerdictError as exc:
            raise InvalidVerdict(f"{aspect}: {exc}") from None
        clean.pop("scores", None)  # scores are an AI-only field
        canonical[aspect] = verdict_to_canonical(project.task_type, clean, order)
    return canonical
