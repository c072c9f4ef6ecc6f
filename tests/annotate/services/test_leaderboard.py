from __future__ import annotations

import random
from typing import Any

import pytest

from annotate.models import Item, Judge, Judgment
from annotate.records import hash_content
from annotate.services.labels import final_labels_compute
from annotate.services.leaderboard import LeaderboardError, leaderboard_compute
from tests.annotate.pandalm import pandalm_project

pytestmark = pytest.mark.django_db

STRENGTH = {"strong": 2.0, "middle": 0.0, "weak": -2.0}


def item(project: Any, n: int, models: list[str]) -> Item:
    prompt = f"prompt {n}"
    responses = [{"model": m, "text": f"{m} says {n}"} for m in models]
    return Item.objects.create(
        project=project,
        external_id=str(n),
        content_hash=hash_content(prompt, responses),
        prompt=prompt,
        responses=responses,
    )


def judge(
    item: Item, value: dict, kind: str = "human", who: str = "x", ai: Judge | None = None
) -> None:
    Judgment.objects.create(
        item=item,
        kind=kind,
        source=who,
        external_annotator="" if ai else who,
        judge=ai,
        prompt_version="v1" if ai else "",
        task_type=item.project.task_type,
        value=value,
    )


@pytest.fixture
def arena(make_project: Any) -> Any:
    """300 pairwise battles between three models of known strength (Bradley–Terry truth)."""
    import math

    project = make_project("arena")
    rng = random.Random(1)
    names = list(STRENGTH)
    for n in range(300):
        a, b = rng.sample(names, 2)
        p_a = 1 / (1 + math.exp(STRENGTH[b] - STRENGTH[a]))
        judge(item(project, n, [a, b]), {"strength": 2 if rng.random() < p_a else -2})
    final_labels_compute(project=project)
    return project


def test_bradley_terry_recovers_the_order_of_known_strengths(arena: Any) -> None:
    board = leaderboard_compute(project=arena, labels="final", rounds=50)
    assert [m.model for m in board.models] == ["strong", "middle", "weak"]
    assert [m.rank for m in board.models] == [1, 2, 3]
    assert board.labels_used == 300
    for m in board.models:
        assert m.bt_low <= m.bt <= m.bt_high
        assert m.comparisons > 0
    strong, _, weak = board.models
    assert strong.bt_low > weak.bt_high  # intervals separate models 4 logits apart
    # Elo scale: 2 logits ≈ 347 points between neighbours.
    assert 200 < strong.bt - board.models[1].bt < 500


def test_openskill_agrees_with_bradley_terry_on_the_order(arena: Any) -> None:
    board = leaderboard_compute(project=arena, labels="human", rounds=0)
    by_mu = sorted(board.models, key=lambda m: -m.mu)
    assert [m.model for m in by_mu] == ["strong", "middle", "weak"]
    assert all(m.mu_low < m.mu < m.mu_high for m in board.models)


def test_pairwise_projects_show_no_separate_plackett_luce(arena: Any) -> None:
    board = leaderboard_compute(project=arena, rounds=0)
    assert all(m.pl is None for m in board.models)


def test_rankings_get_plackett_luce_with_intervals(make_project: Any) -> None:
    project = make_project("rank", task_type="ranking", k=3)
    rng = random.Random(2)
    for n in range(80):
        # "strong" first, "weak" last, mostly.
        ranks = [1, 2, 3] if rng.random() < 0.8 else [2, 1, 3]
        judge(item(project, n, ["strong", "middle", "weak"]), {"ranks": ranks})
    board = leaderboard_compute(project=project, labels="human", rounds=20)
    assert [m.model for m in board.models] == ["strong", "middle", "weak"]
    assert board.pl_rounds == 20
    pl = {m.model: m for m in board.models}
    assert pl["strong"].pl > pl["middle"].pl > pl["weak"].pl
    assert all(m.pl_low <= m.pl <= m.pl_high for m in board.models)
    assert board.pairs == 80 * 3


def test_best_worst_labels_rate_best_over_worst(make_project: Any) -> None:
    project = make_project("bw", task_type="kwise", k=3)
    for n in range(20):
        judge(item(project, n, ["a", "b", "c"]), {"best": 2, "worst": 0})
    board = leaderboard_compute(project=project, labels="human", rounds=0)
    assert [m.model for m in board.models] == ["c", "b", "a"]


def test_ties_count_half_a_win_each_way(make_project: Any) -> None:
    project = make_project("ties")
    for n in range(10):
        judge(item(project, n, ["a", "b"]), {"strength": 0})
    board = leaderboard_compute(project=project, labels="human", rounds=0)
    a, b = board.models
    assert a.win_rate == b.win_rate == 0.5
    assert a.bt == pytest.approx(b.bt)


def test_items_without_model_names_or_with_one_model_twice_are_skipped(make_project: Any) -> None:
    project = make_project("skip")
    judge(item(project, 0, ["", "b"]), {"strength": 1})
    judge(item(project, 1, ["b", "b"]), {"strength": 1})
    judge(item(project, 2, ["a", "b"]), {"strength": 1})
    board = leaderboard_compute(project=project, labels="human", rounds=0)
    assert (board.labels_used, board.labels_skipped) == (1, 2)


def test_ai_labels_are_rated_apart_from_human_ones(make_project: Any) -> None:
    project = make_project("sources")
    ai = Judge.objects.create(name="j", backend="imported")
    for n in range(10):
        it = item(project, n, ["a", "b"])
        judge(it, {"strength": 2})
        judge(it, {"strength": -2}, kind="ai", who="j", ai=ai)
    human = leaderboard_compute(project=project, labels="human", rounds=0)
    machine = leaderboard_compute(project=project, labels="ai", rounds=0)
    assert human.models[0].model == "a"
    assert machine.models[0].model == "b"


def test_bad_arguments_are_refused(project: Any) -> None:
    with pytest.raises(LeaderboardError):
        leaderboard_compute(project=project, labels="crowd")
    with pytest.raises(LeaderboardError):
        leaderboard_compute(project=project, aspect="nope")


def test_an_empty_project_gives_an_empty_board(project: Any) -> None:
    board = leaderboard_compute(project=project, rounds=10)
    assert board.labels_used == 0 and board.models == []


def test_pandalm_models_are_rated_from_real_human_labels(shared_data: Any) -> None:
    project = pandalm_project(shared_data, judges=False)
    final_labels_compute(project=project)
    board = leaderboard_compute(project=project, labels="final", rounds=30)
    assert len(board.models) >= 4
    assert board.labels_used == 999
    assert all(m.bt_low <= m.bt <= m.bt_high for m in board.models)
