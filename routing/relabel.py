"""A learned AI label: correct the judges' label of items humans did not see, from human labels.

HyPER (``/work/shared/docs/hyper.md``) leaves every unrouted item with its raw AI label. A live
platform can do better: each human label that comes back shows where the judges go wrong
(e.g. "GPT-3.5 says tie, PandaLM says B" is usually B; two near-identical responses are
usually a tie whatever the judges say), and that lesson applies to the items nobody looks at.

API for the final-label service::

    from routing import RoutingState, relabel_ai_labels

    state = RoutingState.of(len(pool), routed, human_labels)   # labels of routed items ONLY
    result = relabel_ai_labels(pool, state)                     # -> RelabelResult
    result.labels    # (n,) corrected AI label (0 tie, 1 A, 2 B); equals pool.ai.label on a cold start
    result.probs     # (n, 3) P(a human would say tie / A / B)
    result.changed   # (n,) bool: corrected label differs from pool.ai.label
    result.final(state)  # human label where one came back, corrected AI label elsewhere

The model (:func:`fit_label_model`) is a multinomial logistic regression *offset by the AI
prior*::

    logit_k(item) = log prior_k(item) + b_k + sum_c B[c, k] * onehot_c + sum_j W[j, k] * z_j

- ``prior`` = half the AI label (one-hot), half the combined judge distribution, smoothed
  so that a unanimous discrete panel says "right with probability 0.8" (``prior_strength``
  and ``LABEL_WEIGHT``, both chosen a priori, not fitted on gold); an unfitted model
  reproduces the AI label exactly, and on a split panel the AI label keeps a real margin;
- ``onehot_c``: the AI label itself, and the categorical columns: the panel-vote pattern
  (``"tie|b"``) and any LLM tags; each pattern gets its own correction, so "tie|b" can learn
  "B" without touching "a|a";
- ``z_j``: the continuous columns of the pool (lexical: lengths, length difference, token
  overlap, embedding similarity when the pool has one; judge: each judge's balanced
  probabilities, confidence, disagreement) standardised on the whole pool, plus a
  ``near_identical`` flag (token overlap >= 0.9), the strongest tie signal in pairwise data;
- every parameter has an L2 penalty, i.e. a Gaussian prior centred on "the AI label is
  right as the judges say": with few labels the correction stays near zero.

The penalty is chosen by 5-fold cross-validated log-loss on the *routed human labels only*
(no gold anywhere), over a small grid that includes "no correction at all" (the AI prior
alone), with the one-standard-error rule: the strongest penalty within one standard error of
the best held-out loss wins. If the AI prior alone is within that band, the AI label is kept:
the correction has to earn its place on the data the platform has paid for.

Selection bias. Routed items are not a random sample (uncertainty routing sends judge
disagreements first), but routing chooses an item from its *features* and other items'
labels, never from its own label, so the labels are missing at random given the features and
a conditional model P(label | features) fitted on routed items is unbiased wherever routed
items exist. The risk is extrapolation to regions with no routed support (unanimous panels,
when only disagreements were routed). The model limits it by construction: a pattern that
was never routed has no data for its own correction, which stays at zero by the penalty, so
its items keep the AI prior; only the shared coefficients (lexical, judge columns) carry over,
and those are learned from every routed pattern. The ``learned`` policy routes a random 10 %
slice each round, which gives its model support everywhere; ``corrected`` can (``explore``)
but by default does not (chosen on a development split, see :class:`CorrectedPolicy`): a
pattern it has not routed keeps the AI prior's doubt, so unanimous panels wait until the split
ones are settled, and until then their label stays the AI label, which is safe. We do not
weight by inverse routing propensity: top-k routing is deterministic given the features
(propensities of 0 or 1), and for a model that conditions on the routing features weighting
would add variance without removing bias.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from routing.features import N_CLASSES, UNKNOWN
from routing.policies import Policy, Scored, uncertainty_scores, with_exploration
from routing.pool import RoutingPool, RoutingState

#: Share of the AI prior that is the AI label itself (the rest: the judges' distribution).
#: Set a priori to 0.5, not fitted; see :func:`ai_log_prior`.
LABEL_WEIGHT = 0.5

#: Penalty grid (per parameter, Gaussian prior precision) searched by cross-validation.
L2_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)


@dataclass(frozen=True)
class RelabelResult:
    """Corrected AI labels for every item of a pool.

    ``labels``/``probs`` cover *all* items, routed ones included (useful to compare the model
    with the human there); the dataset's final label of a routed item is its human label,
    see :meth:`final`. ``fitted`` is ``False`` on a cold start, when ``labels`` is exactly
    ``pool.ai.label``. ``info`` holds diagnostics (labels used, chosen penalty, CV losses).
    """

    labels: np.ndarray
    probs: np.ndarray
    changed: np.ndarray
    fitted: bool
    n_labels: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def confidence(self) -> np.ndarray:
        """P(the corrected label is what a human would say), per item."""
        return self.probs.max(axis=1)

    def final(self, state: RoutingState) -> np.ndarray:
        """Human label where one came back, corrected AI label elsewhere."""
        out = self.labels.copy()
        known = state.known
        out[known] = state.human_labels[known]
        return out


@dataclass(frozen=True)
class LabelModel:
    """A fitted AI-label correction (see the module docstring for the model)."""

    names: list[str]
    coef: np.ndarray  # (1 + d, 3): intercept row, then one row per column of ``names``
    l2: float
    n_labels: int
    cv_loss: dict[str, float]

    def predict_proba(self, pool: RoutingPool, *, prior_strength: float = 0.8) -> np.ndarray:
        _, x = label_model_matrix(pool)
        return _softmax(ai_log_prior(pool, prior_strength) + x @ self.coef)


# Below this many human labels the label model returns the AI labels unchanged (cold start).
MIN_LABELS = 30


def ai_log_prior(
    pool: RoutingPool, strength: float = 0.8, *, label_weight: float = LABEL_WEIGHT
) -> np.ndarray:
    """``log`` of the AI prior, ``(n, 3)``; the model's offset.

    The prior is ``label_weight * smooth(onehot(AI label)) + (1 - label_weight) *
    smooth(judge distribution)``, where ``smooth(p) = (1 - eps) * p + eps / 3`` and ``eps``
    solves ``1 - eps + eps / 3 = strength`` (a one-hot keeps ``strength``). On a unanimous
    discrete panel both halves agree (0.8 on the label). On a split panel (``a|b``: A and B
    have equal judge mass) the label half gives the AI label a real margin (0.625 vs 0.275):
    with the judges' distribution alone the AI label would win by a hair, and any small
    learned coefficient, noise included, would flip every split item of a pattern at once.
    Items with no usable verdict get a uniform prior (their label comes from the correction).
    A bonus of 1e-6 on the AI label keeps an all-zero correction reproducing
    ``pool.ai.label`` exactly even with ``label_weight=0``.
    """
    eps = (1.0 - strength) * N_CLASSES / (N_CLASSES - 1)
    probs = np.asarray(pool.ai.probs, dtype=float)
    probs = np.where(np.isnan(probs), 1.0 / N_CLASSES, probs)
    label = pool.ai.label
    ok = label != UNKNOWN
    onehot = np.full_like(probs, 1.0 / N_CLASSES)
    onehot[ok] = np.eye(N_CLASSES)[label[ok]]
    mixed = label_weight * onehot + (1.0 - label_weight) * probs
    prior = (1.0 - eps) * mixed + eps / N_CLASSES
    prior[~ok] = 1.0 / N_CLASSES
    logp = np.log(prior)
    logp[np.flatnonzero(ok), label[ok]] += 1e-6
    return logp


def label_model_matrix(pool: RoutingPool) -> tuple[list[str], np.ndarray]:
    """Intercept, categorical one-hots (raw 0/1), standardised continuous columns, flags.

    Binary columns stay 0/1 so that each coefficient is a plain logit shift with the same
    penalty whatever the column's prevalence (standardising a 3 % flag would blow it up 6x
    and make it the cheapest thing for the model to use). Standardisation uses the whole
    pool's features, which are not labels.
    """
    f = pool.features
    n = len(pool)
    cols: list[np.ndarray] = [np.ones(n)]
    names = ["intercept"]
    if f.categorical is not None and f.categorical.shape[1]:
        cols += list(np.asarray(f.categorical, dtype=float).T)
        names += list(f.categorical_names)
    # The AI label itself, one-hot: humans who agree with the panel's *argmax* (rather than
    # with its probabilities) are then one coefficient per class away, instead of a linear
    # re-weighting of judge probabilities that flips nearly tied items at random.
    ai = np.asarray(pool.ai.label)
    for k, cls in enumerate(("tie", "a", "b")):
        cols.append((ai == k).astype(float))
        names.append(f"ai_label={cls}")
    values = np.asarray(f.values, dtype=float)
    # A judge's stated reason speaks about the label that judge gave: "Response 1 is incorrect
    # but ..." makes *that* verdict doubtful, whichever side it is. A plain column can only move
    # every item towards the same class, so each reason cue enters once per AI label instead
    # (on the development half of PandaLM, plain columns as well did no better). They go after
    # the plain columns.
    reason_cols: list[np.ndarray] = []
    reason_names: list[str] = []
    for j, name in enumerate(f.names):
        v = values[:, j]
        if ":reason_" in name:
            z = _standardised(v)
            for k, cls in enumerate(("tie", "a", "b")):
                reason_cols.append(z * (ai == k))
                reason_names.append(f"{name}|ai_label={cls}")
            continue
        cols.append(v if np.all((v == 0.0) | (v == 1.0)) else _standardised(v))
        names.append(name)
    cols += reason_cols
    names += reason_names
    if "token_overlap" in f.names:
        # Near-identical responses are the strongest tie signal; a flag lets the model treat
        # them apart from the smooth overlap trend. 0.9 is set a priori, not fitted.
        cols.append((f.column("token_overlap") >= 0.9).astype(float))
        names.append("near_identical")
    return names, np.column_stack(cols)


def _standardised(v: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance; a constant column becomes zeros."""
    sd = v.std()
    return (v - v.mean()) / sd if sd > 1e-12 else np.zeros(len(v))


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _fit(
    x: np.ndarray,
    offset: np.ndarray,
    y: np.ndarray,
    l2: float,
    init: np.ndarray | None = None,
    *,
    max_iter: int = 50,
    tol: float = 1e-8,
) -> np.ndarray:
    """Penalised multinomial logistic regression with a fixed offset; returns ``(d, 3)``.

    Damped Newton: the objective is strictly convex (L2 on every parameter) and small
    (``3 * d`` parameters, ~100), so the exact Hessian costs less than one L-BFGS run and
    converges in a handful of steps; it is also deterministic to the last bit, which keeps
    refits repeatable. ``init`` warm-starts it (the CV walks the penalty grid from strong to
    weak, each fit starting from the previous one).
    """
    d = x.shape[1]
    k = N_CLASSES
    onehot = np.eye(k)[y]

    def objective(coef: np.ndarray) -> tuple[float, np.ndarray]:
        logits = offset + x @ coef
        m = logits.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
        value = float((lse - (logits * onehot).sum(axis=1)).sum())
        return value + 0.5 * l2 * float((coef * coef).sum()), np.exp(logits - lse[:, None])

    coef = np.zeros((d, k)) if init is None else init.copy()
    value, p = objective(coef)
    for _ in range(max_iter):
        grad = x.T @ (p - onehot) + l2 * coef  # (d, k)
        hess = np.zeros((k, d, k, d))
        for a in range(k):
            for b in range(a, k):
                w = p[:, a] * ((a == b) - p[:, b])
                block = (x * w[:, None]).T @ x
                hess[a, :, b, :] = block
                hess[b, :, a, :] = block
        h = hess.reshape(k * d, k * d) + l2 * np.eye(k * d)
        g = grad.T.ravel()  # class-major, matching ``h``
        step = np.linalg.solve(h, g).reshape(k, d).T
        decrement = float(g @ step.T.ravel())
        if decrement / 2 <= tol * max(1.0, abs(value)):
            break
        t = 1.0
        while True:  # backtracking (Armijo); a full step is almost always accepted
            new = coef - t * step
            new_value, new_p = objective(new)
            if new_value <= value - 0.25 * t * decrement or t < 1e-6:
                break
            t *= 0.5
        coef, value, p = new, new_value, new_p
    return coef


def _item_log_loss(
    x: np.ndarray, offset: np.ndarray, y: np.ndarray, coef: np.ndarray | None
) -> np.ndarray:
    logits = offset if coef is None else offset + x @ coef
    p = _softmax(logits)
    return -np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0))


def fit_label_model(
    pool: RoutingPool,
    state: RoutingState,
    *,
    min_labels: int = MIN_LABELS,
    l2: float | None = None,
    prior_strength: float = 0.8,
    folds: int = 5,
    seed: int = 0,
) -> LabelModel | None:
    """Fit the correction on the routed items whose human labels came back (``state.known``).

    Returns ``None`` on a cold start (fewer than ``min_labels`` labels) and when, with
    ``l2=None``, cross-validation on those labels finds no penalty whose held-out log-loss
    beats the AI prior alone by more than one standard error (see :func:`_select_l2`).
    ``l2`` fixes the penalty instead (no CV, no guard).

    Only ``state.known`` rows are read from ``state.human_labels``; ``RoutingState`` already
    refuses labels on unrouted items, and this function never looks at any other row.
    """
    known = state.known
    if len(known) < min_labels:
        return None
    # The matrices are tiny (~100 x 100): a multi-threaded BLAS spends 20x more time
    # synchronising threads than computing, worse on a busy box. One thread, scoped here.
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_known(pool, state, known, l2, prior_strength, folds, seed)


def _fit_known(
    pool: RoutingPool,
    state: RoutingState,
    known: np.ndarray,
    l2: float | None,
    prior_strength: float,
    folds: int,
    seed: int,
) -> LabelModel | None:
    y = state.human_labels[known].astype(int)
    names, x_all = label_model_matrix(pool)
    offset_all = ai_log_prior(pool, prior_strength)
    x, offset = x_all[known], offset_all[known]
    cv: dict[str, float] = {}
    init = None
    if l2 is None:
        l2, init, cv = _select_l2(x, offset, y, folds, seed)
        if l2 is None:
            return None
    coef = _fit(x, offset, y, float(l2), init)
    return LabelModel(names, coef, float(l2), len(known), cv)


def _select_l2(
    x: np.ndarray, offset: np.ndarray, y: np.ndarray, folds: int, seed: int
) -> tuple[float | None, np.ndarray | None, dict[str, float]]:
    """K-fold CV over :data:`L2_GRID` on the known labels, with the one-standard-error rule.

    The AI prior alone counts as the strongest penalty of all (infinite). The chosen penalty
    is the strongest whose held-out log-loss is within one standard error of the best one, so
    a correction that only ties with "keep the AI label" within noise is not used (``None``).
    Fold assignment is seeded, so refits on the same labels are repeatable.
    """
    n = len(y)
    fold = np.random.default_rng(seed).permutation(n) % folds
    losses = {"prior": _item_log_loss(x, offset, y, None)}
    per_fold_init: list[np.ndarray | None] = [None] * folds
    grid = sorted(L2_GRID, reverse=True)
    for lam in grid:
        item = np.zeros(n)
        for f in range(folds):
            tr, te = fold != f, fold == f
            coef = _fit(x[tr], offset[tr], y[tr], lam, per_fold_init[f])
            per_fold_init[f] = coef
            item[te] = _item_log_loss(x[te], offset[te], y[te], coef)
        losses[f"l2={lam:g}"] = item
    means = {key: float(v.mean()) for key, v in losses.items()}
    best_key = min(means, key=means.__getitem__)
    se = float(losses[best_key].std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
    # Strongest first: the prior, then the grid from the largest penalty down.
    for key, lam in [("prior", None), *[(f"l2={g:g}", g) for g in grid]]:
        if means[key] <= means[best_key] + se:
            return lam, None, means
    return None, None, means  # unreachable: best_key itself qualifies


def relabel_ai_labels(
    pool: RoutingPool,
    state: RoutingState,
    *,
    min_labels: int = MIN_LABELS,
    l2: float | None = None,
    prior_strength: float = 0.8,
    seed: int = 0,
) -> RelabelResult:
    """Corrected AI labels for every item, learned from the human labels of routed items.

    On a cold start (see :func:`fit_label_model`) the result is the AI label unchanged, with
    ``probs`` = the smoothed judge distribution and ``fitted=False``. Deterministic for a
    given pool, state and ``seed`` (the seed only assigns cross-validation folds).
    """
    model = fit_label_model(
        pool, state, min_labels=min_labels, l2=l2, prior_strength=prior_strength, seed=seed
    )
    ai = np.asarray(pool.ai.label, dtype=int)
    if model is None:
        probs = _softmax(ai_log_prior(pool, prior_strength))
        return RelabelResult(
            labels=ai.copy(),
            probs=probs,
            changed=np.zeros(len(ai), dtype=bool),
            fitted=False,
            n_labels=len(state.known),
            info={"fallback": "ai_label"},
        )
    probs = model.predict_proba(pool, prior_strength=prior_strength)
    labels = probs.argmax(axis=1)
    return RelabelResult(
        labels=labels,
        probs=probs,
        changed=labels != ai,
        fitted=True,
        n_labels=model.n_labels,
        info={"l2": model.l2, "cv_loss": model.cv_loss},
    )


#: What :class:`CorrectedPolicy` doubts: the corrected label (the dataset takes it where no
#: human looks) or the raw AI label (the dataset keeps the judges' label, as in HyPER).
DOUBT_OF = ("corrected", "ai")


class CorrectedPolicy(Policy):
    """Route the items whose *corrected* label is least certain.

    score = 1 - max_k P(human says k), from :func:`relabel_ai_labels` refit every round on the
    labels back so far. Where humans do not look, the dataset gets the corrected label, so its
    chance of being wrong is what a human label would fix. Cold start: ``uncertainty``.

    ``doubt_of="ai"`` scores ``1 - P(human says the raw AI label)`` instead, for a dataset that
    keeps the judges' label on unrouted items (HyPER's setting): an item whose AI label the
    model can already fix (e.g. ``tie|b``) is then worth a human, because nobody applies the fix.

    ``explore`` routes that share of each round uniformly at random (see
    :class:`routing.policies.LearnedPolicy` and the selection-bias note above). The default is
    0: on the development half of PandaLM (bench/RESULTS.md, "## routing") a 10 % random
    slice cost 0.4-0.8 points at a 20 % budget and did not improve the corrected labels; the
    model's own doubt already sends items from every panel pattern that is not settled.
    """

    name = "corrected"
    version = "3"

    def __init__(
        self,
        *,
        seed: int = 0,
        min_labels: int = MIN_LABELS,
        explore: float = 0.0,
        doubt_of: str = "corrected",
    ) -> None:
        super().__init__(seed=seed)
        if not 0.0 <= explore <= 1.0:
            raise ValueError("explore must be within [0, 1]")
        if doubt_of not in DOUBT_OF:
            raise ValueError(f"doubt_of must be one of {DOUBT_OF}")
        self.min_labels = min_labels
        self.explore = explore
        self.doubt_of = doubt_of

    def score(self, pool, state, k, rng) -> Scored:
        result = relabel_ai_labels(pool, state, min_labels=self.min_labels, seed=self.seed)
        if not result.fitted:
            fallback = uncertainty_scores(pool)
            scored = Scored(
                fallback.scores,
                fallback.reason_names,
                fallback.contributions,
                info={"fallback": "uncertainty", "labels": result.n_labels},
            )
        else:
            if self.doubt_of == "ai":
                # The dataset keeps the raw AI label: route where *it* is likely wrong, as
                # the same model judges it (an item with no AI label is certainly unlabelled).
                ai = np.asarray(pool.ai.label)
                ok = ai != UNKNOWN
                doubt = np.ones(len(ai))
                doubt[ok] = 1.0 - result.probs[np.flatnonzero(ok), ai[ok]]
            else:
                doubt = 1.0 - result.confidence
            scored = Scored(
                doubt,
                ["corrected_label_doubt"],
                doubt[:, None],
                info={
                    "labels": result.n_labels,
                    "l2": result.info["l2"],
                    "doubt_of": self.doubt_of,
                },
            )
        return with_exploration(scored, state, k, self.explore, rng)


__all__ = [
    "DOUBT_OF",
    "L2_GRID",
    "LABEL_WEIGHT",
    "CorrectedPolicy",
    "LabelModel",
    "RelabelResult",
    "ai_log_prior",
    "fit_label_model",
    "label_model_matrix",
    "relabel_ai_labels",
]
