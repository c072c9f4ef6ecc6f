from __future__ import annotations

from typing import Any

import pytest

from annotate.models import Judge, Judgment
from tests.annotate.api.clients import token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged(project: Any, member: Any) -> Any:
    judge = Judge.objects.create(name="judge-1", backend="imported")
    item = project.items.get(external_id="0")
    Judgment.objects.create(
        item=item,
        kind="human",
        source="annotate",
        annotator=member,
        task_type="pairwise",
        value={"strength": 2},
    )
    Judgment.objects.create(
        item=item,
        kind="human",
        source="ext",
        external_annotator="ext",
        task_type="pairwise",
        value={"strength": 1},
    )
    Judgment.objects.create(
        item=item,
        kind="ai",
        source="judge-1",
        judge=judge,
        prompt_version="v1",
        task_type="pairwise",
        value={"strength": -1},
        confidence=0.6,
        probabilities={"a": 0.3, "b": 0.6, "tie": 0.1},
    )
    return project


def test_it_lists_human_and_ai_judgments(owner: Any, judged: Any) -> None:
    rows = token_client(owner).get(f"/api/projects/{judged.slug}/judgments/").json()["results"]
    assert [(r["kind"], r["annotator"], r["judge"]) for r in rows] == [
        ("human", "member", None),
        ("human", "ext", None),
        ("ai", None, "judge-1"),
    ]
    assert rows[2]["probabilities"]["b"] == 0.6 and rows[0]["item_external_id"] == "0"


def test_it_filters_by_kind_judge_item_and_aspect(owner: Any, judged: Any) -> None:
    client = token_client(owner)
    base = f"/api/projects/{judged.slug}/judgments/"
    item = judged.items.get(external_id="0")
    assert client.get(base + "?kind=ai").json()["count"] == 1
    assert client.get(base + "?judge=judge-1").json()["count"] == 1
    assert client.get(base + f"?item={item.pk}").json()["count"] == 3
    assert client.get(base + "?aspect=harmlessness").json()["count"] == 0
    assert client.get(base + "?kind=robot").status_code == 400


def test_annotators_are_forbidden_and_outsiders_see_nothing(
    member: Any, outsider: Any, judged: Any
) -> None:
    assert token_client(member).get(f"/api/projects/{judged.slug}/judgments/").status_code == 403
    assert token_client(outsider).get(f"/api/projects/{judged.slug}/judgments/").status_code == 404
