"""docker-compose.yml describes production; Docker cannot run here, so its config is validated."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import REPO, REQUIRE_SERVICES


def test_the_production_compose_file_is_valid_and_names_every_service() -> None:
    if shutil.which("docker-compose") is None:
        if REQUIRE_SERVICES:
            pytest.fail("docker-compose is not installed (Debian package docker-compose)")
        pytest.skip("docker-compose is not installed")
    env = {**os.environ, "SECRET_KEY": "x" * 50}
    check = subprocess.run(
        ["docker-compose", "config", "-q"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    services = subprocess.run(
        ["docker-compose", "config", "--services"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert set(services) == {"web", "worker", "gpu-worker", "postgres", "redis", "flower"}
