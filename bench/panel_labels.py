"""The app's AI label on PandaLM with the issue's three judges, end to end, on a scratch database.

Imports the 999 PandaLM pairs with their human labels, GPT-3.5's and PandaLM-7B's verdicts (as
`tests/annotate/pandalm.py` does) and the bundled SmolLM2's verdicts from
`bench/out/smollm2-pandalm.json` (written by `bench/judge_quality.py`; both presentation orders
averaged, with their probabilities and confidence, as a judge run stores them). Then:

- a routing preview, which prints the weights the app estimates for the three judges;
- final labels with every item routed to the AI, under the current rule (the weighed panel,
  `method` "panel") and under the rule before it (the most confident verdict), each scored
  against the majority of the three annotators.

    .venv/bin/python bench/panel_labels.py            # SQLite file in a temporary folder
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hybridpref_bench_panel \\
        .venv/bin/python bench/panel_labels.py        # a database this script may fill
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/ holds modules named like the standard library (bench/queue.py): import from the root.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
SMOLLM2 = ROOT / "bench" / "out" / "smollm2-pandalm.json"


def smollm2_rows(path: Path, out: Path) -> Path:
    """SmolLM2's verdicts as `import_labels` rows: label, confidence and probabilities of the
    two presentation orders averaged (what `routing` calls the balanced verdict)."""
    with out.open("w") as f:
        for row in json.loads(path.read_text()):
            p = [(a + b) / 2 for a, b in zip(row["probs"], row["probs_swapped"], strict=True)]
            label = max(range(3), key=p.__getitem__)
            record = {
                "idx": row["idx"],
                "label": str(label),
                "confidence": max(p),
                "probabilities": {"tie": p[0], "a": p[1], "b": p[2]},
            }
            f.write(json.dumps(record) + "\n")
    return out


def main() -> None:
    if not SMOLLM2.exists():
        sys.exit(f"{SMOLLM2} is missing: run bench/judge_quality.py --items 999 first")
    scratch = Path(tempfile.mkdtemp(prefix="hp-panel-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{scratch / 'db.sqlite3'}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from annotate.models import FinalLabel, Item
    from annotate.services import labels
    from annotate.services.imports import labels_import
    from annotate.services.routing import routing_preview
    from tests.annotate.pandalm import HUMANS, pandalm_project

    call_command("migrate", verbosity=0)
    project = pandalm_project(SHARED, slug="bench-panel")
    labels_import(
        project=project,
        path=smollm2_rows(SMOLLM2, scratch / "smollm2.jsonl"),
        source="smollm2",
        maps=["id=idx", "label=label", "confidence=confidence", "probabilities=probabilities"],
    )
    run = routing_preview(project=project, policy="uncertainty", budget=200)
    print("weights the app estimates:", run.estimate.get("judge_weights"))

    rows = json.loads((SHARED / "pandalm" / "testset-v1.json").read_text())
    gold = {str(r["idx"]): Counter(r[h] for h in HUMANS).most_common(1)[0][0] for r in rows}

    def side(strength: int) -> int:  # PandaLM's labels: 0 tie, 1 first, 2 second
        return 0 if strength == 0 else (1 if strength > 0 else 2)

    Item.objects.filter(project=project).update(route=Item.Route.AI)
    routing_ai_labels = labels.routing_ai_labels
    for rule, weighed in (("weighed panel (now)", True), ("most confident (before)", False)):
        if not weighed:  # the rule before this change: learned labels only, no weighed panel
            labels.routing_ai_labels = lambda *, project: (
                routing_ai_labels(project=project)[0],
                {},
            )
        started = time.perf_counter()
        labels.final_labels_compute(project=project)
        seconds = time.perf_counter() - started
        finals = FinalLabel.objects.filter(item__project=project).select_related("item")
        right = sum(side(f.value["strength"]) == gold[f.item.external_id] for f in finals)
        methods = Counter(f.method for f in finals)
        print(
            f"{rule:<24} accuracy {right / len(gold):.3f} ({right} of {len(gold)}); "
            f"methods {dict(methods)}; {seconds:.1f} s"
        )


if __name__ == "__main__":
    main()
