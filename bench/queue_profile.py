"""One annotator's next → submit cycles in-process, no HTTP: CPU ms and SQL statements per request.

For working on the queue on a shared machine, where wall-clock figures mean little: it reports
process CPU time (this process runs Django; PostgreSQL's backend CPU is counted separately) and
the SQL statements of one next and one submit. It seeds its own database the first time (same
data as bench/queue.py) and reuses it afterwards unless --reseed.

    .venv/bin/python bench/queue_profile.py --cycles 300            # CPU ms and statements
    .venv/bin/python bench/queue_profile.py --cycles 300 --profile  # + cProfile's top functions
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import json
import os
import pstats
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/hybridpref_bench_queue_profile"


def _bench_queue() -> object:
    spec = importlib.util.spec_from_file_location("bench_queue", REPO / "bench" / "queue.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_queue"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _exists(url: str) -> bool:
    import psycopg

    parts = urlparse(url)
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [parts.path.lstrip("/")]
        ).fetchone()
    return row is not None


def _backend_cpu(database: str) -> float:
    import psutil

    total = 0.0
    for p in psutil.process_iter(["name", "cmdline"]):
        if p.info["name"] == "postgres" and f" {database} " in " ".join(p.info["cmdline"] or []):
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
    return total


@contextmanager
def _statements() -> Iterator[list[str]]:
    """Every statement sent through psycopg, and a "COMMIT" per commit: Django's
    CaptureQueriesContext sees only the ORM's, not the prepared ones of annotate/fastsql.py.
    (A transaction's BEGIN goes out with its first statement, so it is not counted apart.)"""
    import psycopg

    sent: list[str] = []
    execute, commit = psycopg.Cursor.execute, psycopg.Connection.commit

    def counted_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(" ".join(str(query).split()))
        return execute(self, query, *args, **kwargs)

    def counted_commit(self: Any) -> None:
        sent.append("COMMIT")
        commit(self)

    psycopg.Cursor.execute, psycopg.Connection.commit = counted_execute, counted_commit
    try:
        yield sent
    finally:
        psycopg.Cursor.execute, psycopg.Connection.commit = execute, commit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--cycles", type=int, default=300)
    parser.add_argument("--annotators", type=int, default=4, help="cycles rotate over them")
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--show-sql", action="store_true")
    args = parser.parse_args()
    if "bench" not in urlparse(args.database_url).path:
        raise SystemExit("the database may be dropped: its name must contain 'bench'")

    bench = _bench_queue()
    fresh = args.reseed or not _exists(args.database_url)
    if fresh:
        bench.recreate_database(args.database_url)
    os.environ.update(
        DEBUG="0",
        SECRET_KEY="bench-only-" + "x" * 50,
        ALLOWED_HOSTS="testserver",
        SECURE_SSL_REDIRECT="0",
        DB_CONN_MAX_AGE="600",
    )
    bench.setup_django(args.database_url)
    from django.core.management import call_command
    from django.test import Client
    from rest_framework.authtoken.models import Token

    if fresh:
        bench.seed(items=args.items, annotators=max(32, args.annotators), overlap=2)
    else:
        call_command("migrate", verbosity=0)
    keys = list(Token.objects.order_by("user__username").values_list("key", flat=True))
    clients = [
        Client(HTTP_AUTHORIZATION=f"Token {k}", HTTP_ACCEPT="application/json")
        for k in keys[: args.annotators]
    ]
    base = f"/api/projects/{bench.SLUG}/assignments"

    def cycle(client: Client, strength: int) -> tuple[int, int]:
        r = client.post(f"{base}/next/", content_type="application/json")
        if r.status_code != 200:
            raise SystemExit(f"next {r.status_code}: {r.content[:300]!r}")
        body = json.loads(r.content)
        s = client.post(
            f"{base}/{body['id']}/submit/",
            {"verdicts": {"overall": {"strength": strength}}},
            content_type="application/json",
        )
        if s.status_code != 200:
            raise SystemExit(f"submit {s.status_code}: {s.content[:300]!r}")
        return r.status_code, s.status_code

    for c in clients:  # warm up: imports, connection, caches
        cycle(c, 1)
    # The statements of one next and one submit.
    c = clients[0]
    with _statements() as next_q:
        r = c.post(f"{base}/next/", content_type="application/json")
    assignment_id = json.loads(r.content)["id"]
    with _statements() as submit_q:
        c.post(
            f"{base}/{assignment_id}/submit/",
            {"verdicts": {"overall": {"strength": 1}}},
            content_type="application/json",
        )
    print(f"next: {len(next_q)} statements; submit: {len(submit_q)} statements (commits included)")
    if args.show_sql:
        for name, captured in (("next", next_q), ("submit", submit_q)):
            for sql in captured:
                print(f"  [{name}] {sql[:200]}")

    database = urlparse(args.database_url).path.lstrip("/")
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    pg_before = _backend_cpu(database)
    cpu_before = time.process_time()
    wall_before = time.perf_counter()
    if profiler:
        profiler.enable()
    for i in range(args.cycles):
        cycle(clients[i % len(clients)], (i % 5) - 2)
    if profiler:
        profiler.disable()
    cpu = time.process_time() - cpu_before
    wall = time.perf_counter() - wall_before
    pg = _backend_cpu(database) - pg_before
    print(
        f"{args.cycles} cycles: Django CPU {1000 * cpu / args.cycles:.2f} ms/cycle, "
        f"PostgreSQL CPU {1000 * pg / args.cycles:.2f} ms/cycle, "
        f"wall {1000 * wall / args.cycles:.2f} ms/cycle; load average {os.getloadavg()[0]:.1f}"
    )
    if profiler:
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
