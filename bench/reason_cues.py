"""How often each imported judge's verdict is wrong, by the cue counts in its stated reason.

The figures behind ``routing.features.RATIONALE_CUES`` (bench/RESULTS.md, "## routing"):
gold = the majority of PandaLM's 3 annotators; a verdict is wrong when it differs from gold.

    .venv/bin/python bench/reason_cues.py
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from routing.features import RATIONALE_CUES  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "pandalm"
JUDGES = {
    "gpt-3.5-turbo": ("gpt-3.5-turbo-testset-v1.json", "gpt_result", "gpt_reason"),
    "pandalm-7b": ("pandalm-7b-testset-v1.json", "pandalm_result", "pandalm_reason"),
}
LABELS = {"0": 0, "1": 1, "2": 2, "Tie": 0}


def main() -> None:
    items = json.loads((DATA / "testset-v1.json").read_text())
    gold = {
        it["idx"]: Counter(it[f"annotator{k}"] for k in (1, 2, 3)).most_common(1)[0][0]
        for it in items
    }
    for judge, (file, result, reason) in JUDGES.items():
        rows = json.loads((DATA / file).read_text())
        print(f"{judge}: verdict wrong, by the number of cues in its reason")
        for cue, pattern in RATIONALE_CUES.items():
            cells: dict[str, list[int]] = {"0": [], "1": [], "2+": []}
            for r in rows:
                label = LABELS.get(str(r[result]).strip())
                if label is None:  # "garbage": no usable verdict
                    continue
                count = len(pattern.findall((r.get(reason) or "").lower()))
                cells["2+" if count >= 2 else str(count)].append(int(label != gold[r["idx"]]))
            print(
                f"  {cue:<7}"
                + "".join(
                    f"  {k:>2} cues: {100 * sum(v) / len(v):5.1f} % of {len(v):>3}"
                    for k, v in cells.items()
                    if v
                )
            )


if __name__ == "__main__":
    main()
