"""Quality of the embedded judge on PandaLM's 999 human-labelled pairs, beside the shipped
GPT-3.5 and PandaLM-7B verdicts: accuracy against the human majority, swap consistency and
a risk–coverage table. Saves per-item verdicts to bench/out/smollm2-pandalm.json.

    .venv/bin/python bench/judge_quality.py --items 999 --threads 1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Run as a script, Python puts bench/ first on sys.path, where a sibling module (bench/queue.py)
# would shadow the standard library; import from the repository root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "pandalm"
OUT = REPO / "bench" / "out" / "smollm2-pandalm.json"

TIE, FIRST, SECOND = 0, 1, 2  # PandaLM labels


# ----- loaders (swap these for `manage.py import_labels` rows later) --------------------------


def _prompt(row: dict) -> str:
    """Instruction, then input when it is non-empty (some inputs are bare NaN tokens)."""
    extra = row.get("input")
    if extra is None or (isinstance(extra, float) and math.isnan(extra)) or not str(extra).strip():
        return row["instruction"]
    return f"{row['instruction']}\n\n{extra}"


def load_pandalm_items(data_dir: Path = DATA) -> list[dict]:
    """Items in models_gpu's input shape, with `gold` = majority of the three annotators."""
    rows = json.loads((data_dir / "testset-v1.json").read_text())  # json accepts the NaN tokens
    items = []
    for row in rows:
        votes = Counter(row[f"annotator{n}"] for n in (1, 2, 3))
        items.append(
            {
                "id": row["idx"],
                "prompt": _prompt(row),
                "responses": [
                    {"model": m, "text": str(t)}
                    for m, t in zip(
                        row["cmp_key"].split("_", 1),
                        (row["response1"], row["response2"]),
                        strict=True,
                    )
                ],
                "gold": votes.most_common(1)[0][0],
            }
        )
    return items


def load_shipped_verdicts(data_dir: Path = DATA) -> dict[str, dict[int, int | None]]:
    """{judge name: {idx: label 0/1/2, or None when unusable (GPT-3.5 "garbage")}}."""
    gpt = {"1": FIRST, "2": SECOND, "Tie": TIE}
    gpt_rows = json.loads((data_dir / "gpt-3.5-turbo-testset-v1.json").read_text())
    panda_rows = json.loads((data_dir / "pandalm-7b-testset-v1.json").read_text())
    return {
        "gpt-3.5-turbo": {r["idx"]: gpt.get(str(r["gpt_result"]).strip()) for r in gpt_rows},
        "pandalm-7b": {
            r["idx"]: (
                int(r["pandalm_result"]) if str(r["pandalm_result"]).strip() in "012" else None
            )
            for r in panda_rows
        },
    }


# ----- metrics -------------------------------------------------------------------------------


def label_from_strength(strength: int) -> int:
    return FIRST if strength > 0 else SECOND if strength < 0 else TIE


def order_label(p_first: float, p_second: float, p_tie: float, swapped: bool) -> int:
    best = max((p_first, FIRST), (p_second, SECOND), (p_tie, TIE))[1]
    if swapped and best != TIE:
        best = FIRST if best == SECOND else SECOND
    return best


def risk_coverage(
    correct: list[bool], confidence: list[float], steps=range(10, 101, 10)
) -> dict[int, float]:
    order = sorted(range(len(correct)), key=lambda i: -confidence[i])
    table = {}
    for pct in steps:
        n = max(1, round(len(order) * pct / 100))
        table[pct] = sum(correct[i] for i in order[:n]) / n
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=999)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--model", default="", help="HF id or folder; blank = embedded SmolLM2")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument(
        "--chunk", type=int, default=64, help="items per judge call (progress lines)"
    )
    parser.add_argument(
        "--dtype",
        default="auto",
        help='judge dtype; "int8" (CPU, approximate) writes its own file and is compared with '
        "the fp32 verdicts of an earlier run on the same items",
    )
    args = parser.parse_args()
    out = OUT if args.dtype in ("auto", "float32") else OUT.with_stem(f"{OUT.stem}-{args.dtype}")

    import torch

    from models_gpu import JudgeSpec, load_judge

    if args.threads:
        torch.set_num_threads(args.threads)
    items = load_pandalm_items()[: args.items]
    gold = {it["id"]: it["gold"] for it in items}
    judge = load_judge(
        JudgeSpec(
            model=args.model,
            dtype=args.dtype,
            batch_size=args.batch_size,
            max_length=args.max_length,
        )
    )
    start, results = time.perf_counter(), []
    for at in range(0, len(items), args.chunk):
        results += judge.judge(items[at : at + args.chunk], allow_ties=True)
        print(f"{len(results)}/{len(items)} items, {time.perf_counter() - start:.0f} s", flush=True)
    elapsed = time.perf_counter() - start

    records, correct, consistent, signals = (
        [],
        [],
        [],
        {"confidence": [], "margin": [], "1 - swap_disagreement": []},
    )
    failed = 0
    for item, result in zip(items, results, strict=True):
        if not result.ok:
            failed += 1
            continue
        v = result.verdicts["overall"]
        ab, ba = v.order_ab, v.order_ba
        records.append(
            {
                "idx": item["id"],
                # Each presentation order over (tie, A, B), order BA mapped back to A/B: what
                # bench/routing_eval.py --extra-judge reads, like the app reads both orders.
                "probs": [ab.p_tie, ab.p_first, ab.p_second],
                "probs_swapped": [ba.p_tie, ba.p_second, ba.p_first],
                "p_a": v.p_a,
                "p_b": v.p_b,
                "p_tie": v.p_tie,
                "strength": v.strength,
                "swap_disagreement": v.swap_disagreement,
                "margin": v.margin,
                "entropy": v.entropy,
                "confidence": v.confidence,
                "truncated": result.truncated,
            }
        )
        correct.append(label_from_strength(v.strength) == item["gold"])
        consistent.append(
            order_label(ab.p_first, ab.p_second, ab.p_tie, False)
            == order_label(ba.p_first, ba.p_second, ba.p_tie, True)
        )
        signals["confidence"].append(v.confidence)
        signals["margin"].append(v.margin)
        signals["1 - swap_disagreement"].append(1 - v.swap_disagreement)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(records, indent=1))

    n = len(records)
    predicted = Counter(r["strength"] for r in records)
    print(
        f"\njudged {n} of {len(items)} items in {elapsed:.0f} s ({failed} failed, "
        f"{sum(r['truncated'] for r in records)} truncated), load_avg={os.getloadavg()[0]:.1f}"
    )
    print(
        f"gold ties in this subset: {sum(g == TIE for g in gold.values()) / len(gold):.1%}; "
        f"predicted strengths: {dict(sorted(predicted.items()))}"
    )
    print(
        "\n| judge | items | coverage (usable) | accuracy (all items) | accuracy (usable) | swap consistency |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| SmolLM2-135M (embedded, both orders, dtype {args.dtype}) | {n} | 100.0 % | "
        f"{sum(correct) / n:.1%} | "
        f"{sum(correct) / n:.1%} | {sum(consistent) / n:.1%} |"
    )
    shipped = load_shipped_verdicts()
    for name, verdicts in shipped.items():
        labels = [verdicts.get(i) for i in gold]
        usable = [(lab, gold[i]) for lab, i in zip(labels, gold, strict=True) if lab is not None]
        right = sum(lab == g for lab, g in usable)
        print(
            f"| {name} (shipped) | {len(gold)} | {len(usable) / len(gold):.1%} | {right / len(gold):.1%} | "
            f"{right / max(1, len(usable)):.1%} | n/a (one order) |"
        )
    gpt, panda = shipped["gpt-3.5-turbo"], shipped["pandalm-7b"]
    agree = [i for i in gold if gpt.get(i) is not None and gpt.get(i) == panda.get(i)]
    if agree:
        print(
            f"| GPT-3.5 = PandaLM-7B (agreeing subset) | {len(gold)} | {len(agree) / len(gold):.1%} | – | "
            f"{sum(gpt[i] == gold[i] for i in agree) / len(agree):.1%} | n/a |"
        )

    print("\nRisk–coverage, SmolLM2: accuracy of the most confident x % of items, by signal")
    print("| coverage | " + " | ".join(signals) + " |")
    print("|---|" + "---|" * len(signals))
    tables = {name: risk_coverage(correct, values) for name, values in signals.items()}
    for pct in range(10, 101, 10):
        print(f"| {pct} % | " + " | ".join(f"{tables[s][pct]:.1%}" for s in signals) + " |")
    print(f"\nwrote {out.relative_to(REPO)}")
    if out != OUT and OUT.is_file():
        print_agreement(records, json.loads(OUT.read_text()), gold, args.dtype)


def print_agreement(records: list[dict], reference: list[dict], gold: dict, dtype: str) -> None:
    """How far an approximate dtype's verdicts are from the fp32 ones (items in both)."""
    exact = {r["idx"]: r for r in reference}
    both = [(r, exact[r["idx"]]) for r in records if r["idx"] in exact]
    if not both:
        return
    same = sum(
        label_from_strength(r["strength"]) == label_from_strength(e["strength"]) for r, e in both
    )
    strength = sum(r["strength"] == e["strength"] for r, e in both)
    diff = [abs(r["p_a"] - e["p_a"]) for r, e in both]
    right = sum(label_from_strength(e["strength"]) == gold[e["idx"]] for _, e in both)
    print(
        f"\n{dtype} vs fp32 ({OUT.relative_to(REPO)}) on {len(both)} items: same verdict "
        f"{same / len(both):.1%}, same 5-point strength {strength / len(both):.1%}, "
        f"|p_a diff| mean {sum(diff) / len(diff):.3f}, max {max(diff):.3f}; "
        f"fp32 accuracy on these items {right / len(both):.1%}"
    )


if __name__ == "__main__":
    main()
