"""Ids in URLs and id filters are bounded: a number too large for the database is a 404 / 400."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from annotate.converters import ID_SCHEMA, MAX_ID, IdConverter
from tests.annotate.api.clients import token_client

HUGE = "9" * 25  # past 2**63 - 1: SQLite's driver raises OverflowError on such a value


def test_the_converter_matches_every_id_the_database_can_hold_and_nothing_longer() -> None:
    import re

    pattern = re.compile(f"^{IdConverter.regex}$")
    assert pattern.match(str(MAX_ID))
    assert not pattern.match(str(MAX_ID + 1))
    assert MAX_ID < 2**63 - 1


def test_the_openapi_schema_describes_the_converter_with_the_same_bound() -> None:
    assert settings.SPECTACULAR_SETTINGS["PATH_CONVERTER_OVERRIDES"]["id"] == ID_SCHEMA


def test_a_huge_id_in_an_api_path_is_not_found(owner: Any, project: Any) -> None:
    client = token_client(owner)
    assert client.get(f"/api/projects/{project.slug}/items/{HUGE}/").status_code == 404
    response = client.post(f"/api/projects/{project.slug}/assignments/{HUGE}/submit/", {})
    assert response.status_code == 404


def test_a_huge_id_in_a_page_path_is_not_found(client: Any, owner: Any, project: Any) -> None:
    client.force_login(owner)
    assert client.get(f"/p/{project.slug}/exports/{HUGE}/").status_code == 404


def test_a_huge_item_filter_is_a_clear_400(owner: Any, project: Any) -> None:
    client = token_client(owner)
    response = client.get(f"/api/projects/{project.slug}/judgments/?item={HUGE}")
    assert response.status_code == 400
    assert "item" in response.json()
