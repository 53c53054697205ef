"""docker-compose.yml agrees with the settings, the Makefile and the code (no Docker here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("web", "worker", "beat")
# Variables the official postgres/redis images read, not our settings.
IMAGE_VARIABLES = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}
_DEFAULTED = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+):-(?P<default>.*)\}$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def settings_variables() -> set[str]:
    """Every environment variable config/settings.py reads through config.env."""
    source = (ROOT / "config" / "settings.py").read_text()
    return set(re.findall(r"env_(?:str|bool|int|float|list)\(\s*\"([A-Z0-9_]+)\"", source))


def resolved(value: Any) -> str:
    """A compose value with `${NAME:-default}` resolved to its default."""
    match = _DEFAULTED.match(str(value))
    return match["default"] if match else str(value)


def command_words(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    if isinstance(command, str):
        return command.split()
    return [word for part in command for word in str(part).split()]


def test_compose_has_the_six_services_each_with_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]

    assert set(services) == {"postgres", "redis", "web", "worker", "beat", "emulator"}
    for name, service in services.items():
        assert service["healthcheck"]["test"], name


def test_app_services_set_only_variables_the_settings_read(compose: dict[str, Any]) -> None:
    known = settings_variables()
    assert {"DATABASE_URL", "REDIS_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"} <= known

    for name in (*APP_SERVICES, "emulator"):
        environment = compose["services"][name]["environment"]
        unknown = set(environment) - known - IMAGE_VARIABLES
        assert unknown == set(), name
    postgres_env = set(compose["services"]["postgres"]["environment"])
    assert postgres_env <= IMAGE_VARIABLES


def test_app_services_share_one_environment_that_points_at_the_services(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    environments = [services[name]["environment"] for name in APP_SERVICES]
    assert all(env == environments[0] for env in environments)
    env = environments[0]

    database = urlsplit(resolved(env["DATABASE_URL"]))
    postgres = services["postgres"]["environment"]
    assert database.scheme == "postgres"
    assert database.hostname == "postgres"
    assert (database.username, database.password) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
    )
    assert database.path == f"/{postgres['POSTGRES_DB']}"
    assert urlsplit(resolved(env["REDIS_URL"])).hostname == "redis"
    emulator_port = command_words(services["emulator"])[-1]
    upstream = urlsplit(resolved(env["OPENAI_BASE_URL"]))
    assert (upstream.hostname, str(upstream.port), upstream.path) == (
        "emulator",
        emulator_port,
        "/v1",
    )
    browser = urlsplit(resolved(env["OPENAI_BROWSER_BASE_URL"]))
    assert f"{browser.port}:{emulator_port}" in services["emulator"]["ports"]
    assert resolved(env["EMULATOR_API_KEY"]) == settings.EMULATOR_API_KEY
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        assert {dep: cond["condition"] for dep, cond in depends.items()} == {
            "postgres": "service_healthy",
            "redis": "service_healthy",
            "emulator": "service_healthy",
        }


def test_service_commands_run_the_project_entry_points(compose: dict[str, Any]) -> None:
    services = compose["services"]
    web = command_words(services["web"])
    worker = command_words(services["worker"])
    beat = command_words(services["beat"])
    emulator = command_words(services["emulator"])

    assert "migrate" in web
    assert web[web.index("daphne") :][-1] == settings.ASGI_APPLICATION.replace(
        ".application", ":application"
    )
    assert "8000:8000" in services["web"]["ports"]
    assert worker[:4] == ["celery", "-A", "config", "worker"]
    assert set(worker[worker.index("-Q") + 1].split(",")) == {
        settings.CELERY_TASK_DEFAULT_QUEUE,
        settings.SIDEBAND_QUEUE,
    }
    assert worker[worker.index("-P") + 1] == "threads"
    assert beat[:4] == ["celery", "-A", "config", "beat"]
    assert emulator[:3] == ["python", "-m", "realtime_emulator"]
    assert emulator[emulator.index("--port") + 1] == str(settings.EMULATOR_PORT)


def test_make_and_compose_agree_on_the_default_ports(compose: dict[str, Any]) -> None:
    makefile = (ROOT / "Makefile").read_text()

    assert re.search(r"^PORT \?= 8000$", makefile, re.MULTILINE)
    assert re.search(rf"^EMULATOR_PORT \?= {settings.EMULATOR_PORT}$", makefile, re.MULTILINE)
    assert "config.devserver" in makefile
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install ." in dockerfile
    assert "config.asgi:application" in dockerfile
