"""config.env's strict readers, and the settings module as a fresh process sees it."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_str

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("raw", "value"),
    [("1", True), ("yes", True), ("ON", True), ("0", False), ("false", False), ("", False)],
)
def test_env_bool_reads_the_usual_spellings(
    monkeypatch: pytest.MonkeyPatch, raw: str, value: bool
) -> None:
    monkeypatch.setenv("HP_FLAG", raw)
    assert env_bool("HP_FLAG", not value) is value


def test_env_bool_refuses_anything_else_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HP_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match=r"HP_FLAG='maybe' is not a boolean"):
        env_bool("HP_FLAG", True)


def test_env_readers_fall_back_to_the_default_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HP_UNSET", raising=False)
    assert env_bool("HP_UNSET", True) is True
    assert env_int("HP_UNSET", 7) == 7
    assert env_list("HP_UNSET", ["a"]) == ["a"]
    assert env_str("HP_UNSET") is None


def test_env_int_refuses_a_non_number_and_a_value_below_the_minimum(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HP_NUM", "12kb")
    with pytest.raises(ImproperlyConfigured, match=r"HP_NUM='12kb' is not a whole number"):
        env_int("HP_NUM", 1)
    monkeypatch.setenv("HP_NUM", "-1")
    with pytest.raises(ImproperlyConfigured, match=r"HP_NUM=-1 must be at least 0"):
        env_int("HP_NUM", 1, minimum=0)
    monkeypatch.setenv("HP_NUM", " ")
    assert env_int("HP_NUM", 5) == 5


def test_env_list_splits_on_commas_and_drops_blanks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HP_LIST", " a.org, ,b.org ,")
    assert env_list("HP_LIST", []) == ["a.org", "b.org"]


def manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run manage.py in a fresh process with only the given settings variables."""
    clean = {k: v for k, v in os.environ.items() if k not in _SETTINGS_VARIABLES}
    clean.update(HYBRIDPREF_VAR_DIR=str(tmp_path / "var"), **env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


_SETTINGS_VARIABLES = {
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CELERY_TASK_ALWAYS_EAGER",
    "IMPORT_MAX_BYTES",
    "DJANGO_SETTINGS_MODULE",
    # Set by tests/browser for Playwright's event loop; a deployment must never have it.
    "DJANGO_ALLOW_ASYNC_UNSAFE",
}


def test_the_production_settings_pass_the_deployment_checks(tmp_path: Path) -> None:
    result = manage(
        tmp_path,
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="example.org",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_debug_off_without_a_secret_key_stops_at_start_naming_secret_key(tmp_path: Path) -> None:
    result = manage(tmp_path, "check", DEBUG="0", ALLOWED_HOSTS="example.org")
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is required when DEBUG is off." in result.stderr


def test_a_bad_value_stops_at_start_naming_the_variable(tmp_path: Path) -> None:
    result = manage(tmp_path, "check", IMPORT_MAX_BYTES="2GB")
    assert result.returncode != 0
    assert "IMPORT_MAX_BYTES='2GB' is not a whole number" in result.stderr
    result = manage(tmp_path, "check", DATABASE_URL="mysql://u@h/db")
    assert (
        result.returncode != 0 and "DATABASE_URL must be sqlite:// or postgres://" in result.stderr
    )
