"""`make run`: the whole app in one process, on http://127.0.0.1:$PORT.

Migrates, starts the offline emulator (a subprocess on $EMULATOR_PORT) when no OPENAI_API_KEY
is set, then runs the Celery worker (queues default + sideband, a thread pool) and beat as
threads of this process, and serves the ASGI app (HTTP + Channels) with daphne. Worker and
beat share the process with the web server so that the embedded transports (Celery's
`memory://` broker, Channels' InMemoryChannelLayer, used when REDIS_URL is unset) reach all
of them: the same tasks and consumers as production, over other transports. With REDIS_URL
and DATABASE_URL set it runs the same way against Redis and Postgres.

Ctrl-C stops the server, then beat, the worker and the emulator. A child that dies meanwhile
is reported at once: the emulator is restarted (up to RESTART_LIMIT times a minute, then the
whole runner stops), a dead worker or beat thread stops the runner, as nothing can replace
it in-process. This module (with the tests) is the only code outside the emulator that may
start it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
STOP_TIMEOUT_S = 5.0
WATCH_INTERVAL_S = 0.5
RESTART_LIMIT = 3
RESTART_WINDOW_S = 60.0


def _log(message: str) -> None:
    print(f"[devserver] {message}", flush=True)


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def emulator_start(*, port: int, api_key: str) -> subprocess.Popen[bytes]:
    """The bundled emulator as a subprocess; returns once it answers its health check."""
    if not _port_free("127.0.0.1", port):
        raise SystemExit(f"EMULATOR_PORT {port} is in use; set EMULATOR_PORT to a free port.")
    env = {**os.environ, "EMULATOR_API_KEY": api_key}
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "realtime_emulator", "--port", str(port), "--api-key", api_key],
        cwd=BASE_DIR,
        env=env,
    )
    url = f"http://127.0.0.1:{port}/_emulator/health"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the emulator exited with status {process.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            json.load(response)
            return process
        time.sleep(0.1)
    process.kill()
    raise SystemExit("the emulator did not answer its health check within 20 s")


@dataclass
class Child:
    """Something the runner started and watches: `exit_status()` is None while it runs, else
    a few words on how it ended; `restart` (when it can be replaced) starts it again."""

    name: str
    exit_status: Callable[[], str | None]
    restart: Callable[[], None] | None = None
    restarts: list[float] = field(default_factory=list)


def process_exit_status(process: subprocess.Popen[bytes]) -> str | None:
    code = process.poll()
    if code is None:
        return None
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


def children_check(children: list[Child], *, now: float) -> str | None:
    """Report each child that died and restart it if it can be; the reason to stop the whole
    runner (a child that cannot be restarted, or keeps dying), else None."""
    for child in children:
        status = child.exit_status()
        if status is None:
            continue
        child.restarts[:] = [t for t in child.restarts if now - t < RESTART_WINDOW_S]
        if child.restart is None:
            _log(f"the {child.name} stopped ({status}); stopping")
            return f"the {child.name} stopped"
        if len(child.restarts) >= RESTART_LIMIT:
            _log(
                f"the {child.name} stopped ({status}) {RESTART_LIMIT + 1} times within "
                f"{RESTART_WINDOW_S:.0f} s; stopping"
            )
            return f"the {child.name} keeps stopping"
        _log(f"the {child.name} stopped ({status}); restarting it")
        child.restarts.append(now)
        try:
            child.restart()
        except (OSError, SystemExit) as error:
            _log(f"the {child.name} could not be restarted ({error}); stopping")
            return f"the {child.name} could not be restarted"
        _log(f"the {child.name} is back")
    return None


def children_watch(
    children: list[Child], *, stop: Callable[[], None], stopping: threading.Event
) -> threading.Thread:
    """A daemon thread checking the children every WATCH_INTERVAL_S until `stopping` is set
    (the runner is shutting down: children ending then is expected); calls `stop()` once when
    the runner must end."""

    def watch() -> None:
        while not stopping.wait(WATCH_INTERVAL_S):
            if children_check(children, now=time.monotonic()) is not None:
                stop()
                return

    thread = threading.Thread(target=watch, name="children-watch", daemon=True)
    thread.start()
    return thread


def emulator_stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def worker_start(app: Any, *, queues: list[str], concurrency: int) -> tuple[Any, threading.Thread]:
    """A Celery worker (thread pool) as a thread: WorkController installs no signal handlers."""
    worker = app.WorkController(
        hostname=f"devserver@{socket.gethostname()}",
        pool_cls="threads",
        concurrency=concurrency,
        queues=queues,
        loglevel="INFO",
    )
    thread = threading.Thread(target=worker.start, name="celery-worker", daemon=True)
    thread.start()
    return worker, thread


def beat_start(app: Any, *, schedule_filename: Path) -> Any:
    from celery.beat import EmbeddedService

    schedule_filename.parent.mkdir(parents=True, exist_ok=True)
    beat = EmbeddedService(app, thread=True, schedule_filename=str(schedule_filename))
    beat.start()
    return beat


def _stop_with_timeout(name: str, stop: Any) -> None:
    thread = threading.Thread(target=stop, name=f"stop-{name}", daemon=True)
    thread.start()
    thread.join(STOP_TIMEOUT_S)
    if thread.is_alive():
        _log(f"{name} did not stop within {STOP_TIMEOUT_S:.0f} s; leaving it")


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    if not _port_free(host, port):
        raise SystemExit(f"PORT {port} is in use; set PORT to a free port.")
    call_command("migrate", interactive=False, verbosity=1)

    emulator = None
    if not settings.OPENAI_API_KEY:
        _log(f"no OPENAI_API_KEY: starting the emulator on port {settings.EMULATOR_PORT}")
        emulator = emulator_start(port=settings.EMULATOR_PORT, api_key=settings.EMULATOR_API_KEY)
        _log(f"emulator pid {emulator.pid}")

    from config.celery import app as celery_app

    worker, worker_thread = worker_start(
        celery_app,
        queues=[settings.CELERY_TASK_DEFAULT_QUEUE, settings.SIDEBAND_QUEUE],
        concurrency=int(os.environ.get("WORKER_CONCURRENCY", "64")),
    )
    beat = beat_start(celery_app, schedule_filename=BASE_DIR / "var" / "celerybeat-schedule")

    children = [
        Child("Celery worker", lambda: None if worker_thread.is_alive() else "its thread ended"),
        Child("beat", lambda: None if beat.is_alive() else "its thread ended"),
    ]
    if emulator is not None:

        def emulator_restart() -> None:
            nonlocal emulator
            emulator = emulator_start(
                port=settings.EMULATOR_PORT, api_key=settings.EMULATOR_API_KEY
            )
            _log(f"emulator pid {emulator.pid}")

        children.append(
            Child("emulator", lambda: process_exit_status(emulator), restart=emulator_restart)
        )
    # Stopping goes the way of Ctrl-C: daphne's handler ends the server, then `finally` below.
    stopping = threading.Event()
    children_watch(children, stop=lambda: os.kill(os.getpid(), signal.SIGINT), stopping=stopping)

    # daphne installs its asyncio Twisted reactor on import: import it only now.
    from daphne.server import Server

    from config.asgi import application

    _log(
        f"app on http://{host}:{port}/  (upstream: {settings.OPENAI_BASE_URL}, "
        f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}, "
        f"transports: {'embedded' if settings.EMBEDDED else 'redis'}); Ctrl-C stops"
    )
    try:
        Server(
            application=application,
            endpoints=[f"tcp:port={port}:interface={host}"],
            signal_handlers=True,
        ).run()
    finally:
        stopping.set()
        _log("stopping")
        _stop_with_timeout("beat", beat.stop)
        _stop_with_timeout("worker", worker.stop)
        worker_thread.join(STOP_TIMEOUT_S)
        if emulator is not None:
            emulator_stop(emulator)
        _log("stopped")
        sys.stdout.flush()
        sys.stderr.flush()
        # Long-lived sideband tasks hold non-daemon pool threads; exit without joining them.
        os._exit(0)


if __name__ == "__main__":
    main()
