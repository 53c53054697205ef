"""Redis and Postgres going away under a live call, and coming back: nothing lost, nothing
frozen, nothing doubled. The whole app runs as real processes on a Redis and a Postgres these
tests start, kill and restart themselves (tests/servers.py), never the machine's shared ones.

What each test checks is what a page sees: HTTP answers, the live socket's messages, and the
transcript the server returns.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
import websocket

from sideband.consumers import CLOSE_TRY_AGAIN_LATER
from tests.faults.stack import Browser, LiveSocket, Stack, stack_running
from tests.processes import wait_for
from tests.sideband.helpers import reply, synthetic_call

if TYPE_CHECKING:
    from realtime_emulator.testing import EmulatorServer

# Celery's log records of the broker going away under a worker.
CELERY_BROKER_LOST = re.compile(
    r"Couldn't ack|Connection to broker lost|Task exception was never retrieved"
)
# The first test also starts the stack (seconds, or a minute on a loaded machine).
pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def stack(
    emulator_server: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with stack_running(
        emulator_server=emulator_server, logs=tmp_path_factory.mktemp("faults")
    ) as running:
        yield running
        logs = {name: running.log(name) for name in running.processes}
    # A traceback in a log is a failure somewhere, even where no test looked: an outage is
    # logged as one line by whoever meets it. Celery's own reports of the broker lost under it
    # (a task's ack, the consumer) come with a traceback of Celery's: those are not ours.
    for name, text in logs.items():
        ours = [
            found.start()
            for found in re.finditer(r"^Traceback", text, re.MULTILINE)
            if not CELERY_BROKER_LOST.search(_log_line_before(text, found.start()))
        ]
        assert not ours, f"{name} logged a traceback:\n{text}"


def _log_line_before(text: str, position: int) -> str:
    """The last log record (a line opening with "[") before `position`."""
    records = re.findall(r"^(?:\[|\d{4}-).*$", text[:position], re.MULTILINE)
    return records[-1] if records else ""


def say(upstream: EmulatorServer, call_id: str, text: str) -> None:
    upstream.control("POST", f"/_emulator/calls/{call_id}/user-text", {"text": text})


def answered(text: str) -> Any:
    """A predicate on live messages: the assistant's turn answering `text` is completed."""

    def check(message: dict[str, Any]) -> bool:
        turn = message.get("turn") or {}
        return bool(
            message.get("type") == "turn"
            and turn.get("role") == "assistant"
            and turn.get("status") == "completed"
            and turn.get("text") == reply(text)
        )

    return check


def conversation(*texts: str) -> list[tuple[str, str | None, str]]:
    turns: list[tuple[str, str | None, str]] = []
    for text in texts:
        turns += [("user", text, "completed"), ("assistant", reply(text), "completed")]
    return turns


def call_live(stack: Stack, upstream: EmulatorServer) -> tuple[Browser, str, str]:
    """A page's session with a registered call the worker has attached to."""
    browser = Browser(stack.base)
    created = browser.session_create()
    assert created.status == 201, created
    session_id = created.body["sessionId"]
    call_id = synthetic_call(upstream)["call_id"]
    registered = browser.call_register(session_id, call_id)
    assert registered.status == 200, registered
    wait_for(lambda: browser.call_attached(session_id, call_id), timeout=15, what="the sideband")
    return browser, session_id, call_id


def conversation_started(
    stack: Stack, upstream: EmulatorServer, text: str
) -> tuple[Browser, str, str, LiveSocket, dict[str, Any]]:
    """A live call with the page connected and one exchange (`text`) seen live; the browser,
    session id, call id, live socket and the answer's message."""
    browser, session_id, call_id = call_live(stack, upstream)
    page = browser.live(session_id)
    page.receive_until(lambda m: m["type"] == "snapshot")
    say(upstream, call_id, text)
    return browser, session_id, call_id, page, page.receive_until(answered(text))


def live_reconnected(browser: Browser, session_id: str) -> LiveSocket:
    """What the page does after its socket closed: connect again until the server takes it."""

    def attempt() -> LiveSocket | None:
        try:
            socket = browser.live(session_id)
            socket.receive_until(lambda m: m["type"] == "snapshot", timeout=5)
        except (OSError, AssertionError, websocket.WebSocketException):
            return None
        return socket

    return wait_for(attempt, timeout=20, interval=0.2, what="the live socket to reconnect")


def numbering_is_sound(messages: list[dict[str, Any]]) -> None:
    """After a snapshot: one epoch, numbers rising by one, a skip only before a `resync`. A
    message numbered before the snapshot's number was read may still arrive after it (the
    socket joined the group first): it is in the snapshot, and the page drops it (live.js)."""
    snapshot, *rest = messages
    assert snapshot["type"] == "snapshot"
    last = snapshot["seq"]
    for message in rest:
        assert message["epoch"] == snapshot["epoch"], messages
        if message["seq"] <= snapshot["seq"]:
            continue
        assert message["seq"] == last + 1 or (
            message["type"] == "resync" and message["seq"] > last + 1
        ), messages
        last = message["seq"]


def test_redis_killed_mid_call_the_page_reconnects_and_no_turn_is_lost_or_doubled(
    stack: Stack, upstream: EmulatorServer
) -> None:
    browser, session_id, call_id, page, answer = conversation_started(
        stack, upstream, "before the restart"
    )
    epoch_before = answer["epoch"]

    stack.redis.kill()
    # The server closes the socket with "try again later"; the turns keep landing in Postgres
    # and the transcript still answers (its live-push position unknown meanwhile).
    assert page.wait_closed() == CLOSE_TRY_AGAIN_LATER
    say(upstream, call_id, "while redis is away")
    wait_for(browser.transcript_settled(session_id, 4), timeout=15, what="the turns in Postgres")
    during = browser.request("GET", f"/session/{session_id}/transcript")
    assert (during.status, during.body["seq"], during.body["epoch"]) == (200, None, None)

    stack.redis.start()
    page = live_reconnected(browser, session_id)
    snapshot = page.messages[0]
    # The worker's pusher owed this session the messages it could not send: it resyncs.
    wait_for(lambda: "live push resumed" in stack.log("worker"), timeout=10, what="a resync")
    say(upstream, call_id, "after the restart")
    page.receive_until(answered("after the restart"))

    assert [(t["role"], t["text"]) for t in snapshot["turns"]] == [
        (role, text) for role, text, _ in conversation("before the restart", "while redis is away")
    ]
    # Redis lost its keys: the numbering restarted in a new epoch, which the page can tell.
    assert snapshot["epoch"] != epoch_before
    numbering_is_sound(page.messages)
    assert browser.transcript(session_id) == conversation(
        "before the restart", "while redis is away", "after the restart"
    )
    page.close()


def test_redis_down_during_create_and_registration_the_call_is_owned_once_it_is_back(
    stack: Stack, upstream: EmulatorServer
) -> None:
    browser = Browser(stack.base)
    marks = stack.log_marks()
    stack.redis.kill()

    created = browser.session_create()
    session_id = created.body["sessionId"]
    call_id = synthetic_call(upstream)["call_id"]
    registered = browser.call_register(session_id, call_id)
    app_log = stack.logs_since(marks)["app"]

    assert created.status == 201, created
    assert "rate limit create not enforced, Redis away (failing open)" in app_log
    assert registered.status == 200, registered
    assert "call_own not dispatched, broker away" in app_log
    assert not browser.call_attached(session_id, call_id)

    stack.redis.start()
    # The reconciler finds the call no worker claimed and dispatches it.
    wait_for(lambda: browser.call_attached(session_id, call_id), timeout=30, what="the sideband")
    say(upstream, call_id, "owned after all")
    wait_for(browser.transcript_settled(session_id, 2), timeout=15, what="the turns")

    assert f"reconcile: re-dispatching call={call_id}" in stack.logs_since(marks)["worker"]
    assert browser.transcript(session_id) == conversation("owned after all")


def test_postgres_restarted_mid_call_requests_get_503_then_succeed_and_no_turn_is_lost(
    stack: Stack, upstream: EmulatorServer
) -> None:
    browser, session_id, call_id, page, _ = conversation_started(
        stack, upstream, "before the restart"
    )

    stack.postgres.stop()
    refused = browser.session_create()
    read = browser.request("GET", f"/session/{session_id}/transcript")
    say(upstream, call_id, "while postgres is away")
    stack.postgres.start()
    # The worker held the turns and writes them once Postgres is back; the page sees them live.
    page.receive_until(answered("while postgres is away"))
    created = browser.session_create()

    assert (refused.status, refused.headers.get("Retry-After")) == (503, "5")
    assert refused.body["code"] == "database_away"
    assert (read.status, read.headers.get("Retry-After")) == (503, "5")
    assert created.status == 201, created
    numbering_is_sound(page.messages)
    assert browser.transcript(session_id) == conversation(
        "before the restart", "while postgres is away"
    )
    page.close()


def test_redis_and_postgres_restarted_together_the_call_carries_on(
    stack: Stack, upstream: EmulatorServer
) -> None:
    browser, session_id, call_id, page, _ = conversation_started(
        stack, upstream, "before the restarts"
    )

    stack.redis.kill()
    # Read the close at once: a client slow to answer it gets its connection reset instead.
    assert page.wait_closed() == CLOSE_TRY_AGAIN_LATER
    stack.postgres.stop()
    refused = browser.session_create()
    say(upstream, call_id, "while both are away")
    stack.postgres.start()
    stack.redis.start()
    wait_for(browser.transcript_settled(session_id, 4), timeout=20, what="the turns in Postgres")
    page = live_reconnected(browser, session_id)
    say(upstream, call_id, "after the restarts")
    page.receive_until(answered("after the restarts"))

    assert (refused.status, refused.headers.get("Retry-After")) == (503, "5")
    assert [(t["role"], t["text"]) for t in page.messages[0]["turns"]] == [
        (role, text) for role, text, _ in conversation("before the restarts", "while both are away")
    ]
    numbering_is_sound(page.messages)
    assert browser.transcript(session_id) == conversation(
        "before the restarts", "while both are away", "after the restarts"
    )
    assert browser.session_create().status == 201
    page.close()
