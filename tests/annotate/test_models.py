"""Rules about one row: Project.clean, roles, and the item constraint."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from annotate.models import Item, JobBusy, LabelRun, Membership, Project

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def errors_of(**fields: Any) -> dict[str, list[str]]:
    project = Project(name="P", slug="p", **fields)
    with pytest.raises(ValidationError) as exc:
        project.clean()
    return exc.value.message_dict


def test_a_default_project_is_clean() -> None:
    Project(name="P", slug="p").clean()
    Project(name="P", slug="p", task_type="ranking", num_responses=4).clean()
    Project(name="P", slug="p", task_type="kwise", num_responses=3).clean()


def test_a_pairwise_project_has_exactly_two_responses() -> None:
    assert errors_of(task_type="pairwise", num_responses=3) == {
        "num_responses": ["A pairwise project has exactly 2 responses per item."]
    }


def test_best_worst_needs_at_least_three_responses() -> None:
    assert "at least 3" in errors_of(task_type="kwise", num_responses=2)["num_responses"][0]


@pytest.mark.parametrize("aspects", [[], ["overall", " "], "overall", [1]])
def test_aspects_must_be_a_non_empty_list_of_names(aspects: Any) -> None:
    assert errors_of(aspects=aspects) == {"aspects": ["List at least one aspect name."]}


def test_aspects_must_be_unique() -> None:
    assert errors_of(aspects=["overall", "overall"]) == {
        "aspects": ["Aspect names must be unique."]
    }


@pytest.mark.parametrize("labels", [["a", "b", "c", "d"], ["a"] * 6, "five"])
def test_the_scale_has_exactly_five_labels(labels: Any) -> None:
    assert errors_of(scale_labels=labels) == {
        "scale_labels": ["The pairwise scale has exactly 5 labels."]
    }


def test_several_problems_are_reported_together() -> None:
    assert set(errors_of(num_responses=4, aspects=[], scale_labels=[])) == {
        "num_responses",
        "aspects",
        "scale_labels",
    }


def test_role_of_gives_admin_to_a_superuser_without_membership(
    project: Project, make_user: Any
) -> None:
    assert project.role_of(make_user("root", is_superuser=True)) == Membership.Role.ADMIN


def test_role_of_gives_each_member_their_role_and_none_to_others(
    project: Project, owner: Any, member: Any, outsider: Any, set_role: Any
) -> None:
    assert project.role_of(owner) == "admin"
    assert project.role_of(member) == "annotator"
    set_role(project, member, Membership.Role.RESEARCHER)
    assert project.role_of(member) == "researcher"
    assert project.role_of(outsider) is None
    assert project.role_of(AnonymousUser()) is None


def test_an_external_id_is_unique_within_a_project_but_not_across_projects(
    project: Project, make_project: Any
) -> None:
    fields = {"content_hash": "h", "prompt": "p", "responses": [{"text": "a"}, {"text": "b"}]}
    with pytest.raises(IntegrityError), transaction.atomic():
        Item.objects.create(project=project, external_id="0", **fields)  # "0" exists already
    other = make_project("other")
    Item.objects.create(project=other, external_id="0", **fields)
    assert Item.objects.filter(external_id="0").count() == 2


def test_an_item_reads_its_prompt_as_text_and_its_models(project: Project) -> None:
    chat = Item(
        project=project,
        prompt=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
        responses=[{"model": "m1", "text": "a"}, {"model": "m2", "text": "b"}],
    )
    assert chat.is_chat and chat.prompt_text == "user: Hi\n\nassistant: Hello"
    assert chat.model_names == ["m1", "m2"]
    plain = Item(project=project, prompt="Hi", responses=[])
    assert not plain.is_chat and plain.prompt_text == "Hi"


def test_validate_verdict_uses_the_projects_k_and_tie_rule() -> None:
    project = Project(task_type="ranking", num_responses=3, allow_ties=False)
    assert project.validate_verdict({"ranks": [3, 1, 2]}) == {"ranks": [3, 1, 2]}
    with pytest.raises(ValueError, match="permutation"):
        project.validate_verdict({"ranks": [1, 1, 2]})


# --- Worker jobs (WorkerJob, shown on LabelRun) -------------------------------------------------


def test_a_second_job_of_the_same_scope_is_refused_naming_the_active_one(project: Any) -> None:
    first = LabelRun.start_exclusive(scope={"project": project}, method="majority")
    with pytest.raises(JobBusy) as busy:
        LabelRun.start_exclusive(scope={"project": project}, method="majority")
    assert busy.value.active == first
    assert LabelRun.objects.count() == 1


def test_a_job_is_claimed_once_by_status_and_again_while_it_is_running(project: Any) -> None:
    run = LabelRun.start_exclusive(scope={"project": project}, method="majority")
    claimed = LabelRun.claim(run.pk)
    assert claimed.status == "running" and claimed.started_at is not None
    assert claimed.project == project
    assert LabelRun.claim(run.pk) is not None  # a redelivery after a lost worker
    LabelRun.objects.filter(pk=run.pk).update(status="succeeded")
    assert LabelRun.claim(run.pk) is None
    assert LabelRun.claim(run.pk + 1000) is None
