"""Routing benchmark on PandaLM: final label accuracy vs human budget, per policy.

Reproduce (from the repository root)::

    .venv/bin/python bench/routing_eval.py --write-results

Setup (see bench/RESULTS.md, "## routing"):
- gold = majority of the 3 annotators; the "human label" of a routed item is one of its
  3 annotators drawn at random (seeded per seed);
- AI labels come from a 2-judge panel, GPT-3.5 (primary; "garbage" = unusable) and
  PandaLM-7B; see :func:`routing.features.combine_judges` for how the label is chosen;
- with ``--extra-judge`` the panel has three judges, which :func:`routing.build_pool` weighs by
  how often they agree (:func:`routing.estimate_judge_weights`, no labels) and labels by the
  posterior of their votes (:func:`routing.combine_votes`);
- ``--extra-judge FILE`` adds a judge with probabilities (e.g. the embedded SmolLM2), a JSON
  list or JSONL of ``{"idx", "probs": [p_tie, p_1, p_2]}`` (optionally ``"probs_swapped"``,
  already mapped back to the original order) or ``{"idx", "label"}``;
- every policy routes in rounds of 5 % of the pool and sees human labels only of items it has
  already routed (:func:`routing.rounds.route_in_rounds`); no policy sees gold.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# Running a script puts its folder first on sys.path, and bench/ holds modules named like the
# standard library (bench/queue.py shadows `queue`, which joblib/scikit-learn import). Drop the
# folder and import the project from the repository root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from routing import (  # noqa: E402
    JudgeVerdicts,
    RoutingState,
    build_pool,
    curve_from_ranking,
    human_accuracy_from_agreement,
    make_policy,
    minilm_embedder,
    pairwise_agreement,
    relabel_ai_labels,
    route_in_rounds,
)
from routing.features import UNKNOWN  # noqa: E402
from routing.synthetic import synthetic_pool  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "pandalm"
RESULTS = ROOT / "bench" / "RESULTS.md"
POLICIES = ("random", "uncertainty", "learned", "corrected", "corrected-ai", "hyper")
#: Benchmark names that are a routing policy with options (``corrected-ai`` doubts the raw AI
#: label, for a dataset that keeps it; see :class:`routing.CorrectedPolicy`).
VARIANTS: dict[str, tuple[str, dict]] = {"corrected-ai": ("corrected", {"doubt_of": "ai"})}
#: The policy each final-label regime's targets are read from, chosen on the development half
#: (``--items dev --seed-base 100``) before the reported run, not the best of the reported table.
CHOSEN = {"as is": "corrected-ai", "learned": "corrected"}
BUDGETS = tuple(range(0, 101, 10))
GPT_LABELS = {"1": 1, "2": 2, "Tie": 0, "garbage": UNKNOWN}


def policy_option(text: str) -> tuple[str, str, object]:
    """`--option POLICY:KEY=VALUE`, checked before the slow feature building starts."""
    name, colon, assignment = text.partition(":")
    key, equals, value = assignment.partition("=")
    if not (colon and equals and name and key):
        raise argparse.ArgumentTypeError(f"{text!r} is not POLICY:KEY=VALUE")
    try:
        return name, key, json.loads(value)
    except json.JSONDecodeError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: VALUE must be JSON (a number, true/false, or a quoted string)"
        ) from None


def policy_of(name: str, seed: int, options: dict[str, dict]):
    """Build a benchmark policy (a plain policy name or one of :data:`VARIANTS`)."""
    base, preset = VARIANTS.get(name, (name, {}))
    return make_policy(base, seed=seed, **{**preset, **options.get(name, {})})


def load_pandalm(data: Path) -> dict:
    items = json.loads((data / "testset-v1.json").read_text())  # json accepts bare NaN
    gpt = {r["idx"]: r for r in json.loads((data / "gpt-3.5-turbo-testset-v1.json").read_text())}
    pl = {r["idx"]: r for r in json.loads((data / "pandalm-7b-testset-v1.json").read_text())}
    idx = [it["idx"] for it in items]
    annotators = np.array([[it[f"annotator{k}"] for k in (1, 2, 3)] for it in items], dtype=int)
    gold = np.array([Counter(row.tolist()).most_common(1)[0][0] for row in annotators])
    prompts = [
        f"{it['instruction']}\n\n{it['input']}" if _present(it["input"]) else it["instruction"]
        for it in items
    ]
    return {
        "idx": idx,
        "prompts": prompts,
        "a": [it["response1"] for it in items],
        "b": [it["response2"] for it in items],
        "annotators": annotators,
        "gold": gold,
        "gpt": np.array([GPT_LABELS[gpt[i]["gpt_result"]] for i in idx]),
        "pandalm": np.array([int(pl[i]["pandalm_result"]) for i in idx]),
        # The judges' stated reasons, as `import_labels` stores them (`rationale`).
        "gpt_reason": [gpt[i].get("gpt_reason") or "" for i in idx],
        "pandalm_reason": [pl[i].get("pandalm_reason") or "" for i in idx],
    }


def item_half(idx: list[int]) -> np.ndarray:
    """``True`` for the development half of the items: first byte of sha256(idx) is even.

    A fixed, label-blind split. Every routing choice made after the first reported table
    (policy options, which policy is "best") was made on the ``dev`` half only, so the
    ``holdout`` half is a check that no choice has seen.
    """
    return np.array([hashlib.sha256(str(i).encode()).digest()[0] % 2 == 0 for i in idx])


def subset(data: dict, keep: np.ndarray) -> dict:
    """The same data restricted to the items where ``keep`` is true (order preserved)."""
    out = {}
    for key, value in data.items():
        if isinstance(value, np.ndarray):
            out[key] = value[keep]
        else:
            out[key] = [v for v, k in zip(value, keep, strict=True) if k]
    return out


def cached_embedder(embedder, path: Path):
    """Wrap ``embedder`` with an on-disk cache keyed by a hash of the texts (dev runs only)."""

    def embed(texts: list[str]) -> np.ndarray:
        key = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
        file = path / f"minilm-{key}.npy"
        if file.exists():
            return np.load(file)
        out = embedder(texts)
        path.mkdir(parents=True, exist_ok=True)
        np.save(file, out)
        return out

    return embed


def _present(value: object) -> bool:
    return isinstance(value, str) and value.strip() != ""


def load_extra_judge(path: Path, idx: list[int]) -> JudgeVerdicts:
    """Read an extra judge's verdicts; missing items become unusable (NaN) rows."""
    text = path.read_text()
    rows = (
        json.loads(text)
        if text.lstrip().startswith("[")
        else [json.loads(line) for line in text.splitlines() if line.strip()]
    )
    by_idx = {r["idx"]: r for r in rows}
    probs = np.full((len(idx), 3), np.nan)
    swapped = np.full((len(idx), 3), np.nan)
    has_swapped = False
    for i, key in enumerate(idx):
        r = by_idx.get(key)
        if r is None:
            continue
        if "probs" in r:
            probs[i] = r["probs"]
        elif "p_a" in r:  # bench/judge_quality.py's output: both orders already combined
            probs[i] = [r.get("p_tie", 0.0), r["p_a"], r["p_b"]]
        elif r.get("label", UNKNOWN) in (0, 1, 2):
            probs[i] = np.eye(3)[r["label"]]
        if "probs_swapped" in r:
            swapped[i] = r["probs_swapped"]
            has_swapped = True
    return JudgeVerdicts(path.stem, probs, swapped if has_swapped else None)


def evaluate(
    data: dict,
    pool,
    policies,
    seeds: int,
    round_share: float,
    options: dict[str, dict],
    seed_base: int = 0,
) -> dict:
    """Per policy, arrays (seeds, budgets) of final-label accuracy with two AI labels.

    ``accuracy``: human label where routed, the AI panel label as is elsewhere.
    ``relabel``: human label where routed, :func:`routing.relabel_ai_labels` elsewhere, refit
    at each checkpoint from the human labels of the items routed *so far* (the same labels the
    policy saw; never gold, never an unrouted item's label). Also the mean routing seconds per
    run, and per checkpoint how many unrouted labels the correction changed and how many of
    those changes were right (against gold: measurement only, nothing is fitted on it).
    """
    n = len(data["gold"])
    gold = data["gold"]
    round_size = max(1, round(round_share * n))
    checkpoints = [round(b / 100 * n) for b in BUDGETS]
    out: dict = {
        "accuracy": {},
        "relabel": {},
        "changed": {},
        "fixed": {},
        "broken": {},
        "seconds": {},
        "relabel_seconds": {},
        "rounds": round_size,
    }
    for name in policies:
        acc = np.zeros((seeds, len(BUDGETS)))
        rel = np.zeros((seeds, len(BUDGETS)))
        changed = np.zeros((seeds, len(BUDGETS)))
        fixed = np.zeros((seeds, len(BUDGETS)))
        broken = np.zeros((seeds, len(BUDGETS)))
        secs, rel_secs = [], []
        for seed in range(seed_base, seed_base + seeds):
            row = seed - seed_base
            rng = np.random.default_rng(1000 + seed)
            pick = rng.integers(0, 3, size=n)
            human = data["annotators"][np.arange(n), pick]
            asked: list[np.ndarray] = []

            def oracle(ids: np.ndarray, human=human, asked=asked) -> np.ndarray:
                asked.append(ids)
                return human[ids]

            run = route_in_rounds(
                policy_of(name, seed, options),
                pool,
                budget=n,
                round_size=round_size,
                oracle=oracle,
            )
            assert np.array_equal(np.concatenate(asked), run.order)  # asked only routed items
            start = time.perf_counter()
            for j, k in enumerate(checkpoints):
                final = run.final_labels(pool.ai.label, human_items=k)
                acc[row, j] = float((final == gold).mean())
                # The relabel model sees exactly what a live platform would after k items:
                # the routed mask and the human labels of those k items, nothing else.
                routed = np.zeros(n, dtype=bool)
                routed[run.order[:k]] = True
                state = RoutingState.of(n, routed, np.where(routed, run.human_labels, UNKNOWN))
                result = relabel_ai_labels(pool, state, seed=seed)
                final_rel = result.final(state)
                rel[row, j] = float((final_rel == gold).mean())
                moved = result.changed & ~routed
                changed[row, j] = moved.sum()
                fixed[row, j] = (moved & (result.labels == gold)).sum()
                broken[row, j] = (moved & (pool.ai.label == gold)).sum()
            rel_secs.append((time.perf_counter() - start) / len(checkpoints))
            secs.append(run.seconds)
        out["accuracy"][name] = acc
        out["relabel"][name] = rel
        out["changed"][name] = changed
        out["fixed"][name] = fixed
        out["broken"][name] = broken
        out["seconds"][name] = float(np.mean(secs))
        out["relabel_seconds"][name] = float(np.mean(rel_secs))
        print(
            f"  {name:<12} as is   " + " ".join(f"{m * 100:5.1f}" for m in acc.mean(axis=0)),
            f"({np.mean(secs):.2f} s per run)",
            flush=True,
        )
        print(
            f"  {name:<12} learned " + " ".join(f"{m * 100:5.1f}" for m in rel.mean(axis=0)),
            f"({np.mean(rel_secs):.2f} s per refit)",
            flush=True,
        )
    return out


def estimator_check(data: dict, pool, human_accuracy: float) -> list[tuple[int, float, float]]:
    """Estimated vs measured accuracy for the learned policy's curve, seed 0, after 20 %."""
    n = len(data["gold"])
    human = data["annotators"][:, 0]
    run = route_in_rounds(
        make_policy("learned", seed=0),
        pool,
        budget=round(0.2 * n),
        round_size=round(0.05 * n),
        oracle=lambda ids: human[ids],
    )
    from routing import RoutingState, ai_correct_probability

    routed = np.zeros(n, dtype=bool)
    routed[run.order] = True
    state = RoutingState.of(n, routed, run.human_labels)
    q = ai_correct_probability(pool, state)
    nxt = make_policy("learned", seed=0).route(
        pool, int((~routed).sum()), routed=routed, human_labels=run.human_labels
    )
    ranking = np.concatenate([run.order, nxt.chosen])
    curve = curve_from_ranking(ranking, q, human_accuracy, chosen_items=len(run.order))
    rows = []
    for share, k, est in zip(curve.shares, curve.human_items, curve.accuracy, strict=True):
        final = pool.ai.label.copy()
        final[ranking[:k]] = human[ranking[:k]]
        rows.append((round(share * 100), float(est), float((final == data["gold"]).mean())))
    return rows


def ceiling_check(data: dict, pool, share: float = 0.2) -> list[tuple[str, float, float]]:
    """How far *any* router could beat random at ``share`` with these judges: analysis only.

    Uses gold on purpose (it is a bound, never an input to a policy or a choice). Each row is
    ``(name, routed accuracy, random accuracy)`` in expectation, a human label being right
    with the mean single-annotator accuracy; both sides keep the same AI label:
    - the panel label as is, routed by its true per-pattern accuracy (least accurate pattern
      first);
    - the best label per panel pattern (the gold majority of the pattern), routed likewise;
    - the label model fitted on *every* gold label (5-fold cross-fitted), routed by its doubt;
    - the panel label as is, routed by that label model's doubt of it (the bound for
      ``corrected-ai``: it sees every feature, the judges' reasons included, not only the
      pattern).
    """
    gold, ann = data["gold"], data["annotators"]
    n, k = len(gold), round(share * len(gold))
    h = float(np.mean([(ann[:, j] == gold).mean() for j in range(ann.shape[1])]))
    # The panel-vote pattern, read back from the pool's one-hot "panel_votes=..." columns.
    cols = [j for j, c in enumerate(pool.features.categorical_names) if c.startswith("panel_")]
    names = np.array(pool.features.categorical_names)[cols]
    patterns = names[pool.features.categorical[:, cols].argmax(axis=1)]
    as_is = (pool.ai.label == gold).astype(float)
    by_pattern = np.zeros(n)
    best = np.zeros(n)
    for p in set(patterns.tolist()):
        m = patterns == p
        by_pattern[m] = as_is[m].mean()
        best[m] = np.bincount(gold[m], minlength=3).max() / m.sum()
    fold = np.random.default_rng(0).permutation(n) % 5
    probs = np.zeros((n, 3))
    for f in range(5):
        train = fold != f
        state = RoutingState.of(n, train, np.where(train, gold, UNKNOWN))
        # relabel_ai_labels keeps the AI prior when the fit does not beat it (as a run would).
        probs[~train] = relabel_ai_labels(pool, state, seed=0).probs[~train]
    fitted = (probs.argmax(axis=1) == gold).astype(float)
    ai = pool.ai.label
    p_ai = np.where(ai != UNKNOWN, probs[np.arange(n), np.maximum(ai, 0)], 0.0)
    rows = []
    for name, right, doubt in (
        ("panel label as is, by pattern", by_pattern, -by_pattern),
        ("best label per pattern", best, -best),
        ("label model fit on all gold", fitted, -probs.max(axis=1)),
        ("as is, by that model's doubt", as_is, -p_ai),
    ):
        chosen = np.argsort(-doubt, kind="stable")[:k]
        routed = (right.sum() + (h - right[chosen]).sum()) / n
        rows.append((name, float(routed), float((right.sum() + k * (h - right.mean())) / n)))
    return rows


def speed_check(n: int) -> dict[str, float]:
    """Seconds to route 20 % of ``n`` synthetic items with 5 % already labelled, per policy."""
    syn = synthetic_pool(n, seed=0)
    oracle = syn.human_oracle(seed=0)
    routed = np.zeros(n, dtype=bool)
    routed[: n // 20] = True
    labels = np.where(routed, oracle(np.arange(n)), UNKNOWN)
    times = {}
    for name in POLICIES:
        start = time.perf_counter()
        policy_of(name, 0, {}).route(syn.pool, n // 5, routed=routed, human_labels=labels)
        times[name] = time.perf_counter() - start
    return times


def ascii_chart(mean: dict[str, np.ndarray], height: int = 12) -> str:
    """Accuracy vs human share as a text chart (matplotlib is not a project dependency)."""
    marks = {
        "random": "r",
        "uncertainty": "u",
        "learned": "L",
        "corrected": "c",
        "corrected-ai": "a",
        "hyper": "h",
    }
    lo = min(float(m.min()) for m in mean.values())
    hi = max(float(m.max()) for m in mean.values())
    grid = [[" "] * (len(BUDGETS) * 4) for _ in range(height)]
    for name, m in mean.items():
        for j, v in enumerate(m):
            row = height - 1 - round((v - lo) / max(hi - lo, 1e-9) * (height - 1))
            col = j * 4 + 1
            grid[row][col] = marks.get(name, "?") if grid[row][col] == " " else "*"
    lines = []
    for r, cells in enumerate(grid):
        level = hi - r * (hi - lo) / (height - 1)
        lines.append(f"{level * 100:5.1f} |" + "".join(cells))
    lines.append("      +" + "-" * (len(BUDGETS) * 4))
    lines.append("       " + "".join(f"{b:<4d}" for b in BUDGETS) + " human %")
    legend = ", ".join(f"{v} = {k}" for k, v in marks.items() if k in mean)
    return "\n".join(lines) + f"\n       {legend}, * = overlap"


def render(args, data, ai_acc, human_acc, evals, est_rows, speed, embed_s, ceiling=()) -> str:
    acc, rel = evals["accuracy"], evals["relabel"]
    lines = [
        "## routing",
        "",
        "Final label accuracy against gold (majority of 3 annotators) on PandaLM (999 pairs) when",
        "a policy sends a share of items to one human (a random one of the 3 annotators) and the",
        "rest keep an AI label: either the AI panel label **as is**, or the **learned** AI label",
        "(`routing.relabel_ai_labels`: the panel label corrected by a model fitted on the human",
        "labels of the items routed so far, refit at every checkpoint; never gold, never the",
        "label of an unrouted item). Mean ± std over "
        f"{args.seeds} seeds; routing in rounds of {evals['rounds']} items (5 %), each policy",
        "seeing only the human labels of items it has already routed. Reproduce:",
        "",
        "```",
        "cd /work/main && .venv/bin/python bench/routing_eval.py --write-results",
        "```",
        "",
        f"AI panel: GPT-3.5 primary, PandaLM-7B tiebreak (unusable verdict = uniform); panel label "
        f"accuracy {ai_acc * 100:.1f} %; single annotator {human_acc * 100:.1f} %. "
        f"Embedder: {'all-MiniLM-L6-v2 (' + f'{embed_s:.1f} s for 999 pairs' if embed_s else 'off'}"
        + (", on a shared 2-core box under load from other jobs)." if embed_s else ".")
        + (f" Extra judge: {args.extra_judge}." if args.extra_judge else ""),
        "",
        "| human % | " + " | ".join(f"{p} as is | {p} learned" for p in acc) + " |",
        "|---:|" + "---:|---:|" * len(acc),
    ]
    for j, b in enumerate(BUDGETS):
        cells = [
            f"{m[p][:, j].mean() * 100:.1f} ± {m[p][:, j].std() * 100:.1f}"
            for p in acc
            for m in (acc, rel)
        ]
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "What the learned label did to the items humans did not see (mean per run; *fixed* =",
        "the panel label was wrong and the learned one is right, *broken* = the reverse, against",
        "gold; measured only, nothing is fitted on gold):",
        "",
        "| policy | human % | labels changed | fixed | broken | net points |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    n = len(data["gold"])
    for p in acc:
        for b in (10, 20, 40):
            j = BUDGETS.index(b)
            ch, fx, br = (evals[k][p][:, j].mean() for k in ("changed", "fixed", "broken"))
            lines.append(
                f"| {p} | {b} | {ch:.1f} | {fx:.1f} | {br:.1f} | {(fx - br) / n * 100:+.1f} |"
            )
    mean = {p: rel[p].mean(axis=0) for p in rel}
    lines += ["", "Learned AI label, mean accuracy:", "", "```", ascii_chart(mean), "```", ""]
    j20 = BUDGETS.index(20)
    best_rel20 = (
        rel[CHOSEN["learned"]][:, j20].mean()
        if CHOSEN["learned"] in rel
        else max(rel[p][:, j20].mean() for p in rel if p != "random")
    )
    gap = (best_rel20 - acc["random"][:, j20].mean()) * 100 if "random" in acc else float("nan")
    lines += [
        f"Targets, AI label as is (policy chosen on the development half: {CHOSEN['as is']}; "
        "random baseline: random, as is):",
        *targets(acc, chosen=CHOSEN["as is"])[1:],
        "",
        f"Targets, learned AI label (policy chosen on the development half: {CHOSEN['learned']};"
        " random baseline: random with the learned label too, so",
        f"the gap is the routing's own; against random *as is* the gap is {gap:+.1f} points):",
        *targets(rel, chosen=CHOSEN["learned"])[1:],
    ]
    lines += [
        "",
        "Mean routing time per full run (20 rounds over 999 items): "
        + ", ".join(f"{p} {s:.2f} s" for p, s in evals["seconds"].items())
        + "; one relabel refit (5-fold CV over the penalty grid, then the fit): "
        + ", ".join(f"{p} {s:.2f} s" for p, s in evals["relabel_seconds"].items())
        + ".",
    ]
    if speed:
        lines += [
            "",
            f"Speed, {args.speed_items:,} synthetic items, route 20 % with 5 % already labelled "
            "(same run, same machine, 2 CPU cores):",
            "",
            "| policy | seconds | under 10 s |",
            "|---|---:|---|",
        ]
        for p, s in speed.items():
            ok = "exempt (reports its own time)" if p == "hyper" else ("yes" if s < 10 else "NO")
            lines.append(f"| {p} | {s:.2f} | {ok} |")
    if ceiling:
        lines += [
            "",
            "How far any router could go at 20 % with these two judges (a bound computed *with*",
            "gold, analysis only: no policy or choice uses it; in expectation, both sides keep",
            "the same AI label; `--ceiling`):",
            "",
            "| AI label kept on unrouted items, routing order | routed | random | gap |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {name} | {r * 100:.1f} | {b * 100:.1f} | {(r - b) * 100:+.1f} |"
            for name, r, b in ceiling
        ]
    if est_rows:
        lines += [
            "",
            "Estimator check (learned policy, seed 0, after routing 20 %; q = the label "
            "model's probability of the AI label; human accuracy from "
            f"inter-annotator agreement = {args._human_est * 100:.1f} %): estimated vs measured "
            "accuracy if routing continued in the policy's order.",
            "",
            "| human % | estimated | measured |",
            "|---:|---:|---:|",
        ]
        lines += [f"| {s} | {e * 100:.1f} | {m * 100:.1f} |" for s, e, m in est_rows]
    lines += [
        "",
        "Notes: the judges give discrete verdicts only, so judge confidence here is panel",
        "agreement (plus a missing-verdict flag); `uncertainty` ties are broken by a seeded",
        "shuffle. `learned` = logistic regression predicting AI-label error from lexical +",
        "judge features, refit every round, 10 % of each round explored at random, cold start =",
        "uncertainty. `corrected` = route the items whose *learned* label is least certain",
        "(1 - max P from `relabel_ai_labels`, refit every round), no random exploration, cold",
        "start = uncertainty; `corrected-ai` = the same model, but it routes the items whose",
        "*raw AI* label it doubts most (1 - P(AI label)), for a dataset that keeps the AI label.",
        "`hyper` = simulated mixes, Bradley-Terry proxy reward model on",
        "MiniLM embedding differences scored on held-out human labels, ridge PPM on degree-2 tag",
        "shares; it optimises a proxy reward model, not label accuracy. An extra judge with",
        "probabilities (the embedded SmolLM2, when it lands) plugs in with `--extra-judge FILE`",
        "(JSON list or JSONL of `{idx, probs: [p_tie, p_1, p_2]}`, optional `probs_swapped`);",
        "with real probabilities, confidence and swap disagreement become informative.",
        "",
        "Learned AI label (`routing/relabel.py`): multinomial logistic regression offset by the",
        "log of a smoothed AI prior (a unanimous panel = 0.8, set a priori), with a",
        "correction per panel-vote pattern, standardised lexical + judge columns (embedding",
        "similarity when the embedder is on) and a near-identical-responses flag (token overlap",
        ">= 0.9, set a priori); L2 on every correction, so it shrinks to the panel label. The",
        "penalty is picked per refit by 5-fold CV log-loss on the routed human labels only,",
        "grid 1-100 plus the panel label alone, one-standard-error rule (strongest penalty",
        "within 1 SE of the best; if the panel label alone is within 1 SE, nothing changes);",
        "cold start below 30 labels. The prior is half the panel label (one-hot), half the",
        "judges' distribution, so on a split panel (`a|b`) the panel label keeps a real margin.",
        "No setting was fitted or swept on gold. Disclosure, in order: (1) a first variant",
        "(grid 0.3-10, plain minimum CV loss) was run on 3 seeds without embeddings and",
        "lost 0.8 points at 100 random labels in a spot check, so the 1-SE rule was added",
        "(it scored lower at 20 % for `corrected`, 81.3 vs 82.8, 3 seeds); (2) the AI-label",
        "one-hot columns were added after a synthetic null test (no gold); (3) the prior had",
        "no label half at first: a 10-seed run (20 %: `corrected` learned 81.5, random",
        "learned 76.4; 40 %: 88.6) showed, against gold, that with 200 random labels it flipped",
        "~70 split-panel labels per run with 33 fixed and 30 broken, i.e. noise; the label",
        "half (weight 0.5, set a priori, not swept) was added for that reason, which is a",
        "design choice informed by gold and is stated as such.",
        "",
        "Development protocol (after the table above was first published): every later choice",
        "was made on the *dev* half of a fixed sha256 split of the items (`--items dev`, 535",
        "items) with seeds 100-107, never on the reported run: `corrected` without random",
        "exploration (+0.4 to +0.8 points at 20 % on dev), `corrected-ai` for the AI label as",
        "is, which policy each target is read from, and the label-model estimator. Rounds of",
        "2.5 % instead of 5 % and a cold start at 20 labels were tried there and not adopted",
        "(mixed, within noise). The *holdout* half (`--items holdout`, 464 items) was",
        "never looked at while choosing.",
        "",
        "Why the 40 % target was out of reach with the AI label as is: an error model fit with",
        "*all* gold labels (5-fold CV; logistic regression or gradient boosting on the same",
        "features) ranks no better than panel disagreement (79.9-80.4 % at 20 %, 86.5-86.6 % at",
        "40 %), so with two discrete judges the ranking signal is the limit. The learned label",
        "works on the other side: it improves the items that stay with the AI (mostly panel",
        "patterns where the primary judge's verdict is the worse bet, e.g. `tie|b`), and its",
        "calibrated per-item doubt gives `corrected` a better order than panel disagreement.",
        "",
    ]
    return "\n".join(lines)


def targets(
    acc: dict[str, np.ndarray], baseline: np.ndarray | None = None, chosen: str | None = None
) -> list[str]:
    """Target lines; ``baseline`` = the random policy's accuracy to beat (default: acc's).

    ``chosen`` = the policy picked on the development protocol (when it was run): the targets
    are read from it, not from whichever policy happens to score best on this table.
    """
    j20, j40 = BUDGETS.index(20), BUDGETS.index(40)
    if not any(p != "random" for p in acc):
        return ["Targets:", "- (no policy but random was run)"]
    if chosen in acc:
        best20 = best40 = chosen
    else:
        best20 = max((p for p in acc if p != "random"), key=lambda p: acc[p][:, j20].mean())
        best40 = max(acc, key=lambda p: acc[p][:, j40].mean())
    a20 = acc[best20][:, j20].mean() * 100
    base = acc.get("random") if baseline is None else baseline
    r20 = base[:, j20].mean() * 100 if base is not None else float("nan")
    # Seeds share the human draws across policies, so the per-seed gap is a paired one.
    gaps = (acc[best20][:, j20] - base[:, j20]) * 100 if base is not None else np.full(1, np.nan)
    a40 = acc[best40][:, j40].mean() * 100
    yes = {True: "met", False: "NOT met"}
    return [
        "Targets:",
        f"- 20 % budget, best policy ≥ 80 %: {best20} {a20:.1f} % — {yes[a20 >= 80]}",
        f"- 20 % budget, beats random by ≥ 5 points: {a20 - r20:+.1f} (per-seed paired gap "
        f"{gaps.mean():+.1f} ± {gaps.std():.1f}, min {gaps.min():+.1f}) — {yes[a20 - r20 >= 5]}",
        f"- 40 % budget, best policy ≥ 88 %: {best40} {a40:.1f} % — {yes[a40 >= 88]}",
    ]


def write_section(section: str) -> None:
    """Replace (or append) only the ``## routing`` section of the shared RESULTS.md."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "## routing"), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        new = "\n".join([*lines[:start], *section.rstrip("\n").splitlines(), *lines[end:]])
        new = new.rstrip("\n") + "\n"
    RESULTS.write_text(new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    parser.add_argument("--round-share", type=float, default=0.05)
    parser.add_argument("--no-embed", action="store_true", help="skip all-MiniLM-L6-v2")
    parser.add_argument("--extra-judge", type=Path, help="extra AI verdicts with probabilities")
    parser.add_argument("--speed-items", type=int, default=100_000)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--hyper-mixes", type=int, default=24, help="simulated mixes per round")
    parser.add_argument("--hyper-candidates", type=int, default=100, help="candidates per round")
    parser.add_argument("--write-results", action="store_true", help="update bench/RESULTS.md")
    parser.add_argument(
        "--items",
        choices=("all", "dev", "holdout"),
        default="all",
        help="all items, or one half of a fixed sha256 split (see item_half)",
    )
    parser.add_argument(
        "--seed-base", type=int, default=0, help="first seed (dev runs use 100 and up)"
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        type=policy_option,
        metavar="POLICY:KEY=VALUE",
        help="a policy constructor option, e.g. corrected:explore=0.05 (repeatable)",
    )
    parser.add_argument(
        "--embed-cache", type=Path, help="folder caching MiniLM embeddings between runs"
    )
    parser.add_argument("--skip-estimator", action="store_true")
    parser.add_argument(
        "--no-reasons",
        action="store_true",
        help="leave out the judges' stated reasons (the features before they were read)",
    )
    parser.add_argument(
        "--ceiling", action="store_true", help="print the gold-informed bound (analysis only)"
    )
    args = parser.parse_args()

    data = load_pandalm(args.data)
    if args.items != "all":
        half = item_half(data["idx"])
        data = subset(data, half if args.items == "dev" else ~half)
        print(f"items: {args.items} half of a sha256 split")
    n = len(data["gold"])
    judges = [
        JudgeVerdicts.from_labels(
            "gpt-3.5-turbo", data["gpt"], rationales=None if args.no_reasons else data["gpt_reason"]
        ),
        JudgeVerdicts.from_labels(
            "pandalm-7b",
            data["pandalm"],
            rationales=None if args.no_reasons else data["pandalm_reason"],
        ),
    ]
    if args.extra_judge:
        judges.append(load_extra_judge(args.extra_judge, data["idx"]))
    embed_s = 0.0
    embedder = None
    if not args.no_embed:
        embedder = minilm_embedder()
        if args.embed_cache:
            embedder = cached_embedder(embedder, args.embed_cache)
    start = time.perf_counter()
    pool = build_pool(
        prompts=data["prompts"],
        responses_a=data["a"],
        responses_b=data["b"],
        judges=judges,
        embedder=embedder,
    )
    if embedder is not None:
        embed_s = time.perf_counter() - start
    ai_acc = float((pool.ai.label == data["gold"]).mean())
    human_acc = float((data["annotators"][:, 0] == data["gold"]).mean())
    args._human_est = human_accuracy_from_agreement(pairwise_agreement(data["annotators"]))
    print(f"{n} items; AI panel accuracy {ai_acc:.3f}; annotator1 accuracy {human_acc:.3f}")
    print(f"features built in {time.perf_counter() - start:.1f} s (embedder: {bool(embedder)})")
    print("accuracy % at human share " + " ".join(f"{b:5d}" for b in BUDGETS))

    options: dict[str, dict] = {
        "hyper": {"n_mixes": args.hyper_mixes, "n_candidates": args.hyper_candidates}
    }
    for name, key, value in args.option:
        options.setdefault(name, {})[key] = value
    evals = evaluate(
        data, pool, args.policies, args.seeds, args.round_share, options, args.seed_base
    )
    for line in targets(evals["accuracy"], chosen=CHOSEN["as is"]):
        print(line)
    print("learned AI label:")
    for line in targets(evals["relabel"], chosen=CHOSEN["learned"]):
        print(line)
    est_rows = [] if args.skip_estimator else estimator_check(data, pool, args._human_est)
    print("estimator check (share, estimated, measured):")
    for s, e, m in est_rows:
        print(f"  {s:3d} %  {e * 100:5.1f}  {m * 100:5.1f}")
    ceiling = ceiling_check(data, pool) if args.ceiling or args.write_results else []
    if ceiling:
        print("ceiling at 20 % (uses gold; analysis only): routed / random / gap")
        for name, routed_acc, random_acc in ceiling:
            gap = (routed_acc - random_acc) * 100
            print(f"  {name:<32} {routed_acc * 100:5.1f} {random_acc * 100:5.1f} {gap:+5.1f}")
    speed = {} if args.skip_speed else speed_check(args.speed_items)
    for p, s in speed.items():
        print(f"speed {args.speed_items} items: {p:<12} {s:.2f} s")
    if args.write_results:
        write_section(
            render(args, data, ai_acc, human_acc, evals, est_rows, speed, embed_s, ceiling)
        )
        print(f"wrote the ## routing section of {RESULTS}")


if __name__ == "__main__":
    main()
