"""What tests need to run real app and worker processes: their environment, and polling.

A subprocess must see what the test process sees: pytest-django's TEST database, this run's
Redis db, the emulator as upstream, and the same keys (a worker decrypts the client secrets
the test process encrypted).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote

from django.conf import settings
from django.db import connection

if TYPE_CHECKING:
    from realtime_emulator.testing import EmulatorServer

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
DAPHNE_APP = "config.asgi:application"


def test_database_url() -> str:
    """The URL of the database the tests run against (pytest-django's `test_<name>`)."""
    db = connection.settings_dict
    user = quote(db.get("USER") or "")
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{quote(db['NAME'])}"


def process_env(*, emulator_server: EmulatorServer, **extra: str) -> dict[str, str]:
    """The environment of an app or worker subprocess of this test run."""
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        raise AssertionError("these tests need DATABASE_URL (Postgres) and REDIS_URL (Makefile)")
    env = dict(os.environ)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # the test process's concern only
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": test_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "OPENAI_API_KEY": "",
            "EMULATOR_API_KEY": emulator_server.api_key,
            "OPENAI_BASE_URL": emulator_server.api_base,
            "OPENAI_BROWSER_BASE_URL": emulator_server.api_base,
            "SECRET_KEY": settings.SECRET_KEY,
            "SECRET_ENCRYPTION_KEYS": ",".join(settings.SECRET_ENCRYPTION_KEYS),
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    return env


def wait_for(
    predicate: Callable[[], T | None],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "",
) -> T:
    """Poll until `predicate()` is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


def celery_worker_argv(*, queues: str, concurrency: int, name: str) -> list[str]:
    """The command line of a real Celery worker process (a thread pool, as the sideband worker
    runs), named `name`, consuming `queues` (comma-separated)."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "-Q",
        queues,
        "-P",
        "threads",
        "-c",
        str(concurrency),
        "-n",
        name,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-l",
        "INFO",
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def process_stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 15 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextlib.contextmanager
def app_serving(*, env: dict[str, str], log_path: Path) -> Iterator[str]:
    """The real ASGI app (HTTP + Channels) under daphne on a free port, its output in
    `log_path`; yields its base URL once it serves `/`, and stops it after."""
    port = free_port()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), DAPHNE_APP],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(
                lambda: proc.poll() is not None or _http_ok(f"{base}/"),
                timeout=30,
                what="daphne to serve /",
            )
            assert proc.poll() is None, f"daphne exited; see {log_path}"
            yield base
        finally:
            process_stop(proc)
