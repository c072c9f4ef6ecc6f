"""Human queue under load: next → submit cycles over real HTTP against gunicorn on PostgreSQL.

Builds a fresh database (`hybridpref_bench_queue`, dropped and re-created), a pairwise project of
100,000 items (overlap 2, 1% gold mixed in at 5%), one user with an API token per simulated
annotator, then starts gunicorn on 127.0.0.1 (DEBUG=0, config/gunicorn.py) and drives it from threads in this
process, each annotator its own keep-alive connection and token:

- saturation: N = 1, 8, 32 annotators with no pause;
- realistic: 200 annotators who each think for 2 s between "next" and "submit".

After every run it checks the database: no regular item past `overlap` (counted from the rows,
not the counters), counters equal to the rows, no annotator given an item twice, no judgment
doubled. The load generator shares the machine with gunicorn and PostgreSQL, so the numbers
are for the whole system on this box, client included.

    .venv/bin/python bench/queue.py --items 100000 --seconds 20 --realistic-seconds 40
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parent.parent
# This file is called queue.py and Python put its folder first on sys.path, where it would shadow
# the standard library's `queue` (psycopg and Django import it, later). Swap it for the repo.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))
SLUG = "bench-queue"
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/hybridpref_bench_queue"


# --- Database and data --------------------------------------------------------------------------


def recreate_database(url: str) -> None:
    import psycopg

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def seed(*, items: int, annotators: int, overlap: int) -> list[str]:
    """The project, its items and one token per annotator; returns the tokens."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from annotate.models import Item, Membership, Project

    call_command("migrate", verbosity=0)
    project = Project.objects.create(
        slug=SLUG,
        name="Queue benchmark",
        task_type="pairwise",
        num_responses=2,
        aspects=["overall"],
        overlap=overlap,
        gold_rate=0.05,
        guidelines="Prefer the correct answer.",
    )
    start = time.perf_counter()
    batch = 5000
    gold_every = 100  # 1% of items are gold
    for offset in range(0, items, batch):
        Item.objects.bulk_create(
            Item(
                project=project,
                external_id=f"q{i}",
                content_hash=f"{i:064x}",
                prompt=f"Question {i}: which answer is better, and why?",
                responses=[
                    {"model": "m-a", "text": f"Answer A to question {i}, with **Markdown**."},
                    {"model": "m-b", "text": f"Answer B to question {i}:\n\n- a list\n- of two"},
                ],
                is_gold=i % gold_every == 0,
                gold_label={"strength": 1} if i % gold_every == 0 else None,
            )
            for i in range(offset, min(items, offset + batch))
        )
    print(f"seeded {items} items in {time.perf_counter() - start:.1f}s", flush=True)
    User = get_user_model()
    users = User.objects.bulk_create(
        User(username=f"annotator{i:03d}", password="!") for i in range(annotators)
    )
    Membership.objects.bulk_create(
        Membership(project=project, user=u, role=Membership.Role.ANNOTATOR) for u in users
    )
    tokens = Token.objects.bulk_create(Token(user=u, key=Token.generate_key()) for u in users)
    with __import__("django.db").db.connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return [t.key for t in tokens]


def check(*, overlap: int) -> dict[str, int]:
    """Invariants, counted from the rows themselves."""
    from django.db.models import Count, F, Q

    from annotate.models import Assignment, Item, Judgment, Project

    project = Project.objects.get(slug=SLUG)
    held = [Assignment.Status.ACTIVE, Assignment.Status.SUBMITTED]
    assignments = Assignment.objects.filter(project=project)
    items = Item.objects.filter(project=project).annotate(
        held=Count("assignments", filter=Q(assignments__status__in=held)),
        submitted=Count("assignments", filter=Q(assignments__status="submitted")),
    )
    return {
        "past_overlap": items.filter(is_gold=False, held__gt=overlap).count(),
        "counter_mismatch": items.exclude(human_assigned=F("held")).count()
        + items.exclude(human_done=F("submitted")).count(),
        "same_item_twice": assignments.exclude(status="expired")
        .values("item", "annotator")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count(),
        "doubled_judgments": Judgment.objects.filter(item__project=project, kind="human")
        .values("assignment", "aspect")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count(),
        "submitted_without_judgment": assignments.filter(status="submitted")
        .annotate(j=Count("judgments"))
        .filter(j=0)
        .count(),
    }


# --- Server -------------------------------------------------------------------------------------


def start_gunicorn(*, url: str, port: int, workers: int, threads: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-" + "x" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "DB_CONN_MAX_AGE": "600",
        "LOG_LEVEL": "WARNING",
    }
    # Production's settings file (gthread, keep-alive, preload); the command line overrides it.
    command = [
        str(REPO / ".venv/bin/gunicorn"),
        "--config=config/gunicorn.py",
        "config.wsgi:application",
        f"--bind=127.0.0.1:{port}",
        f"--workers={workers}",
        f"--threads={threads}",
        "--log-level=warning",
    ]
    server = subprocess.Popen(command, cwd=REPO, env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            # Any answer will do (401 here): the API renders no template, so it needs no
            # collectstatic manifest, which DEBUG=0 would want for the HTML pages.
            conn.request("GET", "/api/projects/")
            conn.getresponse().read()
            return server
        except OSError:
            time.sleep(0.3)
    server.terminate()
    raise SystemExit("gunicorn did not come up in 60 s")


# --- CPU accounting -------------------------------------------------------------------------------


def cpu_seconds(server: subprocess.Popen, database: str) -> dict[str, dict[int, float]]:
    """CPU time used so far, per process: gunicorn (master and workers), the PostgreSQL backends
    serving the benchmark database (others' sessions share the server), and this client.

    Latency on a shared 2-core box depends on whatever else runs; CPU per cycle much less so,
    and 2 cores divided by it bounds the cycles/s this box could give.
    """
    import psutil

    def times(processes: Iterable[Any]) -> dict[int, float]:
        found = {}
        for p in processes:
            try:
                t = p.cpu_times()
                found[p.pid] = t.user + t.system
            except psutil.Error:
                pass
        return found

    master = psutil.Process(server.pid)
    backends = []
    for p in psutil.process_iter(["name", "cmdline"]):
        if p.info["name"] == "postgres" and f" {database} " in " ".join(p.info["cmdline"] or []):
            backends.append(p)
    return {
        "server": times([master, *master.children(recursive=True)]),
        "postgres": times(backends),
        "client": times([psutil.Process()]),
    }


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    # A process that started during the run counts from zero; one that ended is not counted.
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


# --- Load ---------------------------------------------------------------------------------------


@dataclass
class Stats:
    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    cycles: int = 0
    errors: list[str] = field(default_factory=list)
    served: list[tuple[int, str]] = field(default_factory=list)  # (annotator, external id)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Annotator:
    """One annotator: its own token and its own keep-alive HTTP connection."""

    def __init__(self, index: int, token: str, port: int) -> None:
        self.index = index
        self.port = port
        self.headers = {
            "Authorization": f"Token {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, path: str, body: dict | None = None) -> tuple[int, Any, float]:
        payload = json.dumps(body or {})
        start = time.perf_counter()
        try:
            self.conn.request("POST", path, body=payload, headers=self.headers)
            response = self.conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            # A dropped keep-alive connection: reconnect once, as a browser would.
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.conn.request("POST", path, body=payload, headers=self.headers)
            response = self.conn.getresponse()
            raw = response.read()
        elapsed = (time.perf_counter() - start) * 1000
        return response.status, (json.loads(raw) if raw else None), elapsed


def annotate_until(
    who: Annotator, *, stop_at: float, max_cycles: int, pause: float, stats: Stats
) -> None:
    rng = random.Random(who.index)
    base = f"/api/projects/{SLUG}/assignments"
    cycles = 0
    try:
        while time.perf_counter() < stop_at and cycles < max_cycles:
            status, body, next_ms = who.post(f"{base}/next/")
            if status == 204:
                break
            if status != 200:
                with stats.lock:
                    stats.errors.append(f"next {status}: {str(body)[:200]}")
                break
            if pause:
                time.sleep(pause * rng.uniform(0.8, 1.2))  # reading and judging
            verdict = {"verdicts": {"overall": {"strength": rng.choice([-2, -1, 0, 1, 2])}}}
            status, sbody, submit_ms = who.post(f"{base}/{body['id']}/submit/", verdict)
            with stats.lock:
                stats.next_ms.append(next_ms)
                stats.served.append((who.index, body["external_id"]))
                if status == 200:
                    stats.submit_ms.append(submit_ms)
                    stats.cycles += 1
                else:
                    stats.errors.append(f"submit {status}: {str(sbody)[:200]}")
            cycles += 1
    except Exception as exc:
        with stats.lock:
            stats.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        who.conn.close()


def run(*, tokens: list[str], n: int, port: int, seconds: float, pause: float) -> dict[str, Any]:
    stats = Stats()
    # Bounded in time and in count: at most 200 cycles/s per annotator could ever be reached.
    max_cycles = int(seconds * 200) if not pause else int(seconds / pause) + 2
    annotators = [Annotator(i, tokens[i], port) for i in range(n)]
    start = time.perf_counter()
    stop_at = start + seconds
    threads = []
    for a in annotators:
        t = threading.Thread(
            target=annotate_until,
            args=(a,),
            kwargs={"stop_at": stop_at, "max_cycles": max_cycles, "pause": pause, "stats": stats},
        )
        threads.append(t)
        t.start()
        if pause:
            time.sleep(pause / n)  # people do not all start in the same millisecond
    for t in threads:
        t.join(timeout=seconds + 120)
    wall = time.perf_counter() - start
    served_twice = len(stats.served) - len(set(stats.served))
    return {
        "annotators": n,
        "pause_s": pause,
        "seconds": round(wall, 1),
        "cycles": stats.cycles,
        "cycles_per_s": round(stats.cycles / wall, 1),
        "next": summarise(stats.next_ms),
        "submit": summarise(stats.submit_ms),
        "errors": len(stats.errors),
        "error_samples": stats.errors[:5],
        "served_twice_client_side": served_twice,
    }


def summarise(values: Iterable[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}

    def q(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 1)

    return {"p50": q(0.50), "p95": q(0.95), "p99": q(0.99)}


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| run | annotators | pause | cycles | cycles/s | next p50 / p95 / p99 ms "
        "| submit p50 / p95 / p99 ms | errors | overlap violations "
        "| CPU ms/cycle server + PG + client | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        n, s, cpu = r["next"], r["submit"], r["cpu_ms_per_cycle"]
        violations = sum(r["check"].values()) + r["served_twice_client_side"]
        lines.append(
            f"| {r['name']} | {r['annotators']} | {r['pause_s']:g} s | {r['cycles']} "
            f"| {r['cycles_per_s']} | {n['p50']} / {n['p95']} / {n['p99']} "
            f"| {s['p50']} / {s['p95']} / {s['p99']} | {r['errors']} | {violations} "
            f"| {cpu['server']} + {cpu['postgres']} + {cpu['client']} "
            f"| {r['load_avg'][0]}→{r['load_avg'][1]} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--overlap", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0, help="per saturation run")
    parser.add_argument("--realistic-seconds", type=float, default=40.0)
    parser.add_argument("--saturation", default="1,8,32", help="annotator counts, no pause")
    parser.add_argument("--realistic", type=int, default=200, help="annotators pausing 2 s")
    parser.add_argument("--pause", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--database-url", default=DEFAULT_DB, help="dropped and re-created")
    parser.add_argument("--json", type=Path, default=REPO / "bench/out/queue.json")
    args = parser.parse_args()

    # Its own database, never DATABASE_URL's: the benchmark drops and re-creates it.
    url = args.database_url
    if not url.startswith("postgres"):
        raise SystemExit("the queue benchmark runs on PostgreSQL: --database-url postgres://…")
    if urlparse(url).hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit("the benchmark only talks to 127.0.0.1")
    if "bench" not in urlparse(url).path:
        raise SystemExit("the database is dropped first: its name must contain 'bench'")
    recreate_database(url)
    setup_django(url)
    counts = [int(c) for c in args.saturation.split(",") if c]
    tokens = seed(items=args.items, annotators=max([*counts, args.realistic]), overlap=args.overlap)
    from django.db import connection

    connection.close()  # the server's connections, not ours, should be the busy ones

    database = urlparse(url).path.lstrip("/")
    server = start_gunicorn(url=url, port=args.port, workers=args.workers, threads=args.threads)
    results = []
    autovacuum = "?"
    try:
        # Warm up every worker (first requests import views, load the URLconf, open a database
        # connection and prepare its statements): not what a server that has been up a while does.
        run(tokens=tokens, n=min(len(tokens), 4 * args.workers), port=args.port, seconds=3, pause=0)
        # Statistics on the assignments the warm-up made, as autovacuum would gather after the
        # first 50 rows: the seed ANALYZEd an empty table, and this server may run with
        # autovacuum off (CI's PostgreSQL does), which left the planner guessing for the whole
        # benchmark. Nothing is vacuumed: dead rows pile up during the runs as they would.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE annotate_assignment")
            cursor.execute("SHOW autovacuum")
            autovacuum = cursor.fetchone()[0]
        connection.close()
        plan = [(f"saturation N={c}", c, 0.0, args.seconds) for c in counts]
        if args.realistic:
            plan.append(
                (
                    f"realistic N={args.realistic}",
                    args.realistic,
                    args.pause,
                    args.realistic_seconds,
                )
            )
        for name, n, pause, seconds in plan:
            before = cpu_seconds(server, database)
            load_before = os.getloadavg()[0]
            result = run(tokens=tokens, n=n, port=args.port, seconds=seconds, pause=pause)
            after = cpu_seconds(server, database)
            result["name"] = name
            result["cpu_ms_per_cycle"] = {
                k: round(1000 * cpu_delta(before[k], after[k]) / max(1, result["cycles"]), 1)
                for k in after
            }
            # The 1-minute load average around the run: how much else wanted the 2 cores.
            result["load_avg"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
            result["check"] = check(overlap=args.overlap)
            connection.close()
            results.append(result)
            print(json.dumps(result), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print()
    print(
        f"gunicorn gthread {args.workers} workers × {args.threads} threads; {args.items} items, "
        f"overlap {args.overlap}; {os.cpu_count()} CPUs shared by server, PostgreSQL and client; "
        f"PostgreSQL autovacuum {autovacuum}"
    )
    print(table(results))


if __name__ == "__main__":
    main()
