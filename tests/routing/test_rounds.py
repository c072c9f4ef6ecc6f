from __future__ import annotations

import numpy as np
import pytest

from routing.features import UNKNOWN
from routing.policies import LearnedPolicy, UncertaintyPolicy
from routing.rounds import route_in_rounds
from routing.synthetic import synthetic_pool


@pytest.fixture(scope="module")
def syn():
    return synthetic_pool(500, seed=8)


def test_rounds_ask_the_oracle_only_about_routed_items(syn):
    asked: list[int] = []
    truth = syn.human_oracle()

    def oracle(ids):
        asked.extend(ids.tolist())
        return truth(ids)

    run = route_in_rounds(LearnedPolicy(), syn.pool, budget=130, round_size=50, oracle=oracle)
    assert asked == run.order.tolist()
    assert [len(r.chosen) for r in run.rounds] == [50, 50, 30]
    assert (run.human_labels != UNKNOWN).sum() == 130


def test_a_prefix_of_the_routing_order_is_the_run_with_the_smaller_budget(syn):
    oracle = syn.human_oracle()
    long = route_in_rounds(
        LearnedPolicy(seed=1), syn.pool, budget=200, round_size=50, oracle=oracle
    )
    short = route_in_rounds(
        LearnedPolicy(seed=1), syn.pool, budget=100, round_size=50, oracle=oracle
    )
    assert np.array_equal(long.order[:100], short.order)


def test_final_labels_take_humans_where_routed_and_ai_elsewhere(syn):
    run = route_in_rounds(
        UncertaintyPolicy(),
        syn.pool,
        budget=20,
        round_size=20,
        oracle=lambda ids: np.zeros(len(ids), int),
    )
    final = run.final_labels(syn.pool.ai.label, human_items=10)
    assert (final[run.order[:10]] == 0).all()
    rest = np.setdiff1d(np.arange(500), run.order[:10])
    assert np.array_equal(final[rest], syn.pool.ai.label[rest])


def test_a_zero_budget_routes_nothing(syn):
    run = route_in_rounds(
        UncertaintyPolicy(), syn.pool, budget=0, round_size=10, oracle=lambda ids: ids
    )
    assert run.order.tolist() == [] and run.rounds == []


def test_an_oracle_that_answers_the_wrong_number_of_items_is_refused(syn):
    with pytest.raises(ValueError, match="oracle"):
        route_in_rounds(
            UncertaintyPolicy(), syn.pool, budget=5, round_size=5, oracle=lambda ids: ids[:1]
        )
