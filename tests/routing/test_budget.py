from __future__ import annotations

import pytest

from routing.budget import Budget, budget_to_items, items_for_share


def test_a_judgment_budget_buys_judgments_divided_by_overlap_items():
    assert budget_to_items(judgments=600, overlap=3) == 200
    assert budget_to_items(judgments=601, overlap=3) == 200


def test_a_money_budget_rounds_down_to_whole_judgments_without_float_error():
    assert Budget(money=3.0, cost_per_judgment=0.1).total_judgments == 30
    assert budget_to_items(money=10.0, cost_per_judgment=0.45, overlap=2) == 11


def test_the_budget_is_capped_at_the_items_still_available():
    assert budget_to_items(judgments=1000, available=40) == 40
    assert budget_to_items(judgments=0, available=40) == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"judgments": 5, "money": 1.0, "cost_per_judgment": 1.0},
        {"money": 5.0},
        {"judgments": -1},
        {"judgments": 5, "overlap": 0},
    ],
)
def test_an_ill_formed_budget_is_refused(kwargs):
    with pytest.raises(ValueError):
        Budget(**kwargs)


def test_items_for_share_rounds_to_the_nearest_item():
    assert items_for_share(0.2, 999) == 200
    assert items_for_share(0.0, 999) == 0
    with pytest.raises(ValueError):
        items_for_share(1.5, 10)
