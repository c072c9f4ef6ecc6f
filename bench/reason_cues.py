"""How often each imported judge's verdict is wrong, by the cue counts in its stated reason.

The figures behind ``routing.features.RATIONALE_CUES`` (bench/RESULTS.md, "## routing"):
gold = the majority of PandaLM's 3 annotators; a verdict is wrong when it differs from gold.
The data is read as ``bench/routing_eval.py`` reads it.

    .venv/bin/python bench/reason_cues.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.routing_eval import DATA, load_pandalm  # noqa: E402
from routing.features import RATIONALE_CUES, UNKNOWN  # noqa: E402

#: Judge name -> the keys of its verdicts and its reasons in `load_pandalm`'s result.
JUDGES = {"gpt-3.5-turbo": ("gpt", "gpt_reason"), "pandalm-7b": ("pandalm", "pandalm_reason")}


def main() -> None:
    data = load_pandalm(DATA)
    for judge, (verdicts, reasons) in JUDGES.items():
        print(f"{judge}: verdict wrong, by the number of cues in its reason")
        for cue, pattern in RATIONALE_CUES.items():
            cells: dict[str, list[int]] = {"0": [], "1": [], "2+": []}
            for label, reason, gold in zip(
                data[verdicts], data[reasons], data["gold"], strict=True
            ):
                if label == UNKNOWN:  # "garbage": no usable verdict
                    continue
                count = len(pattern.findall(reason.lower()))
                cells["2+" if count >= 2 else str(count)].append(int(label != gold))
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
