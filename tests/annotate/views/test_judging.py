from __future__ import annotations

from typing import Any

import pytest

from annotate.models import Judge, JudgeRun, Rubric

pytestmark = pytest.mark.django_db


@pytest.fixture
def judge() -> Judge:
    return Judge.objects.create(name="tiny")


def test_a_researcher_starts_a_run_and_sees_its_progress(
    client: Any, member: Any, project: Any, judge: Judge, set_role: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr("models_gpu.tasks.judge_batch.delay", lambda *a: None)
    set_role(project, member, "researcher")
    client.force_login(member)
    assert client.get(f"/p/{project.slug}/judges/").status_code == 200
    client.post(f"/p/{project.slug}/judges/run/", {"judge": "tiny"})
    run = JudgeRun.objects.get()
    assert run.total == 5
    poll = client.get(f"/p/{project.slug}/judges/runs/", HTTP_HX_REQUEST="true")
    assert poll.status_code == 200 and b"0 judged" in poll.content and b"every 1s" in poll.content


def test_polling_stops_when_no_run_is_active(
    client: Any, owner: Any, project: Any, judge: Judge
) -> None:
    JudgeRun.objects.create(
        project=project, judge=judge, prompt_version="v", status="succeeded", total=1, done=1
    )
    client.force_login(owner)
    assert client.get(f"/p/{project.slug}/judges/runs/", HTTP_HX_REQUEST="true").status_code == 286


def test_the_cancel_button_cancels_a_running_run(
    client: Any, owner: Any, project: Any, judge: Judge
) -> None:
    run = JudgeRun.objects.create(
        project=project, judge=judge, prompt_version="v", status="running", total=4
    )
    client.force_login(owner)
    response = client.post(
        f"/p/{project.slug}/judges/runs/{run.pk}/cancel/", HTTP_HX_REQUEST="true"
    )
    run.refresh_from_db()
    assert response.status_code == 200 and run.status == JudgeRun.Status.CANCELLED


def test_saving_the_judge_prompt_makes_a_new_version(client: Any, owner: Any, project: Any) -> None:
    client.force_login(owner)
    template = "Question: {prompt}\nA: {response_a}\nB: {response_b}\nWhich is better for {aspect}?"
    client.post(f"/p/{project.slug}/judges/prompt/", {"template": template})
    client.post(f"/p/{project.slug}/judges/prompt/", {"template": template + " Be brief."})
    assert list(Rubric.objects.values_list("version", flat=True)) == [2, 1]


def test_a_prompt_missing_a_placeholder_is_not_saved(client: Any, owner: Any, project: Any) -> None:
    client.force_login(owner)
    response = client.post(
        f"/p/{project.slug}/judges/prompt/", {"template": "{prompt} {response_a}"}, follow=True
    )
    assert b"Not saved" in response.content and not Rubric.objects.exists()


def test_annotators_cannot_run_judges(client: Any, member: Any, project: Any, judge: Judge) -> None:
    client.force_login(member)
    assert client.get(f"/p/{project.slug}/judges/").status_code == 403
    assert client.post(f"/p/{project.slug}/judges/run/", {"judge": "tiny"}).status_code == 403
    assert not JudgeRun.objects.exists()


def test_outsiders_get_404(client: Any, outsider: Any, project: Any) -> None:
    client.force_login(outsider)
    assert client.get(f"/p/{project.slug}/judges/").status_code == 404
