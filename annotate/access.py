"""Who may see and do what. Every view and API endpoint looks a project up through here."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404

from annotate import fastsql
from annotate.models import Membership, Project

MANAGE = Membership.CAN_MANAGE
RESEARCH = Membership.CAN_RESEARCH
ANNOTATE = Membership.CAN_ANNOTATE


def project_for(user: Any, slug: str, *, need: set[str]) -> tuple[Project, str]:
    """The project and the user's role in it.

    An outsider gets 404, not 403, so project slugs do not leak; a member whose role is not in
    `need` gets 403.
    """
    if fastsql.enabled() and getattr(user, "is_authenticated", False):
        # One prepared statement instead of two ORM queries: this runs on every request.
        project, role = fastsql.project_and_role(slug, user)
        if project is not None and user.is_superuser:
            role = Membership.Role.ADMIN  # as Project.role_of
    else:
        project = Project.objects.filter(slug=slug).first()
        role = project.role_of(user) if project else None
    if project is None or role is None:
        raise Http404("No such project.")
    if role not in need:
        raise PermissionDenied(f"Your role here ({role}) cannot do this.")
    return project, role


def projects_of(user: Any) -> list[tuple[Project, str]]:
    if user.is_superuser:
        return [(p, Membership.Role.ADMIN) for p in Project.objects.all()]
    memberships = (
        Membership.objects.filter(user=user).select_related("project").order_by("project__name")
    )
    return [(m.project, m.role) for m in memberships]
