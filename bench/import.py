"""Import benchmark: items/s and peak memory of `items_import` on SQLite and PostgreSQL.

    .venv/bin/python bench/import.py                 # 25k, 50k, 100k items; both databases
    .venv/bin/python bench/import.py --sizes 25000 --no-postgres
    .venv/bin/python bench/import.py --sizes 100000 --no-sqlite --no-baselines --profile /tmp/prof

Generates JSONL files of K=2 items of realistic size (prompt ~300 characters, responses ~800
each, text cut from a seeded random word stream so no two items repeat), then imports each file
through the real service in a fresh subprocess, so the peak RSS (`ru_maxrss`) belongs to that one
import. Each measurement starts from a freshly migrated database: a copy of a migrated SQLite
file, or a PostgreSQL database `hybridpref_bench_import` cloned from a migrated template (both are
created and dropped here; DATABASE_URL_BENCH_ADMIN overrides the server,
default postgres://postgres@127.0.0.1:5432/postgres).

Besides items/s and memory, each row gives the CPU time per item of the importing process (all its
threads) and of its PostgreSQL backend (psutil on `pg_backend_pid()`; the server runs on this
machine), the WAL written per item (`pg_current_wal_lsn()` before and after: the whole server's,
so other databases' writes count too) and the load average at the end: on a shared machine,
wall-clock rates are only comparable within one run, CPU per item across runs.

Baselines, measured in the same run:
- naive: one `Item.objects.create()` per row inside one transaction (what a hand-written import
  loop does), on a 5,000-item sample;
- load-all: reading the 100k file into a list of dicts before writing anything (the memory a
  non-streaming importer needs before its first INSERT), peak RSS only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("DATABASE_URL_BENCH_ADMIN", "postgres://postgres@127.0.0.1:5432/postgres")
PG_BENCH_DB = "hybridpref_bench_import"  # other benchmarks use hybridpref_bench
PG_TEMPLATE_DB = "hybridpref_bench_import_template"
NAIVE_SAMPLE = 5000


# --- Data ---------------------------------------------------------------------------------------


def generate(path: Path, n: int, seed: int = 0) -> None:
    """n items, K=2, texts cut at random offsets from a 4 MB stream of random words."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(20000)]
    stream = " ".join(rng.choice(vocab) for _ in range(700_000))
    models = ["llama-3-8b-instruct", "mistral-7b-instruct", "qwen2-7b-instruct", "gemma-2-9b-it"]

    def text(size: int) -> str:
        start = rng.randrange(0, len(stream) - 2 * size)
        return stream[start : start + rng.randint(size * 3 // 4, size * 5 // 4)].strip()

    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            a, b = rng.sample(models, 2)
            row = {
                "id": f"bench-{i}",
                "prompt": text(300),
                "responses": [{"model": a, "text": text(800)}, {"model": b, "text": text(800)}],
                "metadata": {"source": "bench", "n": i},
            }
            out.write(json.dumps(row) + "\n")


# --- Databases ----------------------------------------------------------------------------------


def pg_url(db: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + db


def pg_admin(*statements: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN.replace("postgres://", "postgresql://"), autocommit=True) as c:
        for sql in statements:
            c.execute(sql)


def migrate(url: str, var_dir: Path) -> None:
    env = {**os.environ, "DATABASE_URL": url, "HYBRIDPREF_VAR_DIR": str(var_dir)}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env, check=True
    )


def fresh_database(kind: str, work: Path) -> str:
    """A freshly migrated, empty database for one measurement."""
    if kind == "sqlite":
        target = work / "bench.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        shutil.copy(work / "template.sqlite3", target)
        return f"sqlite:///{target}"
    pg_admin(
        f"DROP DATABASE IF EXISTS {PG_BENCH_DB}",
        f"CREATE DATABASE {PG_BENCH_DB} TEMPLATE {PG_TEMPLATE_DB}",
    )
    return pg_url(PG_BENCH_DB)


# --- One measurement, in a child process ------------------------------------------------------


def rss_now_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def child(mode: str, path: str, limit: int | None, profile: str | None) -> dict[str, Any]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(REPO))
    django.setup()
    from django.db import connection, transaction

    from annotate import records
    from annotate.models import Item, Project
    from annotate.services.imports import items_import

    project = Project.objects.create(slug="bench", name="Bench")
    connection.ensure_connection()
    server = _ServerMeter(connection)
    rss_before = rss_now_kib()
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    if mode == "service" and profile:
        import cProfile

        with cProfile.Profile() as prof:
            result = items_import(project=project, path=path)
        prof.dump_stats(profile)
        count = result.created
    elif mode == "service":
        result = items_import(project=project, path=path)
        count = result.created
    elif mode == "naive":
        count = 0
        with transaction.atomic(), open(path, encoding="utf-8") as rows:
            for line in rows:
                data = json.loads(line)
                Item.objects.create(
                    project=project,
                    external_id=data["id"],
                    content_hash=records.hash_content(data["prompt"], data["responses"]),
                    prompt=data["prompt"],
                    responses=data["responses"],
                    metadata=data["metadata"],
                )
                count += 1
                if limit and count >= limit:
                    break
    else:  # load-all: memory only
        with open(path, encoding="utf-8") as rows:
            loaded = [json.loads(line) for line in rows]
        count = len(loaded)
    seconds = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_before
    server_cpu, wal_bytes = server.read()
    assert mode == "load-all" or Item.objects.filter(project=project).count() == count
    return {
        "count": count,
        "seconds": seconds,
        "cpu_s": cpu,
        "server_cpu_s": server_cpu,
        "wal_bytes": wal_bytes,
        "load": os.getloadavg()[0],
        "rss_before_mib": rss_before / 1024,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _ServerMeter:
    """CPU seconds of this connection's PostgreSQL backend process (psutil on its pid) and WAL
    bytes written, between construction and `read()`. The backend is on this machine, so its CPU
    is the server's share of the two cores. Zeros on SQLite (it runs inside this process)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.process = None
        self.cpu = 0.0
        self.lsn = None
        if connection.vendor != "postgresql":
            return
        import psutil

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid(), pg_current_wal_lsn()")
            pid, self.lsn = cursor.fetchone()
        self.process = psutil.Process(pid)
        times = self.process.cpu_times()
        self.cpu = times.user + times.system

    def read(self) -> tuple[float, int]:
        if self.process is None:
            return 0.0, 0
        times = self.process.cpu_times()
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", [self.lsn])
            (wal,) = cursor.fetchone()
        return times.user + times.system - self.cpu, int(wal)


def measure(
    mode: str,
    kind: str,
    path: Path,
    work: Path,
    limit: int | None = None,
    profile: str | None = None,
) -> dict:
    url = fresh_database(kind, work)
    env = {**os.environ, "DATABASE_URL": url, "HYBRIDPREF_VAR_DIR": str(work / "var")}
    args = [sys.executable, __file__, "--child", mode, str(path)]
    if limit:
        args += ["--limit", str(limit)]
    if profile:
        args += ["--profile", profile]
    out = subprocess.run(args, env=env, cwd=REPO, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- Main ---------------------------------------------------------------------------------------


def main() -> None:
    # Run as a script, this folder is sys.path[0]; its other benchmarks (queue.py) would shadow
    # standard modules of the same name.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="25000,50000,100000")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument(
        "--no-baselines", action="store_true", help="skip the naive and load-all rows"
    )
    parser.add_argument(
        "--profile",
        metavar="FOLDER",
        help="also write a cProfile of each items_import run here (slower; not timed; the calling"
        " thread only: rows are read and encoded in a second thread)",
    )
    parser.add_argument("--child", nargs=2, metavar=("MODE", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.limit, args.profile)))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = [
        kind
        for kind, skip in (("sqlite", args.no_sqlite), ("postgresql", args.no_postgres))
        if not skip
    ]
    work = Path(tempfile.mkdtemp(prefix="hybridpref-bench-"))
    rows: list[tuple[str, ...]] = []
    try:
        files = {}
        for n in sizes:
            files[n] = work / f"items-{n}.jsonl"
            generate(files[n], n)
        migrate(f"sqlite:///{work / 'template.sqlite3'}", work / "var")
        if "postgresql" in kinds:
            pg_admin(
                f"DROP DATABASE IF EXISTS {PG_BENCH_DB}",
                f"DROP DATABASE IF EXISTS {PG_TEMPLATE_DB}",
                f"CREATE DATABASE {PG_TEMPLATE_DB}",
            )
            migrate(pg_url(PG_TEMPLATE_DB), work / "var")
        largest = files[max(sizes)]
        for kind in kinds:
            for n in sizes:
                r = measure("service", kind, files[n], work)
                rows.append(_row(kind, "items_import", files[n], r))
                print(" | ".join(rows[-1]), flush=True)
                if args.profile:
                    target = Path(args.profile) / f"import-{kind}-{n}.prof"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    measure("service", kind, files[n], work, profile=str(target.resolve()))
                    print(f"profile: {target}", flush=True)
            if not args.no_baselines:
                r = measure("naive", kind, largest, work, limit=NAIVE_SAMPLE)
                rows.append(_row(kind, "naive create() per row", largest, r))
                print(" | ".join(rows[-1]), flush=True)
        if not args.no_baselines:
            r = measure("load-all", "sqlite", largest, work)
            rows.append(_row("-", "load-all (json.loads into a list)", largest, r, speed=False))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if "postgresql" in kinds:
            pg_admin(
                f"DROP DATABASE IF EXISTS {PG_BENCH_DB}",
                f"DROP DATABASE IF EXISTS {PG_TEMPLATE_DB}",
            )
    header = (
        "database",
        "method",
        "items",
        "file MiB",
        "seconds",
        "items/s",
        "RSS before MiB",
        "peak RSS MiB",
        "growth MiB",
        "client CPU µs/item",
        "server CPU µs/item",
        "WAL bytes/item",
        "load avg",
    )
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\ncpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")


def _row(kind: str, method: str, path: Path, r: dict, *, speed: bool = True) -> tuple[str, ...]:
    return (
        kind,
        method,
        f"{r['count']:,}",
        f"{path.stat().st_size / 2**20:.0f}",
        f"{r['seconds']:.1f}" if speed else "-",
        f"{r['count'] / r['seconds']:,.0f}" if speed else "-",
        f"{r['rss_before_mib']:.0f}",
        f"{r['peak_rss_mib']:.0f}",
        f"{r['peak_rss_mib'] - r['rss_before_mib']:.0f}",
        f"{r['cpu_s'] / r['count'] * 1e6:,.0f}" if speed else "-",
        f"{r['server_cpu_s'] / r['count'] * 1e6:,.0f}" if speed and r["server_cpu_s"] else "-",
        f"{r['wal_bytes'] / r['count']:,.0f}" if speed and r["wal_bytes"] else "-",
        f"{r['load']:.1f}",
    )


if __name__ == "__main__":
    main()
