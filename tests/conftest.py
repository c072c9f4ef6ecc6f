"""Shared fixtures: the standard users of every access rule, and service checks.

Every access rule is tested with the same three people: the project's `owner` (admin role), a
`member` (annotator, unless a test gives them another role) and an `outsider` (no membership).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def service_up(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def need_service(name: str, host: str, port: int) -> None:
    """Skip when a service is down, or fail under REQUIRE_SERVICES=1 (CI) so nothing hides."""
    if service_up(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " and REQUIRE_SERVICES=1")
    pytest.skip(message)


def need_shared_data() -> Path:
    if not SHARED_DATA.exists():
        message = f"{SHARED_DATA} is missing"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture(autouse=True)
def fast_password_hashing(request: pytest.FixtureRequest) -> None:
    """PBKDF2 is slow on purpose; tests create many users, and their security is not under test.

    Skipped when pytest-django is off (`-p no:django`), as for the pure routing/ and models_gpu/ tests.
    """
    if request.config.pluginmanager.hasplugin("django"):
        settings = request.getfixturevalue("settings")
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def exports_in_tmp(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Exports written by any test land in its own temporary folder, never in var/."""
    if request.config.pluginmanager.hasplugin("django"):
        request.getfixturevalue("settings").EXPORT_DIR = tmp_path / "exports"


@pytest.fixture
def shared_data() -> Path:
    return need_shared_data()


@pytest.fixture
def make_user(django_user_model: Any) -> Callable[..., Any]:
    def make(username: str, **extra: Any) -> Any:
        return django_user_model.objects.create_user(
            username=username, password="pw-" + username, **extra
        )

    return make


@pytest.fixture
def owner(make_user: Callable[..., Any]) -> Any:
    return make_user("owner")


@pytest.fixture
def member(make_user: Callable[..., Any]) -> Any:
    return make_user("member")


@pytest.fixture
def outsider(make_user: Callable[..., Any]) -> Any:
    return make_user("outsider")


@pytest.fixture
def make_project(owner: Any) -> Callable[..., Any]:
    """A project with `owner` as admin; `items` canonical items are created with it."""
    from annotate.models import Item, Membership, Project
    from annotate.records import hash_content

    def make(
        slug: str = "proj",
        *,
        items: int = 0,
        task_type: str = "pairwise",
        k: int = 2,
        **fields: Any,
    ) -> Any:
        project = Project.objects.create(
            slug=slug, name=slug.title(), task_type=task_type, num_responses=k, **fields
        )
        Membership.objects.create(project=project, user=owner, role=Membership.Role.ADMIN)
        for i in range(items):
            prompt = f"Prompt number {i}: explain something."
            responses = [
                {"model": f"model-{j}", "text": f"Response {j} to prompt {i}."} for j in range(k)
            ]
            Item.objects.create(
                project=project,
                external_id=str(i),
                content_hash=hash_content(prompt, responses),
                prompt=prompt,
                responses=responses,
            )
        return project

    return make


@pytest.fixture
def project(make_project: Callable[..., Any], member: Any) -> Any:
    """A pairwise project of 5 items: owner is admin, member is annotator."""
    from annotate.models import Membership

    project = make_project("proj", items=5)
    Membership.objects.create(project=project, user=member, role=Membership.Role.ANNOTATOR)
    return project


@pytest.fixture
def set_role() -> Callable[..., None]:
    from annotate.models import Membership

    def set_(project: Any, user: Any, role: str) -> None:
        Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})

    return set_
