from __future__ import annotations

from typing import Any

import pytest

from annotate.models import Judge, JudgeRun
from annotate.services import judging
from tests.annotate.api.clients import token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def judge() -> Judge:
    return Judge.objects.create(name="smol", backend="llm_pairwise")


def test_a_run_starts_lists_and_cancels(
    owner: Any, project: Any, judge: Judge, monkeypatch: Any
) -> None:
    monkeypatch.setattr(judging, "_enqueue", lambda *args, **kwargs: None)  # no gpu worker here
    client = token_client(owner)
    response = client.post(
        f"/api/projects/{project.slug}/judge-runs/", {"judge": "smol"}, format="json"
    )
    assert response.status_code == 202
    run = response.json()
    assert (run["judge"], run["status"], run["total"]) == ("smol", "queued", 5)
    assert client.get(f"/api/projects/{project.slug}/judge-runs/").json()["count"] == 1
    assert (
        client.get(f"/api/projects/{project.slug}/judge-runs/{run['id']}/").json()["id"]
        == run["id"]
    )
    cancelled = client.post(f"/api/projects/{project.slug}/judge-runs/{run['id']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


def test_an_unknown_or_imported_judge_is_a_400(owner: Any, project: Any) -> None:
    Judge.objects.create(name="gpt", backend="imported")
    client = token_client(owner)
    assert (
        client.post(
            f"/api/projects/{project.slug}/judge-runs/", {"judge": "nope"}, format="json"
        ).status_code
        == 400
    )
    response = client.post(
        f"/api/projects/{project.slug}/judge-runs/", {"judge": "gpt"}, format="json"
    )
    assert response.status_code == 400 and "imported" in str(response.json())
    assert not JudgeRun.objects.exists()


def test_a_run_of_another_project_is_not_found(
    owner: Any, project: Any, make_project: Any, judge: Judge
) -> None:
    other = make_project("other")
    run = JudgeRun.objects.create(project=other, judge=judge, prompt_version="v1")
    client = token_client(owner)
    assert client.get(f"/api/projects/{project.slug}/judge-runs/{run.pk}/").status_code == 404
    assert (
        client.post(f"/api/projects/{project.slug}/judge-runs/{run.pk}/cancel/").status_code == 404
    )


@pytest.mark.parametrize(
    "method, path", [("get", ""), ("post", ""), ("get", "{id}/"), ("post", "{id}/cancel/")]
)
def test_annotators_are_forbidden_and_outsiders_see_nothing(
    member: Any, outsider: Any, project: Any, judge: Judge, method: str, path: str
) -> None:
    run = JudgeRun.objects.create(project=project, judge=judge, prompt_version="v1")
    url = f"/api/projects/{project.slug}/judge-runs/" + path.format(id=run.pk)
    assert (
        getattr(token_client(member), method)(url, {"judge": "smol"}, format="json").status_code
        == 403
    )
    assert (
        getattr(token_client(outsider), method)(url, {"judge": "smol"}, format="json").status_code
        == 404
    )
    run.refresh_from_db()
    assert run.status == "queued" and JudgeRun.objects.count() == 1
