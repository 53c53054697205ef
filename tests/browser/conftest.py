"""End-to-end fixtures: Debian's Chromium (Playwright) against the real stack.

The app server and the worker are module-scoped: they stop when the browser tests are done, so
this worker never takes tasks meant for another suite's workers in the same run.

The page is served by the real ASGI app under daphne in a subprocess, a real Celery worker
process owns the sidebands, Postgres and Redis are real, and the upstream is the emulator
(`emulator_server`) over real WebRTC. Subprocesses get the test database's name, so the tests
use `django_db(transaction=True)`: what the browser writes is committed and visible here.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import subprocess
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pytest

from tests.processes import (
    app_serving,
    celery_worker_argv,
    process_env,
    process_stop,
    wait_for,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page, Playwright

    from realtime_emulator.testing import EmulatorServer

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
LOGS = ARTIFACTS / "logs"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Playwright adds --headless itself (headless=True).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    # Host candidates as plain 127.0.0.1 instead of mDNS `.local` names aiortc cannot resolve.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
SAMPLE_RATE = 48_000


@pytest.fixture(scope="module")
def stack_env(django_db_setup: None, emulator_server: EmulatorServer) -> dict[str, str]:
    """The environment of the app and worker subprocesses: the TEST database, our Redis db."""
    LOGS.mkdir(parents=True, exist_ok=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (LOGS / "console.log").unlink(missing_ok=True)
    env = process_env(
        emulator_server=emulator_server,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DEBUG="1",
        CLIENT_COOKIE_SECURE="0",
        # config.asgi serves /static/ itself (the page's ES modules and stylesheet).
        SERVE_STATIC="1",
        # Every browser here is 127.0.0.1; the per-client limits have their own tests.
        RATE_LIMIT_CREATE_PER_MINUTE="1000",
        RATE_LIMIT_RENEW_PER_MINUTE="1000",
    )
    return env


@pytest.fixture(scope="module")
def app_server(stack_env: dict[str, str]) -> Iterator[str]:
    """The real ASGI app (HTTP + Channels) under daphne on a free port; yields its base URL."""
    with app_serving(env=stack_env, log_path=LOGS / "daphne.log") as base:
        yield base


@pytest.fixture(scope="module")
def celery_worker(stack_env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker for the sideband and default queues (a thread pool)."""
    log_path = LOGS / "worker.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            celery_worker_argv(
                queues="sideband,default", concurrency=16, name=f"browser-{os.getpid()}@%h"
            ),
            cwd=ROOT,
            env=stack_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(
                lambda: proc.poll() is not None or b" ready." in log_path.read_bytes(),
                timeout=60,
                what="the Celery worker to be ready",
            )
            assert proc.poll() is None, "the worker exited; see artifacts/logs/worker.log"
            yield proc
        finally:
            process_stop(proc)


def _wav(path: Path, samples: list[int]) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return path


def speech_like(seconds: float) -> list[int]:
    """A voiced sound: a 150 Hz buzz with harmonics, its loudness swinging like syllables."""
    samples = []
    for i in range(int(seconds * SAMPLE_RATE)):
        t = i / SAMPLE_RATE
        syllables = 0.6 + 0.4 * math.sin(2 * math.pi * 4 * t)
        pitch = 150 + 20 * math.sin(2 * math.pi * 0.7 * t)
        voice = sum(math.sin(2 * math.pi * pitch * k * t) / k for k in (1, 2, 3, 4))
        samples.append(int(9000 * syllables * voice))
    return samples


@pytest.fixture(scope="session")
def fake_audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Fake microphone inputs (Chromium loops the file): silence, and one 1 s utterance every
    8 s (7 s of silence first, so nothing is said before the test is ready to listen)."""
    folder = tmp_path_factory.mktemp("audio")
    silence = [0] * (8 * SAMPLE_RATE)
    return {
        "silence": _wav(folder / "silence.wav", silence),
        "speech": _wav(folder / "speech.wav", [0] * (7 * SAMPLE_RATE) + speech_like(1.0)),
    }


def _calls_hang_up(upstream: EmulatorServer) -> None:
    """End this test's calls in the emulator, so none lingers into the next test (or another
    suite) waiting for a WebRTC timeout."""
    from realtime_emulator.testing import EmulatorError
    from sessions_app.models import Call

    for call_id in Call.objects.values_list("call_id", flat=True):
        with contextlib.suppress(EmulatorError):  # already ended
            if call_id.startswith("live_"):
                path = f"/_emulator/live/sessions/{call_id}/close"
                upstream.control("POST", path, {"reason": "remote_hangup"})
            else:
                upstream.control("POST", f"/_emulator/calls/{call_id}/hangup")


def _database_quiet() -> bool:
    """No other connection is inside a statement or transaction on the test database, so the
    flush after the test (TRUNCATE) does not deadlock with a request still being answered."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND state <> 'idle'"
        )
        busy = cursor.fetchone()
    return busy is not None and busy[0] == 0


def _worker_let_go(worker_pid: int, redis_url: str) -> bool:
    """The worker's figures (sideband.owner.stats, published every SIDEBAND_POLL_S in the
    worker's Redis, `redis_url`: a module may run the stack on a Redis of its own)
    taken after the last call's end show no call held and nothing left to write: that end and
    every write queued before it have committed, and no socket remains to write more."""
    import redis
    from django.db.models import Max

    from sessions_app.models import Call

    last_end = Call.objects.aggregate(last=Max("ended_at"))["last"]
    if last_end is None:
        return True  # no call, nothing the worker could still write
    client = redis.Redis.from_url(redis_url)
    try:
        keys = client.keys("sideband:stats:*")
        published = [json.loads(raw) for raw in client.mget(keys) if raw] if keys else []
    finally:
        client.close()
    figures = [f for f in published if f["pid"] == worker_pid]
    return any(
        f["at"] > last_end.timestamp() and f["connections"] == 0 and not f["oldest_unwritten_ms"]
        for f in figures
    )


def _quiet_after_hang_up(worker_pid: int, redis_url: str) -> None:
    from sessions_app.models import Call

    wait_for(
        lambda: not Call.objects.filter(ended_at__isnull=True).exists(),
        timeout=15,
        what="the worker to record every call's end",
    )
    wait_for(
        lambda: _worker_let_go(worker_pid, redis_url),
        timeout=15,
        what="the worker to hold no call and have nothing left to write",
    )
    wait_for(
        _database_quiet,
        timeout=15,
        what="the other connections to the test database to go idle",
    )


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Sync Playwright, for this module only: its event loop runs in this thread while it lives,
    which pytest-asyncio tests of other suites in the same run must not meet. Meanwhile
    Django's ORM (the tests read what the server wrote) must be told that this is fine."""
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            yield p
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def launch_page(
    playwright: Playwright,
    app_server: str,
    celery_worker: subprocess.Popen[bytes],
    stack_env: dict[str, str],
    fake_audio: dict[str, Path],
    upstream: EmulatorServer,
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., Page]]:
    """`launch_page(audio="silence"|"speech", width=, height=, clock=, microphone_allowed=,
    color_scheme=)`
    → a page at the app's /.

    Each call starts its own Chromium (the fake microphone's file is a launch flag); all are
    closed after the test, which hangs up their calls.
    """
    browsers = []
    console: list[str] = []

    def launch(
        *,
        audio: str = "silence",
        width: int = 1280,
        height: int = 900,
        clock: bool = False,
        microphone_allowed: bool = True,
        color_scheme: Literal["light", "dark"] = "light",
    ) -> Page:
        args = [*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={fake_audio[audio]}"]
        if microphone_allowed:
            # Answers the permission prompt with "allow"; without it headless Chromium denies.
            args.append("--use-fake-ui-for-media-stream")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        browsers.append(browser)
        context = browser.new_context(
            base_url=app_server,
            viewport={"width": width, "height": height},
            color_scheme=color_scheme,
        )
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))
        if clock:
            # A controllable clock (Date, timers), so a test can jump to near a key's expiry.
            page.clock.install()
        page.goto("/")
        return page

    yield launch
    for browser in browsers:
        for context in browser.contexts:
            for page in context.pages:
                page.close()  # the page hangs up on `pagehide`
        browser.close()
    _calls_hang_up(upstream)
    _quiet_after_hang_up(celery_worker.pid, stack_env["REDIS_URL"])
    with (LOGS / "console.log").open("a") as out:
        out.write(f"--- {request.node.name}\n" + "".join(f"{line}\n" for line in console))
