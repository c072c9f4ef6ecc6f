"""Throughput of the judge (both orders) against a naive baseline, in the same run.

Naive baseline = what a first implementation does: one prompt at a time, `model.generate`
the verdict text (greedy, max_new_tokens=8) and parse the letter. Every method judges the
same items with the same prompts (both orders) and the same fp32 model object:

- naive:            the baseline above;
- padded batches:   length-grouped, left-padded next-token probabilities (the GPU path);
- prefix sharing:   one sequence per forward pass, reusing the KV cache of every shared token
                    prefix (models_gpu/prefix_sharing.py; the CPU default). Exact.
With --int8, two more, clearly labelled approximate: the same model with its Linear layers
dynamically quantised to int8, run naive and with prefix sharing.

The items are split into --rounds contiguous chunks (one judge call each); each round runs every method on its chunk (the
order of the methods reversed every other round), so slow drift in the load of a shared
machine hits all methods alike. Prompt tokens = tokens of the prompts; computed tokens = what
prefix sharing actually ran through the model.

    .venv/bin/python bench/judge_throughput.py --items 32 --rounds 4 --threads 2 --int8
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Run as a script, Python puts bench/ first on sys.path, where a sibling module (bench/queue.py)
# would shadow the standard library; import from the repository root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from bench.judge_quality import load_pandalm_items  # noqa: E402
from models_gpu import JudgeSpec, load_judge  # noqa: E402
from models_gpu.llm_judge import LLMJudge  # noqa: E402
from models_gpu.prompts import format_conversation, verdict_options  # noqa: E402

ASPECTS_FOUR = ("overall", "helpfulness", "truthfulness", "harmlessness")


def naive_judge(judge: LLMJudge, items: list[dict]) -> tuple[int, list[str]]:
    """Prompt tokens and parsed verdicts of one-at-a-time generation (both orders)."""
    tokenizer, model = judge.loaded.tokenizer, judge.loaded.model
    template = judge.template()
    options = verdict_options(("A", "B"), judge.tie_label)
    tokens, verdicts = 0, []
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
    return tokens, verdicts


def judged_tokens(judge: LLMJudge, items: list[dict], aspects=("overall",)) -> int:
    results = judge.judge(items, aspects=aspects)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    return sum(r.n_tokens for r in results)


def distinct_prompt_items(items: list[dict]) -> list[dict]:
    """Items whose prompt no earlier item has: removes the sharing *across* items, so what
    prefix sharing saves is only the template header and the request of both orders."""
    seen, kept = set(), []
    for item in items:
        key = format_conversation(item["prompt"])
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=32, help="PandaLM pairs to judge")
    parser.add_argument(
        "--rounds", type=int, default=4, help="chunks, each judged by every method in turn"
    )
    parser.add_argument(
        "--distinct-prompts",
        action="store_true",
        help="only items whose prompt is new (no request shared across items)",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--model", default="", help="HF id or folder; blank = embedded SmolLM2")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    parser.add_argument("--int8", action="store_true", help="also time dtype=int8 (approximate)")
    parser.add_argument(
        "--aspect-items", type=int, default=0, help="items for the 1-vs-4 aspects cost check"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    def spec(dtype: str, sharing: bool) -> JudgeSpec:
        return JudgeSpec(
            model=args.model,
            dtype=dtype,
            batch_size=args.batch_size,
            max_length=args.max_length,
            options={"prefix_sharing": sharing},
        )

    fp32_padded = load_judge(spec("float32", False))
    fp32_shared = load_judge(spec("float32", True))
    methods: dict[str, Callable[[list[dict]], int]] = {
        "naive generate, fp32": lambda chunk: naive_judge(fp32_padded, chunk)[0],
        "padded batches, fp32": lambda chunk: judged_tokens(fp32_padded, chunk),
        "prefix sharing, fp32 (exact)": lambda chunk: judged_tokens(fp32_shared, chunk),
    }
    scorers = {"prefix sharing, fp32 (exact)": fp32_shared._scorer}
    if args.int8:
        int8_naive = load_judge(spec("int8", False))
        int8_shared = load_judge(spec("int8", True))
        methods["naive generate, INT8 (approx.)"] = lambda chunk: naive_judge(int8_naive, chunk)[0]
        methods["prefix sharing, INT8 (approx.)"] = lambda chunk: judged_tokens(int8_shared, chunk)
        scorers["prefix sharing, INT8 (approx.)"] = int8_shared._scorer

    pool = load_pandalm_items()
    items = (distinct_prompt_items(pool) if args.distinct_prompts else pool)[: args.items]
    warm = (distinct_prompt_items(pool) if args.distinct_prompts else pool)[-2:]
    for run in methods.values():
        run(warm)  # first-call allocations, kernel selection, the kept template header
    rounds = max(1, min(args.rounds, len(items)))
    # Contiguous chunks, as the producer cuts a run into tasks (items_per_task ids each).
    size = -(-len(items) // rounds)
    chunks = [items[r * size : (r + 1) * size] for r in range(rounds)]
    prompts = {format_conversation(item["prompt"]) for item in items}
    print(
        f"device={fp32_padded.loaded.device} threads={torch.get_num_threads()} items={len(items)} "
        f"distinct prompts={len(prompts)} rounds={rounds} load_avg(1,5,15)="
        + ",".join(f"{x:.1f}" for x in os.getloadavg())
    )

    wall: dict[str, float] = defaultdict(float)
    cpu: dict[str, float] = defaultdict(float)
    tokens: dict[str, int] = defaultdict(int)
    computed: dict[str, int] = defaultdict(int)
    loads = []
    for n, chunk in enumerate(chunks):
        names = list(methods) if n % 2 == 0 else list(reversed(methods))
        for name in names:
            before = scorers[name].computed_tokens if name in scorers else 0
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            tokens[name] += methods[name](chunk)
            wall[name] += time.perf_counter() - start_wall
            cpu[name] += time.process_time() - start_cpu
            computed[name] += (scorers[name].computed_tokens - before) if name in scorers else 0
            loads.append(os.getloadavg()[0])

    baseline = "naive generate, fp32"
    header = (
        f"{'method':32} {'wall s':>7} {'cpu s':>7} {'pairs/s':>8} {'tok/s':>6} "
        f"{'computed':>9} {'x naive(wall)':>13} {'x naive(cpu)':>12}"
    )
    print(header)
    for name in methods:
        share = f"{computed[name] / tokens[name]:.0%}" if name in scorers else "100%"
        print(
            f"{name:32} {wall[name]:7.1f} {cpu[name]:7.1f} {len(items) / wall[name]:8.3f} "
            f"{tokens[name] / wall[name]:6.0f} {share:>9} {wall[baseline] / wall[name]:12.2f}x "
            f"{cpu[baseline] / cpu[name]:11.2f}x"
        )
    if args.int8:
        int8_base = "naive generate, INT8 (approx.)"
        name = "prefix sharing, INT8 (approx.)"
        print(
            f"INT8 prefix sharing vs INT8 naive: {wall[int8_base] / wall[name]:.2f}x wall, "
            f"{cpu[int8_base] / cpu[name]:.2f}x cpu (approximate, not exact)"
        )
    print(
        "tok/s counts prompt tokens; computed = share of them run through the model; "
        f"load_avg during the run: min {min(loads):.1f}, max {max(loads):.1f}"
    )

    few = items[: args.aspect_items]
    if not few:
        return  # the per-aspect cost comparison is opt-in
    start = time.perf_counter()
    judged_tokens(fp32_shared, few)
    one_s = time.perf_counter() - start
    start = time.perf_counter()
    judged_tokens(fp32_shared, few, aspects=ASPECTS_FOUR)
    four_s = time.perf_counter() - start
    print(
        f"aspects (prefix sharing): 1 aspect {one_s / len(few):.2f} s/item, 4 aspects "
        f"{four_s / len(few):.2f} s/item (x{four_s / one_s:.2f}; 4 = no saving)"
    )


if __name__ == "__main__":
    main()
