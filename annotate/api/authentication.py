"""API token authentication, one prepared statement per request on PostgreSQL."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from annotate import fastsql


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's TokenAuthentication, same rules and messages; the lookup is a prepared statement
    on PostgreSQL because it runs on every API request (see annotate/fastsql.py). On a project
    endpoint the same statement reads the project and the caller's role in it, and the
    assignment named in the URL, which the view asks for next (access.project_for,
    assignment_of); DRF makes one authenticator per request, so what is kept here belongs to
    this request."""

    slug: str | None = None
    assignment_id: int | None = None

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        kwargs = (getattr(request, "parser_context", None) or {}).get("kwargs") or {}
        slug, assignment_id = kwargs.get("slug"), kwargs.get("assignment_id")
        self.slug = slug if isinstance(slug, str) else None
        self.assignment_id = assignment_id if isinstance(assignment_id, int) else None
        return super().authenticate(request)

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        if not fastsql.enabled():
            return super().authenticate_credentials(key)
        found = fastsql.token_user(key, slug=self.slug, assignment_id=self.assignment_id)
        if found is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user, token = found
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return user, token
