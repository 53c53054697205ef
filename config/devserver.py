"""`make run`: the whole app in one process, on http://127.0.0.1:$PORT.

Migrates, starts the offline emulator (a subprocess on $EMULATOR_PORT) when no OPENAI_API_KEY
is set, then runs the Celery worker (queues default + sideband, a thread pool) and beat as
threads of this process, and serves the ASGI app (HTTP + Channels) with daphne. Worker and
beat share the process with the web server so that the embedded transports (Celery's
`memory://` broker, Channels' InMemoryChannelLayer, used when REDIS_URL is unset) reach all
of them: the same tasks and consumers as production, over other transports. With REDIS_URL
and DATABASE_URL set it runs the same way against Redis and Postgres.

Ctrl-C stops the server, then beat, the worker and the emulator. This module (with the
tests) is the only code outside the emulator that may start it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
STOP_TIMEOUT_S = 5.0


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

    from config.celery import app as celery_app

    worker, worker_thread = worker_start(
        celery_app,
        queues=[settings.CELERY_TASK_DEFAULT_QUEUE, settings.SIDEBAND_QUEUE],
        concurrency=int(os.environ.get("WORKER_CONCURRENCY", "64")),
    )
    beat = beat_start(celery_app, schedule_filename=BASE_DIR / "var" / "celerybeat-schedule")

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
