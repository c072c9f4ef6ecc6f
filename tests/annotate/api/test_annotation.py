"""The human queue over JSON: next, submit, skip, progress."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotate.models import Assignment, Item, Judgment

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def queue(make_project: Any, member: Any, set_role: Any) -> Any:
    project = make_project("q", items=2, gold_rate=0.0, aspects=["overall"])
    set_role(project, member, "annotator")
    return project


def api(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def next_url(project: Any) -> str:
    return reverse("api-assignment-next", args=[project.slug])


def submit_url(project: Any, pk: int) -> str:
    return reverse("api-assignment-submit", args=[project.slug, pk])


def test_an_outsider_gets_404(queue: Any, outsider: Any) -> None:
    assert api(outsider).post(next_url(queue)).status_code == 404


def test_it_needs_authentication(queue: Any) -> None:
    assert APIClient().post(next_url(queue)).status_code in (401, 403)


def test_next_serves_blind_responses_in_presentation_order(queue: Any, member: Any) -> None:
    response = api(member).post(next_url(queue))
    assert response.status_code == 200
    body = response.json()
    a = Assignment.objects.get(pk=body["id"])
    item = a.item
    assert [r["label"] for r in body["responses"]] == ["A", "B"]
    assert [r["text"] for r in body["responses"]] == [
        item.responses[c]["text"] for c in a.presentation_order
    ]
    assert all("model" not in r for r in body["responses"])


def test_next_writes_the_expiry_as_the_schema_says(queue: Any, member: Any) -> None:
    body = api(member).post(next_url(queue)).json()
    a = Assignment.objects.get(pk=body["id"])
    assert body["expires_at"] == serializers.DateTimeField().to_representation(a.expires_at)
    assert body["status"] == "active" and body["task_type"] == "pairwise"
    assert body["aspects"] == ["overall"] and body["external_id"] == a.item.external_id


def test_next_answers_204_when_nothing_is_left(queue: Any, member: Any) -> None:
    queue.items.update(route=Item.Route.AI)
    assert api(member).post(next_url(queue)).status_code == 204


def test_submit_maps_to_canonical_order_and_is_idempotent(queue: Any, member: Any) -> None:
    client = api(member)
    pk = client.post(next_url(queue)).json()["id"]
    Assignment.objects.filter(pk=pk).update(presentation_order=[1, 0])
    payload = {"verdicts": {"overall": {"strength": 1}}, "confidence": "low"}
    first = client.post(submit_url(queue, pk), payload, format="json")
    second = client.post(submit_url(queue, pk), payload, format="json")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert first.json()["judgments"] == [{"aspect": "overall", "value": {"strength": -1}}]
    assert Judgment.objects.count() == 1


@pytest.mark.parametrize(
    "payload",
    [
        {"verdicts": {"overall": {"strength": 5}}},
        {"verdicts": {"overall": {"strength": 1}, "tone": {"strength": 1}}},
        {"verdicts": {}},
        {"verdicts": {"overall": {"strength": 1}}, "confidence": "very"},
        {},
        {"verdicts": [{"strength": 1}]},
        {"verdicts": {"overall": {"strength": 1}}, "rationale": ["not", "text"]},
        {"verdicts": {"overall": {"strength": 1}}, "confidence": None},
        [{"verdicts": {"overall": {"strength": 1}}}],
    ],
)
def test_bad_input_is_a_400_and_changes_nothing(queue: Any, member: Any, payload: Any) -> None:
    client = api(member)
    pk = client.post(next_url(queue)).json()["id"]
    response = client.post(submit_url(queue, pk), payload, format="json")
    assert response.status_code == 400
    assert Judgment.objects.count() == 0
    assert Assignment.objects.get(pk=pk).status == "active"


def test_someone_elses_assignment_is_a_404(queue: Any, member: Any, owner: Any) -> None:
    pk = api(member).post(next_url(queue)).json()["id"]
    response = api(owner).post(
        submit_url(queue, pk), {"verdicts": {"overall": {"strength": 1}}}, format="json"
    )
    assert response.status_code == 404 and Judgment.objects.count() == 0


def test_skip_then_progress(queue: Any, member: Any) -> None:
    client = api(member)
    pk = client.post(next_url(queue)).json()["id"]
    skip = reverse("api-assignment-skip", args=[queue.slug, pk])
    assert client.post(skip, {"reason": "unclear"}, format="json").json()["status"] == "skipped"
    progress = client.get(reverse("api-progress", args=[queue.slug])).json()
    assert progress == {
        "done": 0, "today": 0, "skipped": 1, "remaining": 1, "remaining_capped": False
    }  # fmt: skip


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "application/json; indent=2"])
def test_next_answers_json_to_what_clients_accept(queue: Any, member: Any, accept: Any) -> None:
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    response = api(member).post(next_url(queue), **headers)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["responses"]


def test_next_refuses_a_type_it_cannot_give_with_406(queue: Any, member: Any) -> None:
    client = api(member)
    assert client.post(next_url(queue), HTTP_ACCEPT="text/html").status_code == 406
    assert client.post(next_url(queue) + "?format=api").status_code == 404  # DRF's answer
    assert client.post(next_url(queue) + "?format=json").status_code == 200


def test_submit_reads_someone_elses_assignment_as_404_in_any_project(
    queue: Any, member: Any, owner: Any, make_project: Any, set_role: Any
) -> None:
    """The assignment named in the URL is read with the token: it must still be this caller's,
    in this project."""
    other = make_project("other", items=1, gold_rate=0.0, aspects=["overall"])
    set_role(other, member, "annotator")
    annotator, admin = api(member), api(owner)
    mine = annotator.post(next_url(queue)).json()["id"]
    payload = {"verdicts": {"overall": {"strength": 1}}}
    assert admin.post(submit_url(queue, mine), payload, format="json").status_code == 404
    assert annotator.post(submit_url(other, mine), payload, format="json").status_code == 404
    assert annotator.post(submit_url(queue, mine), payload, format="json").status_code == 200
