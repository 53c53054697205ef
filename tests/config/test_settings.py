"""Settings read from the environment: a fresh interpreter imports config.settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _setting(name: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "SIDEBAND_AUTH")}
    return subprocess.run(
        [sys.executable, "-c", f"from config import settings; print(settings.{name})"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "client_secret"),  # the emulator: the seed's flow
        ({"OPENAI_API_KEY": "sk-real"}, "api_key"),  # OpenAI's server-controls guide
        ({"OPENAI_API_KEY": "sk-real", "SIDEBAND_AUTH": "client_secret"}, "client_secret"),
        ({"SIDEBAND_AUTH": "api_key"}, "api_key"),
    ],
)
def test_the_sideband_authenticates_with_the_api_key_when_there_is_a_real_one(
    env: dict[str, str], expected: str
) -> None:
    result = _setting("SIDEBAND_AUTH", **env)

    assert (result.returncode, result.stdout.strip()) == (0, expected)


def test_an_unknown_sideband_auth_stops_the_process() -> None:
    result = _setting("SIDEBAND_AUTH", SIDEBAND_AUTH="secret")

    assert result.returncode != 0
    assert "SIDEBAND_AUTH must be one of api_key, client_secret, got 'secret'" in result.stderr


# --- DEBUG ----------------------------------------------------------------------------------


def test_debug_is_off_unless_asked_for() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DEBUG"}
    env.update(SECRET_KEY="a-production-key-0123456789-0123456789-0123456789")
    probe = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"

    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert result.stdout.strip() == "False"


def test_without_debug_the_dev_secret_key_is_refused() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY")}

    result = subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr
