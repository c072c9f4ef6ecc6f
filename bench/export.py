"""Export throughput and memory: 1,000,000 judgments on PostgreSQL through the real export service.

Builds a scratch database (`hybridpref_bench_export`, dropped and re-created), a pairwise project
of 200,000 items (prompt ~150 characters, two responses ~400 characters each) with five judgments
per item: three imported human annotators and two AI judges (probabilities, confidence,
signals). Rows are written with COPY, so generating the data takes seconds, not the benchmark.

Then each measurement runs in its own subprocess (fresh interpreter, so peak RSS is its own,
read from `ru_maxrss` at the end):

- `raw` shape → JSONL, and → Parquet: `export_create` + `export_claim` + `export_run`, exactly
  what the Celery task does; rows/s counts rows written per second of wall time.
- baseline "naive": the same rows as model instances loaded into a list (`select_related`),
  turned into dicts and written with one `json.dump` — the way exports are often written first.
- baseline "drf": the same, through a DRF ModelSerializer (`many=True`) then `json.dump`.
- `dpo` → Parquet from the 200,000 final labels (computed first, timed separately).

Reproduce (from the repository root; PostgreSQL on 127.0.0.1:5432, user postgres):

    .venv/bin/python bench/export.py --write-results

`--judgments N` scales the data set; `--baseline-rows N` caps the baselines (they hold every row
in memory; the default runs them on all rows). While iterating: `--keep` leaves the scratch
database, `--reuse` runs on it without seeding, `--runs raw:jsonl,raw:parquet` picks runs.

Every row of the table gives wall time, the CPU seconds of the export process and of its
PostgreSQL backend (the COPY path moves work there), rows per CPU-second of both, and the load
average at start and end: on a shared machine, compare CPU figures, not wall time.
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
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/hybridpref_bench_export"
SLUG = "bench-export"
RESULTS = REPO / "bench" / "RESULTS.md"
PER_ITEM = 5  # 3 humans + 2 AI judges
WORDS = [
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
    "prompt",
    "quality",
]


# --- Database and data --------------------------------------------------------------------------


def recreate_database(url: str) -> None:
    import psycopg

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    import psycopg

    parts = urlparse(url)
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}" WITH (FORCE)')


def setup_django(url: str, export_dir: str | None = None) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    if export_dir:
        from django.conf import settings

        settings.EXPORT_DIR = Path(export_dir)


def _text(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    size = 0
    while size < chars:
        w = rng.choice(WORDS)
        words.append(w)
        size += len(w) + 1
    return " ".join(words)


def _copy(table_model: type, rows_iter, fixed: dict) -> int:
    """COPY rows (dicts of attname → value; JSON as text) into the model's table."""
    from django.db import connection

    fields = [f for f in table_model._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    table = connection.ops.quote_name(table_model._meta.db_table)
    defaults = {
        f.attname: (fixed[f.attname] if f.attname in fixed else f.get_default()) for f in fields
    }
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


def seed(*, judgments: int) -> dict:
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from annotate.models import Item, Judge, Judgment, Project

    call_command("migrate", verbosity=0)
    items = judgments // PER_ITEM
    project = Project.objects.create(
        slug=SLUG,
        name="Export benchmark",
        task_type="pairwise",
        num_responses=2,
        aspects=["overall"],
    )
    judges = [Judge.objects.create(name=f"bench-judge-{n}", backend="imported") for n in (1, 2)]
    project.judges.add(*judges)
    rng = random.Random(0)
    now = timezone.now()
    started = time.perf_counter()

    def item_rows():
        for n in range(items):
            prompt = f"Question {n}: " + _text(rng, 140)
            responses = [
                {
                    "model": rng.choice(("model-a", "model-b", "model-c", "model-d")),
                    "text": _text(rng, 400),
                },
                {"model": rng.choice(("model-e", "model-f")), "text": _text(rng, 400)},
            ]
            yield {
                "external_id": str(n),
                "content_hash": f"{n:064x}",
                "prompt": prompt,
                "responses": responses,
                "metadata": {},
                "route": "human",
                "flags": {},
            }

    _copy(Item, item_rows(), {"project_id": project.pk, "created_at": now})
    item_ids = list(
        Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True)
    )

    def judgment_rows():
        for item_id in item_ids:
            truth = rng.choice((2, 1, -1, -2))
            for a in range(3):
                s = truth if rng.random() < 0.8 else rng.choice((2, 1, 0, -1, -2))
                yield {
                    "item_id": item_id,
                    "aspect": "overall",
                    "kind": "human",
                    "source": f"annotator{a + 1}",
                    "task_type": "pairwise",
                    "value": {"strength": s},
                    "external_annotator": f"annotator{a + 1}",
                    "rationale": "",
                    "confidence_label": "",
                    "time_spent_ms": rng.randint(3000, 90000),
                    "signals": {},
                }
            for judge in judges:
                p_a = rng.random()
                s = 2 if p_a > 0.8 else 1 if p_a > 0.5 else -1 if p_a > 0.2 else -2
                yield {
                    "item_id": item_id,
                    "aspect": "overall",
                    "kind": "ai",
                    "source": judge.name,
                    "task_type": "pairwise",
                    "value": {"strength": s},
                    "judge_id": judge.pk,
                    "prompt_version": "imported",
                    "external_annotator": "",
                    "rationale": "",
                    "confidence_label": "",
                    "probabilities": {"a": round(p_a, 4), "b": round(1 - p_a, 4), "tie": 0.0},
                    "confidence": round(max(p_a, 1 - p_a), 4),
                    "signals": {"margin": round(abs(2 * p_a - 1), 4)},
                }

    written = _copy(Judgment, judgment_rows(), {"created_at": now})
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {
        "items": items,
        "judgments": written,
        "seed_seconds": round(time.perf_counter() - started, 1),
    }


def reused() -> dict:
    from annotate.models import Item, Judgment

    items = Item.objects.filter(project__slug=SLUG).count()
    return {
        "items": items,
        "judgments": Judgment.objects.filter(item__project__slug=SLUG).count(),
        "seed_seconds": 0.0,
    }


# --- Measurements (each in its own process) -----------------------------------------------------


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure_service(shape: str, fmt: str) -> dict:
    from annotate.models import Project
    from annotate.services.exports import export_claim, export_create, export_run

    project = Project.objects.get(slug=SLUG)
    backend = _backend_pid()
    db_cpu = _proc_cpu_seconds(backend)
    rss_before = _peak_rss_mb()
    cpu = _cpu_seconds()
    load = os.getloadavg()[0]
    started = time.perf_counter()
    export = export_create(project=project, shape=shape, file_format=fmt, enqueue=False)
    export = export_run(export=export_claim(export_id=export.pk))
    seconds = time.perf_counter() - started
    db_cpu_after = _proc_cpu_seconds(backend)
    if export.status != "succeeded":
        raise SystemExit(f"export failed: {export.error}")
    size = sum(f["bytes"] for f in export.files)
    return {
        "rows": export.rows,
        "seconds": seconds,
        "peak_rss_mb": _peak_rss_mb(),
        "rss_at_start_mb": rss_before,
        "bytes": size,
        "cpu_seconds": _cpu_seconds() - cpu,
        # The COPY fast path moves the work into the PostgreSQL backend: count its CPU too.
        "db_cpu_seconds": (db_cpu_after - db_cpu)
        if db_cpu is not None and db_cpu_after is not None
        else None,
        "load_start": load,
        "load_end": os.getloadavg()[0],
    }


def _backend_pid() -> int | None:
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _proc_cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a local process (the PostgreSQL backend), None where unreadable."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _naive_rows(limit: int | None):
    from annotate.models import Judgment

    qs = (
        Judgment.objects.filter(item__project__slug=SLUG)
        .select_related("item", "judge")
        .order_by("pk")
    )
    return list(qs[:limit] if limit else qs)


def measure_naive(limit: int | None, out: str) -> dict:
    cpu = _cpu_seconds()
    started = time.perf_counter()
    rows = [
        {
            "id": j.pk,
            "item_id": j.item.external_id,
            "aspect": j.aspect,
            "kind": j.kind,
            "source": j.source,
            "annotator": j.external_annotator,
            "judge": j.judge.name if j.judge else None,
            "prompt_version": j.prompt_version,
            "task_type": j.task_type,
            "value": j.value,
            "probabilities": j.probabilities,
            "confidence": j.confidence,
            "signals": j.signals,
            "rationale": j.rationale,
            "confidence_label": j.confidence_label,
            "time_spent_ms": j.time_spent_ms,
            "created_at": j.created_at.isoformat(),
            "prompt": j.item.prompt_text,
            "responses": [r["text"] for r in j.item.responses],
            "models": j.item.model_names,
        }
        for j in _naive_rows(limit)
    ]
    with open(out, "w") as fh:
        json.dump(rows, fh)
    return {
        "rows": len(rows),
        "seconds": time.perf_counter() - started,
        "peak_rss_mb": _peak_rss_mb(),
        "bytes": os.path.getsize(out),
        "cpu_seconds": _cpu_seconds() - cpu,
    }


def measure_drf(limit: int | None, out: str) -> dict:
    from rest_framework import serializers

    from annotate.models import Judgment

    class JudgmentExport(serializers.ModelSerializer):
        item_id = serializers.CharField(source="item.external_id")
        judge = serializers.CharField(source="judge.name", default=None)
        prompt = serializers.CharField(source="item.prompt_text")
        models = serializers.ListField(source="item.model_names")

        class Meta:
            model = Judgment
            fields = [
                "id",
                "item_id",
                "aspect",
                "kind",
                "source",
                "external_annotator",
                "judge",
                "prompt_version",
                "task_type",
                "value",
                "probabilities",
                "confidence",
                "signals",
                "rationale",
                "confidence_label",
                "time_spent_ms",
                "created_at",
                "prompt",
                "models",
            ]

    cpu = _cpu_seconds()
    started = time.perf_counter()
    data = JudgmentExport(_naive_rows(limit), many=True).data
    with open(out, "w") as fh:
        json.dump(data, fh)
    return {
        "rows": len(data),
        "seconds": time.perf_counter() - started,
        "peak_rss_mb": _peak_rss_mb(),
        "bytes": os.path.getsize(out),
        "cpu_seconds": _cpu_seconds() - cpu,
    }


def measure_labels() -> dict:
    from annotate.models import Project
    from annotate.services.labels import final_labels_compute

    cpu = _cpu_seconds()
    started = time.perf_counter()
    summary = final_labels_compute(project=Project.objects.get(slug=SLUG))
    return {
        "rows": summary.total,
        "seconds": time.perf_counter() - started,
        "peak_rss_mb": _peak_rss_mb(),
        "cpu_seconds": _cpu_seconds() - cpu,
    }


def child(args: argparse.Namespace) -> None:
    setup_django(args.url, args.export_dir)
    kind = args.child
    if kind == "labels":
        result = measure_labels()
    elif kind == "naive":
        result = measure_naive(args.baseline_rows, os.path.join(args.export_dir, "naive.json"))
    elif kind == "drf":
        result = measure_drf(args.baseline_rows, os.path.join(args.export_dir, "drf.json"))
    else:
        shape, fmt = kind.split(":")
        result = measure_service(shape, fmt)
    print("RESULT " + json.dumps(result))


def run_child(kind: str, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--url",
        args.url,
        "--export-dir",
        args.export_dir,
    ]
    if args.baseline_rows:
        command += ["--baseline-rows", str(args.baseline_rows)]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        return {"error": (proc.stderr or proc.stdout)[-800:].strip() or f"exit {proc.returncode}"}
    result = json.loads(line[7:])
    result["rows_per_s"] = result["rows"] / result["seconds"] if result["seconds"] else 0.0
    return result


# --- Report -------------------------------------------------------------------------------------


def table(results: list[tuple[str, dict]], target_rps: float, target_rss: float) -> str:
    lines = [
        "| run | rows | wall s | rows/s (wall) | CPU s (process) | CPU s (DB backend) | rows per CPU-s "
        "(process + backend) | load avg (start→end) | peak RSS (MB) | file (MB) | target |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for name, r in results:
        if "error" in r:
            lines.append(
                f"| {name} | failed: {r['error'].splitlines()[-1][:80]} | | | | | | | | | |"
            )
            continue
        meets = ""
        if name.startswith("export"):
            ok = r["rows_per_s"] >= target_rps and r["peak_rss_mb"] < target_rss
            meets = "met" if ok else "missed"
        size = f"{r['bytes'] / 1e6:.0f}" if "bytes" in r else ""
        cpu = r.get("cpu_seconds") or 0.0
        db_cpu = r.get("db_cpu_seconds")
        both = cpu + (db_cpu or 0.0)
        per_cpu = f"{r['rows'] / both:,.0f}" if both else ""
        load = f"{r['load_start']:.1f}→{r['load_end']:.1f}" if "load_start" in r else ""
        lines.append(
            f"| {name} | {r['rows']:,} | {r['seconds']:.1f} | {r['rows_per_s']:,.0f} | "
            f"{cpu:.1f} | {'' if db_cpu is None else f'{db_cpu:.1f}'} | {per_cpu} | {load} | "
            f"{r['peak_rss_mb']:.0f} | {size} | {meets} |"
        )
    return "\n".join(lines)


def write_results(section: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    start = text.find("\n## export\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section.strip("\n") + "\n"
    else:
        end = text.find("\n## ", start + 1)
        text = text[: start + 1] + section.strip("\n") + "\n" + (text[end:] if end != -1 else "")
    RESULTS.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DB)
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=None)
    parser.add_argument("--skip-baselines", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="use the scratch database a --keep run left (skip seeding; for iterating on one run)",
    )
    parser.add_argument(
        "--runs",
        default="",
        help="comma-separated subset of runs: raw:jsonl, raw:parquet, naive, drf, labels, dpo:parquet …",
    )
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--export-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    import tempfile

    target_rps, target_rss = 100_000, 500
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        args.export_dir = tmp
        if not args.reuse:
            recreate_database(args.url)
        try:
            setup_django(args.url, tmp)
            data = reused() if args.reuse else seed(judgments=args.judgments)
            print(
                f"seeded {data['items']:,} items and {data['judgments']:,} judgments in {data['seed_seconds']}s",
                flush=True,
            )
            from django.db import connections

            connections.close_all()
            runs = [("export raw → JSONL", "raw:jsonl"), ("export raw → Parquet", "raw:parquet")]
            if not args.skip_baselines:
                runs += [
                    ("baseline: list + json.dump", "naive"),
                    ("baseline: DRF serializer + json.dump", "drf"),
                ]
            runs += [
                ("final labels (compute, 200k items)", "labels"),
                ("export dpo → Parquet (from final labels)", "dpo:parquet"),
            ]
            if args.runs:
                wanted = args.runs.split(",")
                runs = [(name, kind) for name, kind in runs if kind in wanted]
                named = {kind for _, kind in runs}
                runs += [(f"export {k.replace(':', ' → ')}", k) for k in wanted if k not in named]
            results = []
            for name, kind in runs:
                result = run_child(kind, args)
                results.append((name, result))
                print(name, json.dumps(result), flush=True)
        finally:
            if not args.keep:
                from django.db import connections

                connections.close_all()
                drop_database(args.url)
    report = table(results, target_rps, target_rss)
    print(report)
    if args.write_results:
        import platform

        cpu = os.cpu_count()
        section = f"""## export

`bench/export.py`: {data["judgments"]:,} judgments ({data["items"]:,} pairwise items × 3 human annotators +
2 AI judges, prompt ~150 chars, responses ~400 chars) on PostgreSQL, exported through the real
service (`export_create` → `export_claim` → `export_run`, what the Celery task runs), each run in
its own process; peak RSS is that process's `ru_maxrss`. Target: ≥ {target_rps:,} rows/s and
peak RSS < {target_rss} MB for the export runs. Baselines hold every row in memory and write one
`json.dump` (same rows, same columns).

Command (repository root; PostgreSQL on 127.0.0.1:5432; the script creates and drops
`hybridpref_bench_export`):

    .venv/bin/python bench/{" ".join(["export.py", *sys.argv[1:]])}

Machine: {cpu} cores, Python {platform.python_version()}, shared with PostgreSQL.

{report}
"""
        write_results(section)


if __name__ == "__main__":
    main()
