from __future__ import annotations

from typing import Any

import pytest

from tests.annotate.api.clients import token_client
from tests.factories import label_every_item

pytestmark = pytest.mark.django_db


@pytest.fixture
def rated(project: Any) -> Any:
    return label_every_item(project, strength=-1)


def test_it_rates_models_with_intervals(owner: Any, rated: Any) -> None:
    body = (
        token_client(owner)
        .get(f"/api/projects/{rated.slug}/leaderboard/?labels=human&rounds=10")
        .json()
    )
    assert body["labels_used"] == 5
    top = body["models"][0]
    assert top["model"] == "model-1" and top["rank"] == 1
    assert (
        top["bradley_terry"]["low"]
        <= top["bradley_terry"]["rating"]
        <= top["bradley_terry"]["high"]
    )
    assert set(top["openskill"]) == {"mu", "sigma", "ordinal"}


def test_bad_parameters_are_a_400(owner: Any, rated: Any) -> None:
    client = token_client(owner)
    assert client.get(f"/api/projects/{rated.slug}/leaderboard/?labels=crowd").status_code == 400
    assert client.get(f"/api/projects/{rated.slug}/leaderboard/?aspect=nope").status_code == 400
    assert client.get(f"/api/projects/{rated.slug}/leaderboard/?rounds=-1").status_code == 400


def test_annotators_are_forbidden_and_outsiders_see_nothing(
    member: Any, outsider: Any, rated: Any
) -> None:
    assert token_client(member).get(f"/api/projects/{rated.slug}/leaderboard/").status_code == 403
    assert token_client(outsider).get(f"/api/projects/{rated.slug}/leaderboard/").status_code == 404
