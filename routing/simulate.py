"""HyPER-style routing: simulated mixes, a proxy reward model and a performance predictor.

After Miranda et al., "Hybrid Preferences" (ACL 2025), with three changes a live platform
allows or needs:

1. **The platform makes its own training signal.** The paper trains one full reward model per
   simulated mix offline. Here, each round, the human-labelled items are split into a fit part
   and a held-out part; for each simulated mix over the fit part (human label where the mix
   routes the item, AI label elsewhere) a cheap proxy reward model (Bradley–Terry, i.e.
   logistic regression on frozen ``emb(A) - emb(B)``) is trained and scored by its accuracy
   on the held-out human labels.
2. **Counts are shares of fixed pool-wide bins**: the mix vector is, for each binary tag, the
   share of the training set that is human-labelled *and* carries the tag. Bins are fixed on
   the whole pool (:func:`routing.features.bin_edges`), and shares make a mix over the
   labelled subset comparable with a candidate over the whole pool.
3. **A regularised PPM**: ridge on degree-2 polynomial shares with the penalty chosen by
   leave-one-out (``RidgeCV``) instead of an unregularised fit of thousands of terms.

Candidates are then simulated over the unrouted pool under the budget (tags shuffled, items
added tag by tag, seeded), scored by the PPM, and the best is chosen. Per-item scores are the
first-order PPM gain of adding the item to the chosen mix, which also gives the reasons.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures

from routing.features import A_BETTER, B_BETTER
from routing.policies import Policy, Scored, uncertainty_scores
from routing.pool import RoutingPool, RoutingState


def simulate_mix(tags: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """One candidate mix of ``budget`` rows of ``tags``, built tag by tag as in HyPER.

    Tags are visited in a random order; from each, a random share (uniform in [0, 1]) of its
    not-yet-chosen items is added until the budget is spent; any remainder is filled at
    random. Taking a random share instead of the whole tag keeps a 3-bin tag (a third of the
    pool) from making every candidate "one bin and nothing else".
    """
    n, m = tags.shape
    budget = min(max(int(budget), 0), n)
    if budget == n:
        return rng.permutation(n)
    taken = np.zeros(n, dtype=bool)
    out: list[np.ndarray] = []
    left = budget
    for t in rng.permutation(m):
        if left == 0:
            break
        cand = np.flatnonzero(tags[:, t] & ~taken)
        if len(cand) == 0:
            continue
        take = min(left, round(rng.random() * len(cand)))
        if take == 0:
            continue
        pick = rng.choice(cand, size=take, replace=False)
        taken[pick] = True
        out.append(pick)
        left -= take
    if left:
        pick = rng.choice(np.flatnonzero(~taken), size=left, replace=False)
        out.append(pick)
    return np.concatenate(out) if out else np.zeros(0, dtype=int)


def proxy_reward_accuracy(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> float:
    """Accuracy of a Bradley–Terry proxy reward model on held-out non-tie labels.

    The model is a logistic regression on ``x = emb(A) - emb(B)`` without intercept, trained on
    both orientations (``x`` labelled A, ``-x`` labelled B) so it has no position bias. Ties
    carry no preference and are left out of both sides. Returns NaN when nothing is scorable.
    """
    tr = (y_train == A_BETTER) | (y_train == B_BETTER)
    te = (y_test == A_BETTER) | (y_test == B_BETTER)
    if tr.sum() < 2 or te.sum() == 0:
        return float("nan")
    x = x_train[tr]
    y = (y_train[tr] == A_BETTER).astype(int)
    # liblinear: an order of magnitude faster than lbfgs on these small, dense problems.
    model = LogisticRegression(C=1.0, fit_intercept=False, solver="liblinear")
    model.fit(np.vstack([x, -x]), np.concatenate([y, 1 - y]))
    pred_a = x_test[te] @ model.coef_[0] > 0
    return float((pred_a == (y_test[te] == A_BETTER)).mean())


class HyperPolicy(Policy):
    """Performance-prediction routing after HyPER (see the module docstring).

    Falls back to :class:`routing.policies.UncertaintyPolicy` until ``min_labels`` human labels
    are back. ``result.seconds`` and ``result.info["seconds"]`` report its own time; it is
    the one policy exempt from the 10-second budget for 100,000 items.
    """

    name = "hyper"
    version = "1"

    def __init__(
        self,
        *,
        seed: int = 0,
        n_mixes: int = 48,
        n_candidates: int = 200,
        min_labels: int = 40,
        holdout: float = 0.3,
    ) -> None:
        super().__init__(seed=seed)
        self.n_mixes = n_mixes
        self.n_candidates = n_candidates
        self.min_labels = min_labels
        self.holdout = holdout

    def _rm_inputs(self, pool: RoutingPool) -> np.ndarray:
        # Without an embedder the proxy reward model falls back to the item features (a weak
        # reward model, but the PPM still learns which human shares help it).
        if pool.features.embedding_diff is not None:
            return pool.features.embedding_diff
        _, x = pool.features.model_matrix()
        return (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-9)

    def fit_ppm(self, pool: RoutingPool, state: RoutingState, rng: np.random.Generator):
        """Simulate mixes over the labelled items and fit the PPM; returns ``(ppm, info)``."""
        tags = pool.features.tags.astype(float)
        known = rng.permutation(state.known)
        n_test = max(1, round(self.holdout * len(known)))
        test, fit = known[:n_test], known[n_test:]
        x = self._rm_inputs(pool)
        shares, scores = [], []
        for _ in range(self.n_mixes):
            mix = fit[simulate_mix(tags[fit] > 0, round(rng.random() * len(fit)), rng)]
            y = pool.ai.label[fit].copy()
            where = np.isin(fit, mix)
            y[where] = state.human_labels[fit][where]
            acc = proxy_reward_accuracy(x[fit], y, x[test], state.human_labels[test])
            if np.isnan(acc):
                continue
            shares.append(tags[mix].sum(axis=0) / len(fit))
            scores.append(acc)
        if len(scores) < 5:
            return None, {"mixes": len(scores)}
        ppm = make_pipeline(
            PolynomialFeatures(2, include_bias=False),
            RidgeCV(alphas=np.logspace(-3, 3, 13)),
        )
        ppm.fit(np.array(shares), np.array(scores))
        return ppm, {
            "mixes": len(scores),
            "ridge_alpha": float(ppm[-1].alpha_),
            "proxy_rm_accuracy_mean": float(np.mean(scores)),
            "proxy_rm_accuracy_std": float(np.std(scores)),
        }

    def score(self, pool, state, k, rng) -> Scored:
        start = time.perf_counter()
        ppm = None
        info: dict = {}
        if len(state.known) >= self.min_labels and pool.features.tags.shape[1] > 0:
            ppm, info = self.fit_ppm(pool, state, rng)
        if ppm is None:
            fallback = uncertainty_scores(pool)
            info.update(fallback="uncertainty", seconds=time.perf_counter() - start)
            return Scored(fallback.scores, fallback.reason_names, fallback.contributions, info=info)

        n = len(pool)
        tags = pool.features.tags.astype(float)
        open_items = np.flatnonzero(~state.routed)
        base = tags[state.routed].sum(axis=0)
        # Candidate counts only need each mix's tag sums; the members of the winner are
        # regenerated from its own seed, so 100,000-item pools do not keep 200 index arrays.
        seeds = rng.integers(0, 2**32, size=self.n_candidates)
        cand_shares = np.empty((self.n_candidates, tags.shape[1]))
        for c, s in enumerate(seeds):
            mix = open_items[simulate_mix(tags[open_items] > 0, k, np.random.default_rng(s))]
            cand_shares[c] = (base + tags[mix].sum(axis=0)) / n
        predicted = ppm.predict(cand_shares)
        best = int(np.argmax(predicted))
        chosen = open_items[
            simulate_mix(tags[open_items] > 0, k, np.random.default_rng(seeds[best]))
        ]

        # Per-tag marginal gain at the chosen mix (finite difference of one item's share);
        # an item's score is the sum over its tags: the paper's "cheaper variant", and reasons.
        at = cand_shares[best]
        bumped = at + np.eye(len(at)) / n
        gain = (ppm.predict(bumped) - predicted[best]) * n
        contributions = tags * gain
        scores = contributions.sum(axis=1)
        chosen = chosen[np.argsort(-scores[chosen], kind="stable")]
        info.update(
            predicted_score=float(predicted[best]),
            predicted_score_random_candidate=float(np.median(predicted)),
            candidates=self.n_candidates,
            seconds=time.perf_counter() - start,
        )
        return Scored(
            scores, list(pool.features.tag_names), contributions, chosen=chosen, info=info
        )
