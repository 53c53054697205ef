"""Fixtures of the host-app tests: host tokens, API keys, a real webhook receiver on
127.0.0.1, and this package's own pool of real worker processes (sideband + default queues:
the sideband captures calls, the default queue delivers webhooks and runs extractions)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast

import jwt
import pytest
from django.test import Client

from extraction.models import Profile
from hostapi.keys import api_key_create
from sessions_app.identity import subject_owner_hash
from sessions_app.models import Session
from tests.factories import ProfileFactory, SessionFactory
from tests.sessions_app.conftest import _own_rate_limit_counters  # noqa: F401 - autouse fixture
from tests.sideband.helpers import Worker, Workers, workers_running

if TYPE_CHECKING:
    from realtime_emulator.testing import EmulatorServer

HOST_SECRET = "host-backend-signing-secret-0123456789abcdef"
AUDIENCE = "realtime-transcript"


@pytest.fixture(autouse=True)
def _host_tokens(settings: Any) -> None:
    settings.HOST_TOKEN_SECRET = HOST_SECRET
    settings.HOST_TOKEN_PUBLIC_KEY = ""
    settings.HOST_TOKEN_AUDIENCE = AUDIENCE
    settings.HOST_TOKEN_ISSUER = ""
    # The tests scan in-process after every write they wait for has committed.
    settings.WEBHOOK_SCAN_SETTLE_S = 0.0


def host_token(subject: str, *, ttl: int = 300, key: str = HOST_SECRET, **claims: Any) -> str:
    """What the host backend signs for its user (README "Use it from your app")."""
    body = {"sub": subject, "aud": AUDIENCE, "exp": int(time.time()) + ttl, **claims}
    return jwt.encode(body, key, algorithm="HS256")


def user_client(subject: str, **claims: Any) -> Client:
    """A page of the host app whose user is `subject`: every request carries its token."""
    return Client(HTTP_AUTHORIZATION=f"Bearer {host_token(subject, **claims)}")


def a_session(subject: str = "", **fields: Any) -> Session:
    """A session of the host user `subject`, or of the factories' browser without one."""
    if subject:
        fields = {"owner_hash": subject_owner_hash(subject), "owner_subject": subject, **fields}
    return cast(Session, SessionFactory(**fields))


def a_profile(**fields: Any) -> Profile:
    return cast(Profile, ProfileFactory(**fields))


def key_client(*, read: bool = True, write: bool = False, delete: bool = False) -> Client:
    _key, raw = api_key_create(name="backend", read=read, write=write, delete=delete)
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}")


@pytest.fixture(scope="package")
def host_workers(
    django_db_setup: Any,
    django_db_blocker: Any,
    emulator_server: EmulatorServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Workers]:
    with workers_running(
        emulator_server=emulator_server,
        log_dir=tmp_path_factory.mktemp("host-workers"),
        WEBHOOK_RETRY_BASE_S="0.3",
        WEBHOOK_RETRY_MAX_S="1",
        WEBHOOK_TIMEOUT_S="2",
        TRANSCRIPT_RETENTION_DAYS="30",
        RETENTION_BATCH="2",
    ) as pool:
        yield pool


@pytest.fixture
def worker(host_workers: Workers, upstream: EmulatorServer) -> Worker:
    return host_workers.any()


# --- A real webhook receiver ------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST; `stop()` and `start()` make an
    outage (the port refuses connections meanwhile), `fail_next` answers 503s."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.refused = 0
        self.fail_next = 0
        self.lock = threading.Lock()
        self.port = 0
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    failing = receiver.fail_next > 0
                    if failing:
                        receiver.fail_next -= 1
                        receiver.refused += 1
                    else:
                        receiver.received.append(
                            Received({k.lower(): v for k, v in self.headers.items()}, body)
                        )
                self.send_response(503 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.thread is not None:
            self.thread.join(5)
            self.thread = None

    def events(self) -> list[Received]:
        with self.lock:
            return list(self.received)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    server.stop()
