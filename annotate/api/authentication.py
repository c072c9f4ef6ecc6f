"""API token authentication, one prepared statement per request on PostgreSQL."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from annotate import fastsql


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's TokenAuthentication, same rules and messages; the lookup is a prepared statement
    on PostgreSQL because it runs on every API request (see annotate/fastsql.py)."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        if not fastsql.enabled():
            return super().authenticate_credentials(key)
        found = fastsql.token_user(key)
        if found is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user, token = found
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return user, token
