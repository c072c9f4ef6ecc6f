from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from annotate.access import ANNOTATE, project_for, projects_of
from annotate.models import Item, Judgment, Membership


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "annotate/home.html", {"projects": projects_of(request.user)})


@login_required
def project(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = project_for(request.user, slug, need=ANNOTATE)
    items = project.items.aggregate(
        total=Count("id"),
        human=Count("id", filter=Q(route=Item.Route.HUMAN)),
        ai=Count("id", filter=Q(route=Item.Route.AI)),
        pending=Count("id", filter=Q(route=Item.Route.PENDING)),
        gold=Count("id", filter=Q(is_gold=True)),
    )
    judgments = Judgment.objects.filter(item__project=project).aggregate(
        human=Count("id", filter=Q(kind=Judgment.Kind.HUMAN)),
        ai=Count("id", filter=Q(kind=Judgment.Kind.AI)),
    )
    runs = list(project.judge_runs.select_related("judge")[:10])
    return render(
        request,
        "annotate/project.html",
        {
            "project": project,
            "role": role,
            "can_research": role in Membership.CAN_RESEARCH,
            "can_manage": role in Membership.CAN_MANAGE,
            "items": items,
            "judgments": judgments,
            "imports": project.imports.order_by("-created_at")[:5],
            "runs": runs,
            "any_active": any(not r.is_finished for r in runs),
        },
    )
