"""Prepared statements on PostgreSQL for the reads every queue request makes.

An annotator's "next" and "submit" each look up a token, a project, a role and a row. Through
the ORM each lookup costs more CPU to build than PostgreSQL spends answering it, and PostgreSQL
plans each one again on every call (Django binds parameters on the client, which cannot be
prepared). Here each is one hand-written statement, prepared once per connection; rows become
model instances as the ORM would make them. On other databases (SQLite) callers use the ORM.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import psycopg
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Model
from rest_framework.authtoken.models import Token

from annotate.models import Assignment, Membership, Project


def enabled() -> bool:
    return connection.vendor == "postgresql"


@contextmanager
def prepared_cursor() -> Iterator[psycopg.Cursor]:
    """A psycopg cursor with server-side binding on Django's connection (same transaction), so
    `execute(..., prepare=True)` prepares the statement. Errors come out as Django's."""
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        yield cursor


@cache
def columns(model: type[Model], alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + connection.ops.quote_name(f.column) for f in _fields(model))


@cache
def _fields(model: type[Model]) -> list[Any]:
    return list(model._meta.concrete_fields)


@cache
def _converters(model: type[Model]) -> list[Any]:
    # Only JSONField converts on PostgreSQL: Django reads jsonb as text and decodes it there.
    return [getattr(f, "from_db_value", None) for f in _fields(model)]


def instance(model: type[Model], row: list[Any] | tuple[Any, ...]) -> Any:
    """A model instance from a row of `columns(model)`, as if the ORM had loaded it."""
    values = [
        convert(v, None, connection) if convert is not None and v is not None else v
        for convert, v in zip(_converters(model), row, strict=True)
    ]
    return model.from_db(connection.alias, None, values)


def token_user(
    key: str, *, slug: str | None = None, assignment_id: int | None = None
) -> tuple[Any, Token] | None:
    """The token's user and the token (TokenAuthentication's select_related get), or None.

    With `slug` (the project in the request's URL) the same statement also reads that project
    and the user's role in it, and with `assignment_id` the user's assignment of that id in that
    project; the answers are left on the user for the first `project_and_role` and `assignment`
    of the request. Every project endpoint asks them right after authenticating, and each
    statement saved is about a tenth of a queue cycle (issue 3).
    """
    user_model = get_user_model()
    with prepared_cursor() as cursor:
        if slug is None:
            cursor.execute(_token_sql(), {"key": key}, prepare=True)
        else:
            cursor.execute(
                _token_project_sql(assignment_id is not None),
                {"key": key, "slug": slug, "assignment": assignment_id},
                prepare=True,
            )
        row = cursor.fetchone()
    if row is None:
        return None
    widths = [len(_fields(Token)), len(_fields(user_model)), len(_fields(Project)), 1]
    token_row, user_row, project_row, role, assignment_row = _split(row, widths)
    token = instance(Token, token_row)
    token.user = user = instance(user_model, user_row)
    if slug is None:
        return user, token
    project = instance(Project, project_row) if project_row[0] is not None else None
    user.__dict__[_PREFETCHED_PROJECT] = (slug, project, role[0])
    if assignment_id is not None and project is not None:
        found = instance(Assignment, assignment_row) if assignment_row[0] is not None else None
        user.__dict__[_PREFETCHED_ASSIGNMENT] = (project.pk, assignment_id, found)
    return user, token


def _split(row: tuple[Any, ...], widths: list[int]) -> list[tuple[Any, ...]]:
    """The row cut into parts of these widths, then the rest."""
    parts, at = [], 0
    for width in widths:
        parts.append(row[at : at + width])
        at += width
    parts.append(row[at:])
    return parts


# Where token_user leaves what it read for the request: on the user object of that request.
_PREFETCHED_PROJECT = "_fastsql_project_and_role"
_PREFETCHED_ASSIGNMENT = "_fastsql_assignment"


@cache
def _token_sql() -> str:
    user_model = get_user_model()
    users = connection.ops.quote_name(user_model._meta.db_table)
    tokens = connection.ops.quote_name(Token._meta.db_table)
    return (
        f"SELECT {columns(Token, 't')}, {columns(user_model, 'u')} "
        f"FROM {tokens} AS t JOIN {users} AS u ON u.id = t.user_id WHERE t.key = %(key)s"
    )


@cache
def _token_project_sql(with_assignment: bool) -> str:
    user_model = get_user_model()
    users = connection.ops.quote_name(user_model._meta.db_table)
    tokens = connection.ops.quote_name(Token._meta.db_table)
    projects = connection.ops.quote_name(Project._meta.db_table)
    assignments = connection.ops.quote_name(Assignment._meta.db_table)
    # The project and assignment halves are _project_sql's and _assignment_sql's, joined on the
    # side: no such row is NULLs there.
    select = [columns(Token, "t"), columns(user_model, "u"), columns(Project, "p")]
    select.append(f"({_role_sql('u.id')})")
    joins = f"LEFT JOIN {projects} AS p ON p.slug = %(slug)s "
    if with_assignment:
        select.append(columns(Assignment, "a"))
        joins += (
            f"LEFT JOIN {assignments} AS a ON a.id = %(assignment)s AND a.project_id = p.id"
            " AND a.annotator_id = u.id "
        )
    return (
        f"SELECT {', '.join(select)} "
        f"FROM {tokens} AS t JOIN {users} AS u ON u.id = t.user_id "
        f"{joins}WHERE t.key = %(key)s"
    )


def project_and_role(slug: str, user: Any) -> tuple[Project | None, str | None]:
    """The project and the user's membership role in it (None when not a member); one statement
    for what `Project.objects.filter(slug=…).first()` and `project.role_of(user)` ask.

    The answer token_user read with the token is used once, for the first ask of the request;
    a later ask reads again, in case the request itself changed a membership since."""
    prefetched = user.__dict__.pop(_PREFETCHED_PROJECT, None)
    if prefetched is not None and prefetched[0] == slug:
        return prefetched[1], prefetched[2]
    with prepared_cursor() as cursor:
        cursor.execute(_project_sql(), {"slug": slug, "user": user.pk}, prepare=True)
        row = cursor.fetchone()
    if row is None:
        return None, None
    return instance(Project, row[:-1]), row[-1]


@cache
def _project_sql() -> str:
    projects = connection.ops.quote_name(Project._meta.db_table)
    return (
        f"SELECT {columns(Project, 'p')}, ({_role_sql('%(user)s')}) "
        f"FROM {projects} AS p WHERE p.slug = %(slug)s"
    )


def _role_sql(user: str) -> str:
    memberships = connection.ops.quote_name(Membership._meta.db_table)
    # Same row role_of() reads: the first membership by id (there is at most one: unique).
    return (
        f"SELECT m.role FROM {memberships} AS m"
        f" WHERE m.project_id = p.id AND m.user_id = {user} ORDER BY m.id LIMIT 1"
    )


def assignment(*, assignment_id: int, project: Project, user: Any) -> Assignment | None:
    """The user's assignment of this id in this project, or None; the one token_user read with
    the token for this request when there is one (used once, as in project_and_role)."""
    prefetched = user.__dict__.pop(_PREFETCHED_ASSIGNMENT, None)
    if prefetched is not None and prefetched[:2] == (project.pk, assignment_id):
        return prefetched[2]
    with prepared_cursor() as cursor:
        cursor.execute(
            _assignment_sql(),
            {"id": assignment_id, "project": project.pk, "annotator": user.pk},
            prepare=True,
        )
        row = cursor.fetchone()
    return instance(Assignment, row) if row else None


@cache
def _assignment_sql() -> str:
    assignments = connection.ops.quote_name(Assignment._meta.db_table)
    return (
        f"SELECT {columns(Assignment)} FROM {assignments} "
        "WHERE id = %(id)s AND project_id = %(project)s AND annotator_id = %(annotator)s"
    )
