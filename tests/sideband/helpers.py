"""Helpers of the sideband tests: real `celery worker` processes, emulator calls, DB polling.

The worker is a real `celery -A config worker -P threads` subprocess on the test database
(pytest-django's `test_<name>`), the Redis db of this run and the emulator fixture; tests that
kill workers start their own through `workers`. Every wait polls with a bounded deadline.
"""

from __future__ import annotations

import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import redis
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings

from config.asgi import application
from sessions_app.calls import call_register
from sessions_app.models import Call, Session, TranscriptTurn
from tests.factories import OWNER_CREDENTIAL, ClientSecretFactory, SessionFactory
from tests.processes import celery_worker_argv, process_env, wait_for

if TYPE_CHECKING:
    from realtime_emulator.testing import EmulatorServer

ROOT = Path(__file__).resolve().parents[2]

# Short lease and fast polls: the tests wait on the same mechanisms as production, scaled down.
WORKER_ENV = {
    "SIDEBAND_LEASE_S": "3",
    "SIDEBAND_POLL_S": "0.2",
    "SIDEBAND_HEARTBEAT_S": "0.5",
    # A dropped socket is retried after 0.25-0.5 s at first: the gap tests act inside that window.
    "SIDEBAND_BACKOFF_BASE_S": "0.5",
    "SIDEBAND_BACKOFF_MAX_S": "2",
    "SIDEBAND_PING_S": "5",
    # Admission by lag is not what these tests are about: a machine busy with other tests must
    # not make a worker refuse calls (capacity is set per test: SIDEBAND_MAX_CALLS).
    "SIDEBAND_MAX_LAG_S": "60",
}


class Worker:
    def __init__(self, proc: subprocess.Popen[bytes], name: str, log: Path) -> None:
        self.proc = proc
        self.name = name
        self.log = log

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None


class Workers:
    """Starts and stops real sideband worker processes; stops them all at the end."""

    def __init__(self, *, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.running: list[Worker] = []
        self.started: list[Worker] = []

    def start(self, **env: str) -> Worker:
        """A new worker process; `env`: settings of its own (e.g. SIDEBAND_MAX_CALLS)."""
        name = f"sb-{uuid.uuid4().hex[:6]}"
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                celery_worker_argv(
                    queues=f"{django_settings.SIDEBAND_QUEUE},default",
                    concurrency=4,
                    name=f"{name}@%h",
                ),
                cwd=ROOT,
                env={**self.env, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        worker = Worker(proc, name, log)
        self.running.append(worker)
        self.started.append(worker)
        wait_for(
            lambda: " ready." in worker.log_text() or not worker.alive(),
            # Start-up is imports and a broker connection: seconds, more on a busy machine.
            timeout=90,
            what=f"worker {name} to be ready",
        )
        assert worker.alive(), worker.log_text()
        return worker

    def stop(self, worker: Worker, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if worker.alive():
            worker.proc.send_signal(sig)
            try:
                worker.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait(5)
        if worker in self.running:
            self.running.remove(worker)

    def any(self) -> Worker:
        """A running worker (starting one if none runs)."""
        for worker in self.running:
            if worker.alive():
                return worker
        return self.start()

    def stop_all(self) -> None:
        for worker in list(self.running):
            self.stop(worker)


# --- Emulator calls and the rows that register them -----------------------------------------


@contextmanager
def workers_running(
    *, emulator_server: EmulatorServer, log_dir: Path, **env_overrides: str
) -> Iterator[Workers]:
    """A pool of real worker processes on this run's test DB, Redis db and emulator."""
    env = process_env(
        emulator_server=emulator_server,
        **{"SIDEBAND_AUTH": "client_secret", **WORKER_ENV, **env_overrides},
    )
    # Stale tasks of an earlier run must not reach this run's workers.
    redis.Redis.from_url(django_settings.REDIS_URL).flushdb()
    pool = Workers(env=env, log_dir=log_dir)
    try:
        yield pool
    finally:
        pool.stop_all()
    # A worker that logged a traceback failed at something, even where no test looked.
    failed = [w.log_text() for w in pool.started if "Traceback" in w.log_text()]
    assert not failed, "\n\n".join(failed)


def synthetic_call(upstream: EmulatorServer, **options: Any) -> dict[str, Any]:
    """One idle emulator call (driven by user-text/user-audio); {call_id, client_secret, ...}."""
    body = {"count": 1, "turns": 0, "start": "now", **options}
    return upstream.control("POST", "/_emulator/synthetic-calls", body)["calls"][0]


def emulator_call(upstream: EmulatorServer, call_id: str) -> dict[str, Any]:
    return upstream.control("GET", f"/_emulator/calls/{call_id}")


def sidebands(upstream: EmulatorServer, call_id: str) -> int:
    return int(emulator_call(upstream, call_id)["sidebands"])


def session_new(**fields: Any) -> Session:
    return cast(Session, SessionFactory(**fields))


def call_start(session: Session, synthetic: dict[str, Any], *, kind: str = "create") -> Call:
    """Record the emulator call's secret for the session and register the call (dispatches
    `call_own` on commit, as POST /session/call does)."""
    ClientSecretFactory(session=session, kind=kind, value=synthetic["client_secret"])
    call, created = call_register(session=session, call_id=synthetic["call_id"])
    assert created
    return call


def attached(upstream: EmulatorServer, call: Call, *, timeout: float = 10.0) -> Call:
    """Wait until the worker holds the call's lease and its socket is joined upstream."""
    wait_for(
        lambda: (
            sidebands(upstream, call.call_id) == 1
            and Call.objects.filter(pk=call.pk).exclude(lease_owner="").exists()
        ),
        timeout=timeout,
        what=f"sideband of {call.call_id}",
    )
    call.refresh_from_db()
    return call


def turns(session: Session) -> list[tuple[str, str | None, str]]:
    """(role, text, status) of the session's turns, in conversation order."""
    return [
        (t.role, t.text, t.status)
        for t in TranscriptTurn.objects.filter(session=session).order_by("position")
    ]


def turns_settled(session: Session, count: int) -> Callable[[], list[Any] | None]:
    """A predicate: the session has `count` turns, none in progress."""

    def check() -> list[Any] | None:
        rows = turns(session)
        if len(rows) == count and all(status != "in_progress" for _, _, status in rows):
            return rows
        return None

    return check


def reply(text: str) -> str:
    return f'You said: "{text}".'


def user_text(upstream: EmulatorServer, call: Call, text: str, *, respond: bool = True) -> str:
    """A typed user turn and (with `respond`) its answer on the emulator call; the item's id."""
    path = f"/_emulator/calls/{call.call_id}/user-text"
    return str(upstream.control("POST", path, {"text": text, "respond": respond})["item_id"])


def user_audio(upstream: EmulatorServer, call: Call, transcript: str, **extra: str) -> str:
    """A spoken user turn on the emulator call; the user item's id."""
    path = f"/_emulator/calls/{call.call_id}/user-audio"
    return str(upstream.control("POST", path, {"transcript": transcript, **extra})["item_id"])


def ended(call: Call, *, timeout: float = 10.0) -> Call:
    """Wait until the call has ended in the database; the row, refreshed."""
    wait_for(
        lambda: Call.objects.filter(pk=call.pk, ended_at__isnull=False).exists(),
        timeout=timeout,
        what=f"{call.call_id} to end",
    )
    call.refresh_from_db()
    return call


# --- The page's live socket -----------------------------------------------------------------

# The origin a page of the test server sends (sideband.origin compares it with the Host).
ORIGIN = (b"origin", b"http://testserver")


def cookie_header(credential: str = OWNER_CREDENTIAL) -> tuple[bytes, bytes]:
    """The client cookie a browser holding `credential` sends (the owner's by default)."""
    return (b"cookie", f"{django_settings.CLIENT_COOKIE_NAME}={credential}".encode())


def socket_to(
    session_id: Any, headers: list[tuple[bytes, bytes]], *, path: str = ""
) -> WebsocketCommunicator:
    """A live socket to `ws/session/<session_id>/` (or to `path`) sending `headers` (its
    origin and credential: ORIGIN, cookie_header()), on host testserver unless they name one."""
    if not any(name == b"host" for name, _ in headers):
        headers = [(b"host", b"testserver"), *headers]
    return WebsocketCommunicator(application, path or f"/ws/session/{session_id}/", headers=headers)


def page_socket(session: Session) -> WebsocketCommunicator:
    """The session's live socket as its owner's page opens it (cookie and origin)."""
    return socket_to(session.public_id, [ORIGIN, cookie_header()])
