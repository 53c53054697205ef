"""The whole app on a Redis and a Postgres of its own, and a page's-eye view of it over HTTP
and the live socket: what the fault tests stop and restart under a call.

Real processes: daphne (`config.asgi`), a Celery worker (`-Q sideband,default`, threads) and
Celery beat (the reconciler), all on `tests.servers` instances; the upstream is the emulator.
Every process started here is stopped here (`stack_running`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path
from typing import TYPE_CHECKING, Any

import websocket
from django.conf import settings

from realtime_emulator.testing import free_port
from tests.processes import celery_worker_argv, process_env, wait_for
from tests.servers import PostgresServer, RedisServer, running
from tests.sideband.helpers import WORKER_ENV

if TYPE_CHECKING:
    from realtime_emulator.testing import EmulatorServer

ROOT = Path(__file__).resolve().parents[2]

# The lease outlives a Postgres restart (~1 s here), so a restart is not also a takeover; the
# reconciler ticks fast, so a call whose dispatch never reached the broker is owned soon after.
STACK_ENV = {
    **WORKER_ENV,
    "SIDEBAND_AUTH": "api_key",
    "SIDEBAND_LEASE_S": "5",
    "SIDEBAND_RECONCILE_S": "0.5",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "CLIENT_COOKIE_SECURE": "0",
}


@dataclass
class Process:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _stop_all(processes: list[Process]) -> None:
    """SIGTERM to all at once (each shuts down gracefully in parallel), then wait; SIGKILL what
    is still running after 20 s."""
    for process in processes:
        if process.proc.poll() is None:
            process.proc.terminate()
    for process in processes:
        try:
            process.proc.wait(20)
        except subprocess.TimeoutExpired:
            process.proc.kill()
            process.proc.wait(5)


@dataclass
class Stack:
    base: str
    redis: RedisServer
    postgres: PostgresServer
    processes: dict[str, Process] = field(default_factory=dict)

    def log(self, name: str) -> str:
        return self.processes[name].log_text()

    def logs_since(self, marks: dict[str, int]) -> dict[str, str]:
        return {name: self.log(name)[marks.get(name, 0) :] for name in self.processes}

    def log_marks(self) -> dict[str, int]:
        return {name: len(self.log(name)) for name in self.processes}


def _start(name: str, argv: list[str], *, env: dict[str, str], logs: Path) -> Process:
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Process(name=name, proc=proc, log=log)


@contextmanager
def stack_running(*, emulator_server: EmulatorServer, logs: Path) -> Iterator[Stack]:
    """Redis, Postgres (migrated), daphne, a worker and beat; all stopped at the end."""
    with ExitStack() as stop:
        redis_server = stop.enter_context(running(RedisServer()))
        postgres = stop.enter_context(running(PostgresServer()))
        postgres.create_database()
        env = process_env(
            emulator_server=emulator_server,
            DATABASE_URL=postgres.url,
            REDIS_URL=redis_server.url,
            **STACK_ENV,
        )
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=120,
        )
        port = free_port()
        stack = Stack(base=f"http://127.0.0.1:{port}", redis=redis_server, postgres=postgres)
        commands = {
            "app": [
                sys.executable,
                *("-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"),
            ],
            "worker": celery_worker_argv(
                queues=f"{settings.SIDEBAND_QUEUE},default", concurrency=4, name="faults@%h"
            ),
            "beat": [
                sys.executable,
                *("-m", "celery", "-A", "config", "beat", "-l", "INFO"),
                *("-s", str(logs / "beat-schedule"), "--pidfile", ""),
            ],
        }
        stop.callback(lambda: _stop_all(list(stack.processes.values())))
        for name, argv in commands.items():
            stack.processes[name] = _start(name, argv, env=env, logs=logs)
        # Generous: on a shared 2-core machine a Django process can take many seconds to start.
        wait_for(lambda: _http_status(f"{stack.base}/") == 200, timeout=90, what="daphne")
        wait_for(lambda: " ready." in stack.log("worker"), timeout=90, what="the worker")
        for process in stack.processes.values():
            assert process.proc.poll() is None, process.log_text()
        yield stack


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


# --- The page's side: HTTP with its cookies, and the live socket ---------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


class Browser:
    """What the page does over HTTP: its cookies (client credential, csrftoken) and JSON."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.request("GET", "/")  # the csrftoken cookie

    def cookie(self, name: str) -> str:
        return next(c.value for c in self.jar if c.name == name and c.value is not None)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Answer:
        headers = {"Content-Type": "application/json"}
        if method != "GET":
            headers["X-CSRFToken"] = self.cookie("csrftoken")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, headers=headers, method=method
        )
        try:
            with self.opener.open(request, timeout=30) as response:
                status, raw, answer_headers = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            status, raw, answer_headers = error.code, error.read(), error.headers
        text = raw.decode(errors="replace")
        parsed: Any = text
        if answer_headers.get("Content-Type", "").startswith("application/json"):
            parsed = json.loads(text)
        return Answer(status=status, headers=dict(answer_headers.items()), body=parsed)

    def session_create(self) -> Answer:
        return self.request("POST", "/session", {"model": "gpt-realtime", "voice": "marin"})

    def call_register(self, session_id: str, call_id: str) -> Answer:
        return self.request("POST", "/session/call", {"sessionId": session_id, "callId": call_id})

    def transcript(self, session_id: str) -> list[tuple[str, str | None, str]]:
        answer = self.request("GET", f"/session/{session_id}/transcript")
        assert answer.status == 200, answer
        return [(t["role"], t["text"], t["status"]) for t in answer.body["turns"]]

    def transcript_settled(
        self, session_id: str, count: int
    ) -> Callable[[], list[tuple[str, str | None, str]] | None]:
        def check() -> list[tuple[str, str | None, str]] | None:
            answer = self.request("GET", f"/session/{session_id}/transcript")
            if answer.status != 200:
                return None
            turns = [(t["role"], t["text"], t["status"]) for t in answer.body["turns"]]
            settled = len(turns) == count and all(s != "in_progress" for *_, s in turns)
            return turns if settled else None

        return check

    def call_attached(self, session_id: str, call_id: str) -> bool:
        answer = self.request("GET", f"/session/{session_id}")
        if answer.status != 200:
            return False
        return any(
            c["callId"] == call_id and c["attachedAt"] is not None for c in answer.body["calls"]
        )

    def live(self, session_id: str) -> LiveSocket:
        return LiveSocket(self, session_id)


class LiveSocket:
    """The page's live socket (`ws/session/<id>/`); `messages` holds what it received."""

    def __init__(self, browser: Browser, session_id: str) -> None:
        url = browser.base.replace("http://", "ws://") + f"/ws/session/{session_id}/"
        cookies = f"{settings.CLIENT_COOKIE_NAME}={browser.cookie(settings.CLIENT_COOKIE_NAME)}"
        self.ws = websocket.create_connection(url, cookie=cookies, origin=browser.base, timeout=10)
        self.messages: list[dict[str, Any]] = []
        self.closed_with: int | None = None

    def receive_until(
        self, predicate: Callable[[dict[str, Any]], bool], *, timeout: float = 15
    ) -> dict[str, Any]:
        """Read messages until one matches; fails after `timeout` or if the socket closes."""
        self.ws.settimeout(timeout)
        while True:
            opcode, data = self.ws.recv_data(control_frame=False)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                self.closed_with = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                raise AssertionError(f"the live socket closed ({self.closed_with})")
            message = json.loads(data)
            self.messages.append(message)
            if predicate(message):
                return message

    def wait_closed(self, *, timeout: float = 15) -> int | None:
        """Read until the server closes the socket; its close code."""
        self.ws.settimeout(timeout)
        while True:
            try:
                opcode, data = self.ws.recv_data(control_frame=False)
            except websocket.WebSocketConnectionClosedException:
                return self.closed_with
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                self.closed_with = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                return self.closed_with
            self.messages.append(json.loads(data))

    def close(self) -> None:
        self.ws.close()
