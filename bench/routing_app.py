"""In-app routing preview at scale: `routing_preview` on PostgreSQL, split into its phases.

Builds a fresh database (`hybridpref_bench_routing`, dropped and re-created), a pairwise project
of N items (default 100,000; prompt ~300 characters, one in five a chat, two responses ~800
characters each; one text in ten has a non-ASCII word) with two AI judgments per item stored as
judge runs store them (`probabilities`, `confidence`, `signals`, and `raw` with both
presentation orders), and a few hundred in-app human judgments (two annotators on 300 items, so
those items are "started").
Rows are written with COPY, so seeding takes seconds.

Then each policy runs `routing_preview` (read + features + policy + writing the decisions; no
embeddings) in its own subprocess, so peak RSS (`ru_maxrss`) is that run's own. Phases are timed
by wrapping the functions every version of the service calls, without changing them:

- read     = `routing_pool` minus `routing.build_pool` (rows fetched and decoded, arrays built);
- features = `routing.build_pool` (lexical + judge features, bins, tags);
- policy   = the chooser's `route` + `ai_correct_probability` + `curve_from_ranking`;
- write    = the rest of `routing_preview`: decision rows built and written, the run updated.

Baseline: `--baseline-src DIR` runs the same measurement against another checkout of the code
(`git archive` of the commit before the speed-up), importing `annotate`, `routing` and
`config` from DIR, on the same data in the same run; `--check` then compares every decision
(item, route, score, rank, reason) of each policy's baseline run with the new run's.

    mkdir /tmp/hp-routing-base && git archive a5f2db1 | tar -x -C /tmp/hp-routing-base
    .venv/bin/python bench/routing_app.py --baseline-src /tmp/hp-routing-base \
        --baseline-commit a5f2db1 --check

`--items N` scales the data, `--policies random,learned` picks policies, `--reuse` runs on the
database a previous run left (`--keep` keeps it; by default it is dropped at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parent.parent
# bench/queue.py would shadow the standard library's `queue` (psycopg imports it): drop bench/.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/hybridpref_bench_routing"
SLUG = "bench-routing"
POLICIES = ("random", "uncertainty", "learned", "corrected")
HUMAN_ITEMS = 300
ANNOTATORS = 2
WORDS = [
    *[
        "the",
        "model",
        "explains",
        "why",
        "a",
        "careful",
        "answer",
        "weighs",
        "evidence",
        "before",
        "it",
        "reaches",
        "any",
    ],
    *[
        "conclusion",
        "about",
        "data",
        "training",
        "preference",
        "reward",
        "policy",
        "human",
        "judge",
        "response",
    ],
    *[
        "prompt",
        "quality",
        "list",
        "x2",
        "3.14",
        "don't",
        "e-mail",
        "step",
        "code",
        "python",
        "function",
        "returns",
    ],
]
# One text in ten gets a non-ASCII word (accents, curly quotes, CJK, Cyrillic, an emoji).
UNICODE_WORDS = ["café", "naïve", "“quoted”", "—", "数据", "разбор", "Straße", "😀"]


# --- Database and data --------------------------------------------------------------------------


def _admin(url: str) -> tuple[str, str]:
    parts = urlparse(url)
    return parts._replace(path="/postgres").geturl(), parts.path.lstrip("/")


def recreate_database(url: str) -> None:
    import psycopg

    admin, name = _admin(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    import psycopg

    admin, name = _admin(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def setup_django(url: str, src: Path | None = None) -> None:
    """Import the app from `src` (another checkout: the baseline) or from this repository."""
    root = src or REPO
    sys.path.insert(0, str(root))
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    import annotate

    found = Path(annotate.__file__).resolve().parent.parent
    if found != root.resolve():
        raise SystemExit(f"imported annotate from {found}, not {root}")


def _text(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    size = 0
    while size < chars:
        w = rng.choice(WORDS)
        words.append(w.capitalize() if rng.random() < 0.05 else w)
        size += len(w) + 1
    if rng.random() < 0.1:
        words.insert(rng.randrange(len(words)), rng.choice(UNICODE_WORDS))
    return " ".join(words) + rng.choice((".", "?", "!\n", "\n\n- item"))


def _copy(model: type, rows_iter, fixed: dict) -> int:
    """COPY rows (dicts of attname → value; JSON as text) into the model's table."""
    from django.db import connection

    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    defaults = {f.attname: fixed.get(f.attname, f.get_default()) for f in fields}
    json_fields = {f.attname for f in fields if f.get_internal_type() == "JSONField"}
    n = 0
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
    ):
        for row in rows_iter:
            out = []
            for f in fields:
                value = row[f.attname] if f.attname in row else defaults[f.attname]
                if f.attname in json_fields and value is not None:
                    value = json.dumps(value)
                out.append(value)
            copy.write_row(out)
            n += 1
    return n


def _order(rng: random.Random, p_first: float) -> dict:
    p_tie = round(rng.uniform(0.0, 0.2), 4)
    p_first = round(p_first * (1 - p_tie), 4)
    return {
        "p_first": p_first,
        "p_second": round(1 - p_tie - p_first, 4),
        "p_tie": p_tie,
        "verdict_mass": round(rng.uniform(0.7, 1.0), 4),
    }


def _ai_verdict(rng: random.Random) -> dict:
    """What `judge_batch_record` stores in `raw` for a pairwise verdict (PairVerdict.to_json)."""
    p = rng.random()
    ab = _order(rng, p)
    ba = _order(rng, min(1.0, max(0.0, 1 - p + rng.gauss(0, 0.15))))
    p_a = round((ab["p_first"] + ba["p_second"]) / 2, 4)
    p_b = round((ab["p_second"] + ba["p_first"]) / 2, 4)
    p_tie = round(1 - p_a - p_b, 4)
    top = sorted([p_a, p_b, p_tie], reverse=True)
    swap = round(abs(ab["p_first"] - ba["p_second"]), 4)
    strength = 2 if p_a > 0.75 else 1 if p_a > p_b else -2 if p_b > 0.75 else -1
    return {
        "kind": "pairwise",
        "aspect": "overall",
        "p_a": p_a,
        "p_b": p_b,
        "p_tie": p_tie,
        "strength": strength,
        "margin": round(abs(p_a - p_b), 4),
        "swap_disagreement": swap,
        "entropy": 1.0,
        "confidence": round((top[0] - top[1]) * (1 - swap), 4),
        "order_ab": ab,
        "order_ba": ba,
        "value": {"strength": strength},
    }


def seed(*, items: int) -> dict:
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from annotate.models import Assignment, Item, Judge, Judgment, Project

    call_command("migrate", verbosity=0)
    project = Project.objects.create(
        slug=SLUG, name="Routing benchmark", task_type="pairwise", num_responses=2
    )
    judges = [Judge.objects.create(name=f"bench-judge-{k}", backend="imported") for k in (1, 2)]
    project.judges.add(*judges)
    rng = random.Random(0)
    now = timezone.now()
    started = time.perf_counter()

    def item_rows():
        for n in range(items):
            if n % 5 == 0:
                prompt = [
                    {"role": "system", "content": _text(rng, 60)},
                    {"role": "user", "content": f"Question {n}: " + _text(rng, 240)},
                ]
            else:
                prompt = f"Question {n}: " + _text(rng, 300)
            yield {
                "external_id": str(n),
                "content_hash": f"{n:064x}",
                "prompt": prompt,
                "responses": [
                    {"model": rng.choice(("model-a", "model-b")), "text": _text(rng, 800)},
                    {"model": rng.choice(("model-c", "model-d")), "text": _text(rng, 800)},
                ],
                "route": "pending",
            }

    _copy(Item, item_rows(), {"project_id": project.pk, "created_at": now})
    item_ids = list(
        Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True)
    )

    def ai_rows():
        for item_id in item_ids:
            for judge in judges:
                data = _ai_verdict(rng)
                yield {
                    "item_id": item_id,
                    "aspect": "overall",
                    "kind": "ai",
                    "source": judge.name,
                    "task_type": "pairwise",
                    "value": data["value"],
                    "judge_id": judge.pk,
                    "prompt_version": "v1",
                    "probabilities": {"a": data["p_a"], "b": data["p_b"], "tie": data["p_tie"]},
                    "confidence": data["confidence"],
                    "signals": {
                        k: data[k] for k in ("margin", "swap_disagreement", "entropy", "confidence")
                    },
                    "raw": data,
                }

    ai_written = _copy(Judgment, ai_rows(), {"created_at": now})

    # In-app human judgments: ANNOTATORS annotators on HUMAN_ITEMS items spread over the pool.
    users = [
        get_user_model().objects.create_user(f"bench-annotator-{k}") for k in range(ANNOTATORS)
    ]
    humans = rng.sample(item_ids, min(HUMAN_ITEMS, len(item_ids)))
    assignments = Assignment.objects.bulk_create(
        Assignment(
            project=project,
            item_id=item_id,
            annotator=user,
            status=Assignment.Status.SUBMITTED,
            presentation_order=[0, 1],
            expires_at=now + timedelta(minutes=30),
            finished_at=now,
        )
        for item_id in humans
        for user in users
    )
    Judgment.objects.bulk_create(
        Judgment(
            item_id=a.item_id,
            aspect="overall",
            kind=Judgment.Kind.HUMAN,
            source=a.annotator.username,
            task_type="pairwise",
            value={"strength": rng.choice((2, 1, 0, -1, -2))},
            annotator=a.annotator,
            assignment=a,
            created_at=now,
        )
        for a in assignments
    )
    Item.objects.filter(pk__in=humans).update(human_done=ANNOTATORS)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {
        "items": items,
        "ai_judgments": ai_written,
        "human_judgments": len(assignments),
        "seed_seconds": round(time.perf_counter() - started, 1),
    }


# --- One measurement (in its own process) -------------------------------------------------------


def _timed(owner: object, name: str, bucket: dict, key: str) -> None:
    inner = getattr(owner, name)

    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            bucket[key] = bucket.get(key, 0.0) + time.perf_counter() - t

    setattr(owner, name, wrapper)


def measure(policy: str, budget: int) -> dict:
    import routing
    from annotate.models import Project
    from annotate.services import routing as service

    spent: dict[str, float] = {}
    _timed(service, "routing_pool", spent, "pool")
    _timed(routing, "build_pool", spent, "features")
    _timed(routing, "ai_correct_probability", spent, "policy")
    _timed(routing, "curve_from_ranking", spent, "policy")
    make_policy = routing.make_policy

    def timed_policy(*args, **kwargs):
        chooser = make_policy(*args, **kwargs)
        _timed(chooser, "route", spent, "policy")
        return chooser

    routing.make_policy = timed_policy
    project = Project.objects.get(slug=SLUG)
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load = os.getloadavg()[0]
    t = time.perf_counter()
    run = service.routing_preview(project=project, policy=policy, budget=budget, seed=0)
    total = time.perf_counter() - t
    return {
        "policy": policy,
        "run_id": run.pk,
        "human_items": run.human_items,
        "total": total,
        "read": spent["pool"] - spent["features"],
        "features": spent["features"],
        "policy_s": spent.get("policy", 0.0),
        "write": total - spent["pool"] - spent.get("policy", 0.0),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_at_start_mb": rss_start,
        "load_start": load,
        "load_end": os.getloadavg()[0],
    }


def _run_child(url: str, src: Path | None, policy: str, budget: int) -> dict:
    cmd = [sys.executable, __file__, "--child", policy, "--db", url, "--budget", str(budget)]
    if src is not None:
        cmd += ["--src", str(src)]
    # cwd = the code under test: Celery puts the working directory first on sys.path.
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=src or REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _git_commit(path: Path) -> str:
    out = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return out.stdout.strip() + ("+dirty" if dirty else "")


def compare(baseline_run: int, new_run: int) -> dict:
    """Every decision of the two runs, item by item: route, score, rank and reason equal?"""
    from annotate.models import RoutingDecision

    fields = ("item_id", "route", "score", "rank", "reason")
    old = list(
        RoutingDecision.objects.filter(run_id=baseline_run).order_by("item_id").values_list(*fields)
    )
    new = list(
        RoutingDecision.objects.filter(run_id=new_run).order_by("item_id").values_list(*fields)
    )
    differ = sum(1 for a, b in zip(old, new, strict=False) if a != b) + abs(len(old) - len(new))
    return {"decisions": len(new), "differ": differ}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=DEFAULT_DB)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--baseline-src", type=Path, help="a checkout of the code before")
    parser.add_argument("--baseline-commit", default="", help="what --baseline-src holds")
    parser.add_argument("--check", action="store_true", help="compare decisions with baseline")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--budget", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if urlparse(args.db).path.lstrip("/") in ("hybridpref", "hybridpref_ci", "hybridpref_me"):
        raise SystemExit("refusing to recreate a shared database")

    if args.child:
        setup_django(args.db, args.src)
        print(json.dumps(measure(args.child, args.budget)))
        return

    if not args.reuse:
        recreate_database(args.db)
    setup_django(args.db)
    from annotate.models import Item

    info = (
        {"items": Item.objects.filter(project__slug=SLUG).count(), "seed_seconds": 0}
        if args.reuse
        else seed(items=args.items)
    )
    print(f"# data: {json.dumps(info)}", flush=True)
    n = info["items"]
    budget = n // 5  # judgments, overlap 1: a fifth of the items go to humans
    policies = [p for p in args.policies.split(",") if p]
    sides = [("after", None, _git_commit(REPO))]
    if args.baseline_src:
        label = args.baseline_commit or _git_commit(args.baseline_src)
        sides.insert(0, ("before", args.baseline_src, label))
    results: dict[str, dict[str, dict]] = {}
    print(f"# items {n}, budget {budget} judgments, cpus {os.cpu_count()}")
    print(
        "| policy | code | commit | total s | read s | features s | policy s | write s "
        "| peak RSS MB | load start/end |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    for policy in policies:
        for side, src, commit in sides:
            r = _run_child(args.db, src, policy, budget)
            results.setdefault(policy, {})[side] = r
            print(
                f"| {policy} | {side} | {commit} | {r['total']:.2f} | {r['read']:.2f} "
                f"| {r['features']:.2f} | {r['policy_s']:.2f} | {r['write']:.2f} "
                f"| {r['peak_rss_mb']:.0f} | {r['load_start']:.2f}/{r['load_end']:.2f} |",
                flush=True,
            )
    if args.check and args.baseline_src:
        bad = 0
        for policy, by_side in results.items():
            c = compare(by_side["before"]["run_id"], by_side["after"]["run_id"])
            bad += c["differ"]
            print(f"# check {policy}: {c['decisions']} decisions, {c['differ']} differ")
        if bad:
            raise SystemExit("decisions differ from the baseline")
    if not args.keep:
        from django.db import connections

        connections.close_all()
        drop_database(args.db)


if __name__ == "__main__":
    main()
