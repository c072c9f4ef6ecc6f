from __future__ import annotations

import numpy as np
import pytest

from routing.features import (
    UNKNOWN,
    JudgeVerdicts,
    combine_judges,
    judge_features,
    make_pool_features,
)
from routing.policies import (
    LearnedPolicy,
    RandomPolicy,
    UncertaintyPolicy,
    fit_error_model,
    make_policy,
)
from routing.pool import RoutingPool, RoutingState, build_pool
from routing.rounds import route_in_rounds
from routing.synthetic import synthetic_pool

FAST = ("random", "uncertainty", "learned", "corrected")
# HyPER is slow by design; a few mixes and candidates exercise the same code paths.
SMALL_HYPER = {"n_mixes": 8, "n_candidates": 10}


def policy(name: str, seed: int = 0):
    return make_policy(name, seed=seed, **(SMALL_HYPER if name == "hyper" else {}))


def pool_from_confidences(probs_a: np.ndarray) -> RoutingPool:
    """A one-judge pool whose confidence in response A is ``probs_a`` (no ties)."""
    p = np.column_stack([np.zeros(len(probs_a)), probs_a, 1 - probs_a])
    judges = [JudgeVerdicts("j", p)]
    ai = combine_judges(judges)
    names, values = judge_features(judges, ai)
    return RoutingPool(make_pool_features(names, values), ai)


@pytest.fixture(scope="module")
def syn():
    return synthetic_pool(2000, seed=3)


def test_uncertainty_routes_least_confident_items_first():
    pool = pool_from_confidences(np.array([0.99, 0.55, 0.9, 0.6, 0.51]))
    result = UncertaintyPolicy().route(pool, 3)
    assert result.chosen.tolist() == [4, 1, 3]
    assert result.policy == "uncertainty" and result.version == "2"


@pytest.mark.parametrize("name", [*FAST, "hyper"])
@pytest.mark.parametrize("budget", [0, 1, 37, 2000, 5000])
def test_every_policy_spends_exactly_the_budget_or_the_whole_pool(syn, name, budget):
    routed = np.zeros(2000, dtype=bool)
    routed[:100] = True
    labels = np.where(routed, syn.human_oracle()(np.arange(2000)), UNKNOWN)
    result = policy(name, seed=1).route(syn.pool, budget, routed=routed, human_labels=labels)
    assert len(result.chosen) == min(budget, 1900)
    assert len(np.unique(result.chosen)) == len(result.chosen)
    assert not routed[result.chosen].any()


def test_a_negative_budget_is_refused(syn):
    with pytest.raises(ValueError, match="budget"):
        RandomPolicy().route(syn.pool, -1)


@pytest.mark.parametrize("name", [*FAST, "hyper"])
def test_every_policy_routes_an_empty_pool_to_nobody(name):
    pool = pool_from_confidences(np.zeros(0))
    result = policy(name).route(pool, 10)
    assert result.chosen.tolist() == [] and result.decisions() == []


def test_human_labels_of_unrouted_items_are_refused(syn):
    labels = np.full(2000, UNKNOWN)
    labels[5] = 1
    with pytest.raises(ValueError, match="not routed"):
        LearnedPolicy().route(syn.pool, 10, routed=np.zeros(2000, bool), human_labels=labels)


def test_no_policy_reads_labels_of_items_it_has_not_routed(syn):
    # Two oracles that agree on everything a policy asks for and disagree everywhere else:
    # a policy that leaked unrouted labels would route differently under the second one.
    truth = syn.human_oracle(seed=0)
    for name in (*FAST, "hyper"):
        first = route_in_rounds(
            policy(name, seed=2), syn.pool, budget=300, round_size=50, oracle=truth
        )
        asked = np.zeros(2000, dtype=bool)
        asked[first.order] = True
        flipped = np.where(asked, truth(np.arange(2000)), (truth(np.arange(2000)) + 1) % 3)
        second = route_in_rounds(
            policy(name, seed=2),
            syn.pool,
            budget=300,
            round_size=50,
            oracle=lambda i, f=flipped: f[i],
        )
        assert np.array_equal(first.order, second.order), name


def test_the_learned_policy_changes_its_routing_when_the_labels_it_paid_for_change(syn):
    # The counterpart of the leak test: routed labels do matter, so that test could fail.
    routed = np.zeros(2000, dtype=bool)
    routed[:200] = True
    truth = syn.human_oracle()(np.arange(2000))
    honest = LearnedPolicy(explore=0).route(
        syn.pool, 100, routed=routed, human_labels=np.where(routed, truth, UNKNOWN)
    )
    liar = np.where(routed, (syn.pool.ai.label + 1) % 3, UNKNOWN)
    liar[:100] = syn.pool.ai.label[:100]
    other = LearnedPolicy(explore=0).route(syn.pool, 100, routed=routed, human_labels=liar)
    assert set(honest.chosen.tolist()) != set(other.chosen.tolist())


@pytest.mark.parametrize("name", [*FAST, "hyper"])
def test_routing_is_deterministic_for_a_seed(syn, name):
    routed = np.zeros(2000, dtype=bool)
    routed[:120] = True
    labels = np.where(routed, syn.human_oracle()(np.arange(2000)), UNKNOWN)
    runs = [
        policy(name, seed=7).route(syn.pool, 150, routed=routed, human_labels=labels)
        for _ in range(2)
    ]
    assert np.array_equal(runs[0].chosen, runs[1].chosen)
    assert np.allclose(runs[0].scores, runs[1].scores)


def test_random_policy_depends_on_its_seed(syn):
    a = RandomPolicy(seed=1).route(syn.pool, 50).chosen
    b = RandomPolicy(seed=2).route(syn.pool, 50).chosen
    assert set(a.tolist()) != set(b.tolist())


def test_ties_are_broken_by_a_seeded_shuffle_not_by_index():
    pool = pool_from_confidences(np.full(100, 0.7))
    first = UncertaintyPolicy(seed=0).route(pool, 10).chosen
    assert np.array_equal(first, UncertaintyPolicy(seed=0).route(pool, 10).chosen)
    assert sorted(first.tolist()) != list(range(10))
    assert set(first.tolist()) != set(UncertaintyPolicy(seed=1).route(pool, 10).chosen.tolist())


def test_learned_policy_falls_back_to_uncertainty_on_a_cold_start(syn):
    result = LearnedPolicy(explore=0).route(syn.pool, 40)
    assert result.info["fallback"] == "uncertainty"
    assert np.array_equal(result.chosen, UncertaintyPolicy().route(syn.pool, 40).chosen)


def test_learned_policy_beats_random_where_ai_error_is_predictable():
    syn = synthetic_pool(3000, seed=11)
    oracle = syn.human_oracle(accuracy=0.95, seed=1)

    def accuracy(name: str) -> float:
        run = route_in_rounds(
            make_policy(name, seed=0), syn.pool, budget=600, round_size=100, oracle=oracle
        )
        return float((run.final_labels(syn.pool.ai.label) == syn.truth).mean())

    learned, uncertainty, rand = accuracy("learned"), accuracy("uncertainty"), accuracy("random")
    assert learned > rand + 0.05
    assert learned > uncertainty


def test_error_model_learns_which_feature_predicts_ai_errors(syn):
    routed = np.zeros(2000, dtype=bool)
    routed[:800] = True
    labels = np.where(routed, syn.truth, UNKNOWN)
    from routing.pool import RoutingState

    model = fit_error_model(syn.pool, RoutingState.of(2000, routed, labels))
    coef = dict(zip(model.names, model.model.coef_[0], strict=True))
    assert coef["x0"] > 0.5
    assert max(abs(coef[f"x{i}"]) for i in range(1, 6)) < coef["x0"] / 3


def test_every_decision_carries_policy_version_score_rank_and_reason(syn):
    routed = np.zeros(2000, dtype=bool)
    routed[:300] = True
    labels = np.where(routed, syn.truth, UNKNOWN)
    result = LearnedPolicy(explore=0).route(syn.pool, 5, routed=routed, human_labels=labels)
    decisions = result.decisions()
    assert [d.rank for d in decisions] == list(range(5))
    top = decisions[0]
    assert top.policy == "learned" and top.version == "1" and top.route == "human"
    assert top.score == pytest.approx(result.scores[top.index])
    assert 0 < len(top.reason) <= 5 and all(isinstance(v, float) for v in top.reason.values())
    everyone = result.decisions(include_ai=True)
    assert len(everyone) == 2000 and {d.route for d in everyone[5:]} == {"ai"}


def test_learned_exploration_spends_a_share_of_the_round_on_random_items(syn):
    routed = np.zeros(2000, dtype=bool)
    routed[:300] = True
    labels = np.where(routed, syn.truth, UNKNOWN)
    result = LearnedPolicy(explore=0.2).route(syn.pool, 50, routed=routed, human_labels=labels)
    assert result.info["explored"] == 10 and len(result.chosen) == 50


def test_make_policy_rejects_an_unknown_name():
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("oracle")


def test_uncertainty_orders_items_by_the_judges_flaw_cues_within_one_level_of_agreement():
    reasons = ["It is incorrect, not relevant.", "It is not complete.", "Clear.", "Clear."]
    pool = build_pool(
        prompts=["q"] * 4,
        responses_a=["a one", "a two", "a three", "a four"],
        responses_b=["b one", "b two", "b three", "b four"],
        judges=[
            JudgeVerdicts.from_labels("gpt", [1, 1, 1, 1], rationales=reasons),
            JudgeVerdicts.from_labels("pl", [1, 1, 1, 2]),
        ],
    )
    scores = make_policy("uncertainty").score(pool, RoutingState.empty(4), 1, None).scores
    # The split panel (item 3) still comes first: a flawed reason only orders agreeing items.
    assert np.argsort(-scores).tolist() == [3, 0, 1, 2]
