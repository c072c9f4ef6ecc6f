from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from annotate.models import Judge, Membership, Project

pytestmark = pytest.mark.django_db


def test_demo_setup_creates_people_projects_and_the_bundled_judge_and_is_safe_to_rerun() -> None:
    call_command("demo", "--no-serve", stdout=StringIO())
    call_command("demo", "--no-serve", stdout=StringIO())
    projects = {p.slug: p for p in Project.objects.all()}
    assert set(projects) == {"demo-pairwise", "demo-ranking", "demo-kwise"}
    assert (projects["demo-pairwise"].task_type, projects["demo-pairwise"].num_responses) == (
        "pairwise",
        2,
    )
    assert (projects["demo-kwise"].task_type, projects["demo-kwise"].num_responses) == ("kwise", 4)
    assert projects["demo-pairwise"].items.count() >= 20
    assert projects["demo-pairwise"].items.filter(is_gold=True).exists()
    assert projects["demo-ranking"].items.count() == projects["demo-kwise"].items.count() >= 10
    users = get_user_model().objects
    assert users.get(username="admin").is_superuser
    assert users.get(username="admin").check_password("admin-demo")
    roles = dict(
        Membership.objects.filter(project=projects["demo-ranking"]).values_list(
            "user__username", "role"
        )
    )
    assert roles == {
        "admin": "admin",
        "researcher": "researcher",
        "annotator1": "annotator",
        "annotator2": "annotator",
    }
    judge = Judge.objects.get(name="smollm2-135m")
    assert judge.model == "" and all(judge in p.judges.all() for p in projects.values())
