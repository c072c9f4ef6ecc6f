from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from annotate.models import Judge, Judgment, RoutingRun
from tests.annotate.judge_fakes import FakeJudge, use_fake_judge
from tests.factories import add_imported_judges

pytestmark = pytest.mark.django_db


def test_prelabel_judges_every_item_in_this_process(project: Any, monkeypatch: Any) -> None:
    Judge.objects.create(name="tiny", aspect_mode="overall_only", items_per_task=2)
    use_fake_judge(monkeypatch, FakeJudge())
    out = StringIO()
    call_command(
        "prelabel", "--project", project.slug, "--judge", "tiny", stdout=out, stderr=StringIO()
    )
    assert "succeeded, 5 judged, 0 failed" in out.getvalue()
    assert Judgment.objects.filter(judge__name="tiny").count() == 5


def test_prelabel_names_the_known_judges_when_one_is_unknown(project: Any) -> None:
    Judge.objects.create(name="tiny")
    with pytest.raises(CommandError, match=r"no judge 'huge' \(judges: tiny\)"):
        call_command("prelabel", "--project", project.slug, "--judge", "huge")


def test_prelabel_exits_non_zero_when_the_run_fails(project: Any, monkeypatch: Any) -> None:
    Judge.objects.create(name="tiny")
    use_fake_judge(monkeypatch, FakeJudge(broken="cannot load /models/x"))
    with pytest.raises(CommandError, match="cannot load /models/x"):
        call_command(
            "prelabel",
            "--project",
            project.slug,
            "--judge",
            "tiny",
            stdout=StringIO(),
            stderr=StringIO(),
        )


def route(project: Any, budget: str, *flags: str) -> str:
    """`manage.py route --policy uncertainty` on `project`; returns what it printed."""
    out = StringIO()
    call_command(
        "route",
        "--project",
        project.slug,
        "--policy",
        "uncertainty",
        "--budget",
        budget,
        *flags,
        stdout=out,
    )
    return out.getvalue()


def test_route_applies_unless_dry_run(project: Any, monkeypatch: Any) -> None:
    Judge.objects.create(name="tiny", aspect_mode="overall_only")
    use_fake_judge(monkeypatch, FakeJudge())
    call_command(
        "prelabel",
        "--project",
        project.slug,
        "--judge",
        "tiny",
        stdout=StringIO(),
        stderr=StringIO(),
    )
    assert "2 of 5 items to humans" in route(project, "2", "--dry-run")
    assert not project.items.filter(route="human").exists()
    route(project, "2")
    assert project.items.filter(route="human").count() == 2
    assert RoutingRun.objects.filter(status="applied").count() == 1


def test_route_prints_the_weights_of_a_panel_of_three(make_project: Any) -> None:
    project = add_imported_judges(
        make_project("three", items=60), {"gpt": 0.9, "pl": 0.85, "weak": 0.55}
    )
    out = route(project, "5", "--dry-run")
    line = next(x for x in out.splitlines() if x.startswith("AI label:"))
    weights = dict(part.rsplit(" ", 1) for part in line.split(": ", 2)[2].split(", "))
    assert set(weights) == {"gpt", "pl", "weak"}
    assert float(weights["weak"]) < min(float(weights["gpt"]), float(weights["pl"]))
