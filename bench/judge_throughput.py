"""Throughput of the batched probability judge (both orders) against a naive baseline.

Naive baseline = what a first implementation does: one prompt at a time, `model.generate`
the verdict text (greedy, max_new_tokens=8) and parse the letter. Both use the same model
object, the same items and the same prompts (both orders), in the same run.

    .venv/bin/python bench/judge_throughput.py --items 32 --threads 1
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Run as a script, Python puts bench/ first on sys.path, where a sibling module (bench/queue.py)
# would shadow the standard library; import from the repository root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from bench.judge_quality import load_pandalm_items  # noqa: E402
from models_gpu import JudgeSpec, load_judge  # noqa: E402
from models_gpu.prompts import format_conversation, verdict_options  # noqa: E402


def naive_judge(judge, items) -> tuple[float, int, list[str]]:
    """Seconds, prompt tokens and parsed verdicts of one-at-a-time generation (both orders)."""
    tokenizer, model = judge.loaded.tokenizer, judge.loaded.model
    template = judge.template()
    options = verdict_options(("A", "B"), judge.tie_label)
    tokens, verdicts = 0, []
    start = time.perf_counter()
    for item in items:
        first, second = (r["text"] for r in item["responses"])
        for a, b in ((first, second), (second, first)):
            ids = judge.encode_prompt(
                *template.fill(
                    {
                        "prompt": format_conversation(item["prompt"]),
                        "response_a": a,
                        "response_b": b,
                        "aspect": "overall",
                        "verdict_options": options,
                    }
                )
            )
            tokens += len(ids)
            with torch.inference_mode():
                out = model.generate(
                    torch.tensor([ids]),
                    attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                    max_new_tokens=8,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )
            text = tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True).strip()
            verdicts.append(text[:1])
    return time.perf_counter() - start, tokens, verdicts


def batched_judge(judge, items, aspects=("overall",)) -> tuple[float, int]:
    start = time.perf_counter()
    results = judge.judge(items, aspects=aspects)
    elapsed = time.perf_counter() - start
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    return elapsed, sum(r.n_tokens for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=32, help="PandaLM pairs to judge")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--model", default="", help="HF id or folder; blank = embedded SmolLM2")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    parser.add_argument(
        "--aspect-items", type=int, default=8, help="items for the 1-vs-4 aspects cost check"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    judge = load_judge(
        JudgeSpec(model=args.model, batch_size=args.batch_size, max_length=args.max_length)
    )
    items = load_pandalm_items()[: args.items]
    judge.judge(items[:2])  # warm-up: first-call allocations and kernel selection
    print(
        f"device={judge.loaded.device} dtype={judge.loaded.dtype} threads={torch.get_num_threads()} "
        f"load_avg={os.getloadavg()[0]:.1f} items={len(items)}"
    )

    naive_s, naive_tokens, _ = naive_judge(judge, items)
    batched_s, batched_tokens = batched_judge(judge, items)
    rows = [
        ("naive generate, 1 at a time", naive_s, naive_tokens),
        ("batched next-token probs", batched_s, batched_tokens),
    ]
    print(f"{'method':32} {'seconds':>8} {'pairs/s':>8} {'tokens/s':>9}")
    for name, seconds, tokens in rows:
        print(f"{name:32} {seconds:8.1f} {len(items) / seconds:8.3f} {tokens / seconds:9.0f}")
    print(f"speed-up (pairs/s): {naive_s / batched_s:.2f}x  load_avg_now={os.getloadavg()[0]:.1f}")

    few = items[: args.aspect_items]
    if not few:
        return  # --aspect-items 0: skip the per-aspect cost comparison
    one_s, _ = batched_judge(judge, few, aspects=("overall",))
    four_s, _ = batched_judge(
        judge, few, aspects=("overall", "helpfulness", "truthfulness", "harmlessness")
    )
    print(
        f"aspects: 1 aspect {one_s / len(few):.2f} s/item, 4 aspects {four_s / len(few):.2f} s/item "
        f"(x{four_s / one_s:.2f}; {math.nan if not one_s else 4:.0f} expected for one prompt per aspect)"
    )


if __name__ == "__main__":
    main()
