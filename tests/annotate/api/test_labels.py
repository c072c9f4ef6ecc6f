from __future__ import annotations

from typing import Any

import pytest

from annotate.models import FinalLabel, Judgment
from tests.annotate.api.clients import token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged(project: Any) -> Any:
    for item in project.items.all():
        for who, s in (("x", 2), ("y", 2 if item.external_id != "0" else -2)):
            Judgment.objects.create(
                item=item,
                kind="human",
                source=who,
                external_annotator=who,
                task_type="pairwise",
                value={"strength": s},
            )
    return project


def test_compute_writes_labels_and_reports_counts(owner: Any, judged: Any) -> None:
    response = token_client(owner).post(
        f"/api/projects/{judged.slug}/labels/compute/", {"method": "majority"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["total"] == 5 and response.json()["human"] == 5
    assert FinalLabel.objects.count() == 5


def test_compute_refuses_an_unknown_method(owner: Any, judged: Any) -> None:
    response = token_client(owner).post(
        f"/api/projects/{judged.slug}/labels/compute/", {"method": "vibes"}, format="json"
    )
    assert response.status_code == 400


def test_labels_list_with_provenance_and_filters(owner: Any, judged: Any) -> None:
    client = token_client(owner)
    client.post(f"/api/projects/{judged.slug}/labels/compute/", {}, format="json")
    rows = client.get(f"/api/projects/{judged.slug}/labels/").json()["results"]
    assert {r["source"] for r in rows} == {"human"} and rows[0]["num_humans"] == 2
    assert client.get(f"/api/projects/{judged.slug}/labels/?min_agreement=0.9").json()["count"] == 4
    assert client.get(f"/api/projects/{judged.slug}/labels/?source=ai").json()["count"] == 0
    assert client.get(f"/api/projects/{judged.slug}/labels/?min_agreement=abc").status_code == 400


def test_agreement_reports_alpha_annotators_and_disputes(owner: Any, judged: Any) -> None:
    client = token_client(owner)
    client.post(f"/api/projects/{judged.slug}/labels/compute/", {}, format="json")
    body = client.get(f"/api/projects/{judged.slug}/agreement/").json()
    assert set(body["alpha"]) == set(judged.aspects)
    assert {a["annotator"] for a in body["annotators"]} == {"x", "y"}
    assert body["disputed"][0]["external_id"] == "0"


@pytest.mark.parametrize(
    "method, path", [("get", "labels/"), ("post", "labels/compute/"), ("get", "agreement/")]
)
def test_annotators_are_forbidden_and_outsiders_see_nothing(
    member: Any, outsider: Any, judged: Any, method: str, path: str
) -> None:
    url = f"/api/projects/{judged.slug}/{path}"
    assert getattr(token_client(member), method)(url, {}, format="json").status_code == 403
    assert getattr(token_client(outsider), method)(url, {}, format="json").status_code == 404
    assert not FinalLabel.objects.exists()


def test_researchers_may_compute(member: Any, set_role: Any, judged: Any) -> None:
    set_role(judged, member, "researcher")
    assert (
        token_client(member)
        .post(f"/api/projects/{judged.slug}/labels/compute/", {}, format="json")
        .status_code
        == 200
    )
