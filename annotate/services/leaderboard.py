"""Model leaderboards from preference labels, for items whose responses name their models.

Three ratings, side by side, each from the same labels:

- **Bradley–Terry** (choix, ILSR on the dense win matrix) over every pairwise preference a label
  implies (`verdicts.to_preferences`: rankings and best–worst verdicts expand to pairs); a tie
  counts half a win each way. Shown on the Elo scale (1000 + 400·θ/ln 10, as Chatbot Arena),
  with a 95 % bootstrap interval from resampling *labels* (the pairs of one ranking are not
  independent, so they are resampled together).
- **Plackett–Luce** (choix, ILSR on top-1 choices) for ranking and K-wise projects: each rank
  level is a choice of each of its responses over every response ranked below it (ties share
  the level; best–worst gives best ≻ rest and middle ≻ worst). Same scale and bootstrap.
  For pairwise projects it equals Bradley–Terry and is not shown.
- **openskill** (Plackett–Luce model, as in K-Sort Arena): a Bayesian rating updated label by
  label in the order they were made; interval μ ± 1.96σ, ranked by the conservative μ − 3σ.

Labels: `final` (one final label per item), `human` (every human judgment) or `ai` (every AI
judgment). Items with a blank model name, or the same model twice, are skipped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from annotate import verdicts
from annotate.models import FinalLabel, Item, Judgment, Project

LABEL_SOURCES = ("final", "human", "ai")
ELO_SCALE = 400 / math.log(10)
ELO_BASE = 1000.0
REGULARISATION = 0.01  # keeps a model that never lost (or never won) at a finite rating
MAX_PL_WORK = 2_000_000  # labels × bootstrap rounds for Plackett–Luce (pure-Python choix)
PROGRESS_EVERY = 5000


class LeaderboardError(ValueError):
    """A leaderboard cannot be computed as asked."""


@dataclass
class ModelRating:
    model: str
    comparisons: int = 0
    wins: float = 0.0
    bt: float = ELO_BASE
    bt_low: float = ELO_BASE
    bt_high: float = ELO_BASE
    pl: float | None = None
    pl_low: float | None = None
    pl_high: float | None = None
    mu: float = 25.0
    sigma: float = 25.0 / 3
    rank: int = 0

    @property
    def win_rate(self) -> float | None:
        return round(self.wins / self.comparisons, 4) if self.comparisons else None

    @property
    def ordinal(self) -> float:
        return self.mu - 3 * self.sigma

    @property
    def mu_low(self) -> float:
        return self.mu - 1.96 * self.sigma

    @property
    def mu_high(self) -> float:
        return self.mu + 1.96 * self.sigma

    def as_dict(self) -> dict:
        return {
            "rank": self.rank,
            "model": self.model,
            "comparisons": self.comparisons,
            "win_rate": self.win_rate,
            "bradley_terry": {
                "rating": round(self.bt, 1),
                "low": round(self.bt_low, 1),
                "high": round(self.bt_high, 1),
            },
            "plackett_luce": (
                None
                if self.pl is None
                else {
                    "rating": round(self.pl, 1),
                    "low": round(self.pl_low or 0, 1),
                    "high": round(self.pl_high or 0, 1),
                }
            ),
            "openskill": {
                "mu": round(self.mu, 3),
                "sigma": round(self.sigma, 3),
                "ordinal": round(self.ordinal, 3),
            },
        }


@dataclass
class Leaderboard:
    labels: str
    aspect: str
    task_type: str
    rounds: int
    labels_used: int = 0
    labels_skipped: int = 0
    pairs: int = 0
    pl_rounds: int = 0
    seconds: float = 0.0
    models: list[ModelRating] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "labels": self.labels,
            "aspect": self.aspect,
            "task_type": self.task_type,
            "bootstrap_rounds": self.rounds,
            "plackett_luce_rounds": self.pl_rounds,
            "labels_used": self.labels_used,
            "labels_skipped": self.labels_skipped,
            "pairs": self.pairs,
            "seconds": round(self.seconds, 2),
            "models": [m.as_dict() for m in self.models],
        }


def _item_models(project: Project) -> dict[int, tuple[str, ...]]:
    """Model names per item, interned (items share a handful of model tuples)."""
    interned: dict[tuple[str, ...], tuple[str, ...]] = {}
    out: dict[int, tuple[str, ...]] = {}
    for pk, responses in (
        Item.objects.filter(project=project)
        .values_list("pk", "responses")
        .iterator(chunk_size=5000)
    ):
        names = tuple(str(r.get("model") or "").strip() for r in responses)
        out[pk] = interned.setdefault(names, names)
    return out


def _labels(project: Project, source: str, aspect: str) -> Iterator[tuple[int, str, dict]]:
    """(item id, task type, verdict) in the order the labels were made."""
    if source == "final":
        qs = FinalLabel.objects.filter(item__project=project, aspect=aspect).order_by(
            "computed_at", "pk"
        )
    else:
        qs = Judgment.objects.filter(item__project=project, aspect=aspect, kind=source).order_by(
            "created_at", "pk"
        )
    yield from qs.values_list("item_id", "task_type", "value").iterator(chunk_size=5000)


def _levels(task_type: str, value: dict, k: int) -> list[int]:
    """A rank level per response (1 = best; equal = tied) for Plackett–Luce and openskill."""
    if task_type == verdicts.RANKING:
        return list(value["ranks"])
    if task_type == verdicts.KWISE:
        return [1 if i == value["best"] else 3 if i == value["worst"] else 2 for i in range(k)]
    s = value["strength"]
    return [1, 2] if s > 0 else [2, 1] if s < 0 else [1, 1]


def _fit_bt(matrix: np.ndarray) -> np.ndarray:
    import choix

    params = choix.ilsr_pairwise_dense(matrix, alpha=REGULARISATION, max_iter=500, tol=1e-8)
    return ELO_BASE + ELO_SCALE * (params - params.mean())


def _fit_pl(n: int, choices: list[tuple[int, tuple[int, ...]]]) -> np.ndarray:
    import choix

    params = choix.ilsr_top1(n, choices, alpha=REGULARISATION, max_iter=500, tol=1e-8)
    return ELO_BASE + ELO_SCALE * (params - params.mean())


def leaderboard_compute(
    *,
    project: Project,
    labels: str = "final",
    aspect: str | None = None,
    rounds: int = 200,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Leaderboard:
    """Rate the models behind the project's responses (see the module doc).

    `progress`, when given, is called with the number of labels read so far, every
    PROGRESS_EVERY labels (a worker records it for the page).
    """
    from openskill.models import PlackettLuce

    if labels not in LABEL_SOURCES:
        raise LeaderboardError(f"labels: {labels!r} is not one of {', '.join(LABEL_SOURCES)}")
    aspect = aspect or (project.aspects[0] if project.aspects else "overall")
    if aspect not in project.aspects:
        raise LeaderboardError(f"aspect: {aspect!r} is not one of {', '.join(project.aspects)}")
    rounds = max(0, min(int(rounds), 2000))
    started = time.monotonic()
    board = Leaderboard(labels=labels, aspect=aspect, task_type=project.task_type, rounds=rounds)
    models_of = _item_models(project)
    index: dict[str, int] = {}
    # Per pair entry: the label it came from, winner, loser, weight (1, or 0.5 each way for a tie).
    entry_label: list[int] = []
    entry_win: list[int] = []
    entry_lose: list[int] = []
    entry_weight: list[float] = []
    choices: list[list[tuple[int, tuple[int, ...]]]] = []  # per label, for Plackett–Luce
    matches: list[tuple[tuple[int, ...], list[int]]] = []  # per label, for openskill
    use_pl = project.task_type != verdicts.PAIRWISE

    for read, (item_id, task_type, value) in enumerate(_labels(project, labels, aspect), 1):
        if progress is not None and read % PROGRESS_EVERY == 0:
            progress(read)
        names = models_of.get(item_id)
        if not names or "" in names or len(set(names)) != len(names):
            board.labels_skipped += 1
            continue
        ids = tuple(index.setdefault(m, len(index)) for m in names)
        k = len(ids)
        n = board.labels_used
        board.labels_used += 1
        for p in verdicts.to_preferences(task_type, value, k=k):
            w, l_ = ids[p.winner], ids[p.loser]
            if p.is_tie:
                entry_label += [n, n]
                entry_win += [w, l_]
                entry_lose += [l_, w]
                entry_weight += [0.5, 0.5]
            else:
                entry_label.append(n)
                entry_win.append(w)
                entry_lose.append(l_)
                entry_weight.append(1.0)
            board.pairs += 1
        levels = _levels(task_type, value, k)
        matches.append((ids, levels))
        if use_pl:
            choices.append(
                [
                    (ids[i], tuple(ids[j] for j in range(k) if levels[j] > levels[i]))
                    for i in range(k)
                    if any(levels[j] > levels[i] for j in range(k))
                ]
            )

    names_by_index = sorted(index, key=index.get)  # type: ignore[arg-type]
    m = len(names_by_index)
    ratings = [ModelRating(model=name) for name in names_by_index]
    if m < 2 or not entry_label:
        board.models = ratings
        board.seconds = time.monotonic() - started
        return board

    win = np.asarray(entry_win)
    lose = np.asarray(entry_lose)
    weight = np.asarray(entry_weight)
    label_of = np.asarray(entry_label)
    matrix = np.zeros((m, m))
    np.add.at(matrix, (win, lose), weight)
    for r in ratings:
        i = index[r.model]
        r.wins = float(matrix[i].sum())
        r.comparisons = round(float(matrix[i].sum() + matrix[:, i].sum()))
    bt = _fit_bt(matrix)
    rng = np.random.default_rng(seed)
    n_labels = board.labels_used
    if rounds:
        samples = np.empty((rounds, m))
        for b in range(rounds):
            counts = rng.multinomial(n_labels, np.full(n_labels, 1.0 / n_labels))
            boot = np.zeros((m, m))
            np.add.at(boot, (win, lose), weight * counts[label_of])
            samples[b] = _fit_bt(boot)
        low, high = np.percentile(samples, [2.5, 97.5], axis=0)
    else:
        low = high = bt
    for r in ratings:
        i = index[r.model]
        r.bt, r.bt_low, r.bt_high = float(bt[i]), float(low[i]), float(high[i])

    if use_pl and choices:
        flat = [c for per_label in choices for c in per_label]
        pl = _fit_pl(m, flat)
        board.pl_rounds = min(rounds, MAX_PL_WORK // max(1, n_labels))
        if board.pl_rounds:
            pl_samples = np.empty((board.pl_rounds, m))
            for b in range(board.pl_rounds):
                picks = rng.integers(0, n_labels, n_labels)
                pl_samples[b] = _fit_pl(m, [c for i in picks for c in choices[i]])
            pl_low, pl_high = np.percentile(pl_samples, [2.5, 97.5], axis=0)
        else:
            pl_low = pl_high = pl
        for r in ratings:
            i = index[r.model]
            r.pl, r.pl_low, r.pl_high = float(pl[i]), float(pl_low[i]), float(pl_high[i])

    skill = PlackettLuce()
    players = [skill.rating(name=name) for name in names_by_index]
    for ids, levels in matches:
        teams = skill.rate([[players[i]] for i in ids], ranks=levels)
        for i, team in zip(ids, teams, strict=True):
            players[i] = team[0]
    for r in ratings:
        player = players[index[r.model]]
        r.mu, r.sigma = float(player.mu), float(player.sigma)

    ratings.sort(key=lambda r: (-r.bt, r.model))
    for n, r in enumerate(ratings, start=1):
        r.rank = n
    board.models = ratings
    board.seconds = time.monotonic() - started
    return board
