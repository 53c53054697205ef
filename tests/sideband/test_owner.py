"""The connection owner end to end: a real celery worker, the emulator, Postgres and Redis.

Calls are emulator synthetic calls (no WebRTC) registered through `call_register`, which
dispatches `sideband.tasks.call_own` on commit exactly as POST /session/call does.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import websocket
from asgiref.sync import sync_to_async
from django.db import connections

from realtime_emulator.testing import EmulatorError
from sessions_app.models import Call, TranscriptTurn
from sideband.owner.process import owner_current, owner_reset
from sideband.tasks import call_own, calls_reconcile
from sideband.transcript import connect_params
from tests.sideband.helpers import (
    Worker,
    Workers,
    attached,
    call_start,
    emulator_call,
    ended,
    page_socket,
    reply,
    session_new,
    sidebands,
    synthetic_call,
    turns,
    turns_settled,
    user_audio,
    user_text,
    wait_for,
)

if TYPE_CHECKING:
    from realtime_emulator.testing import EmulatorServer

pytestmark = pytest.mark.django_db(transaction=True)


def test_text_turn_is_captured(worker: Worker, upstream: EmulatorServer) -> None:
    session = session_new()
    call = attached(upstream, call_start(session, synthetic_call(upstream)))

    user_text(upstream, call, "hello there")

    assert wait_for(turns_settled(session, 2)) == [
        ("user", "hello there", "completed"),
        ("assistant", reply("hello there"), "completed"),
    ]
    assert set(TranscriptTurn.objects.filter(session=session).values_list("call", flat=True)) == {
        call.pk
    }


@contextmanager
def database_unreachable() -> Iterator[None]:
    """As a Postgres restart would: every connection to the test database is cut, and none can
    be made until the block ends (the ALTER runs from the maintenance database: it cannot run
    on the current one). This test's own connection is cut too, and reopened after."""
    database = connections["default"].settings_dict["NAME"]
    with psycopg.connect(**{**connect_params(), "dbname": "postgres"}, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                [database],
            )
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    connections["default"].close()


def test_turns_keep_landing_after_the_database_drops_the_workers_connections(
    worker: Worker, upstream: EmulatorServer
) -> None:
    session = session_new()
    call = attached(upstream, call_start(session, synthetic_call(upstream)))
    user_text(upstream, call, "before")
    wait_for(turns_settled(session, 2))

    with database_unreachable():
        user_text(upstream, call, "after")
        wait_for(
            lambda: "writer: database unavailable (OperationalError), retry 2" in worker.log_text(),
            what="the writer to fail twice",
        )

    assert wait_for(turns_settled(session, 4)) == [
        ("user", "before", "completed"),
        ("assistant", reply("before"), "completed"),
        ("user", "after", "completed"),
        ("assistant", reply("after"), "completed"),
    ]


def test_a_call_that_ends_while_the_database_is_down_is_ended_when_it_is_back(
    worker: Worker, upstream: EmulatorServer
) -> None:
    session = session_new()
    call = attached(upstream, call_start(session, synthetic_call(upstream)))

    with database_unreachable():
        upstream.control("POST", f"/_emulator/calls/{call.call_id}/hangup")
        wait_for(
            lambda: (
                "sideband: database unavailable" in worker.log_text()
                and ", retry 2" in worker.log_text()
            ),
            what="the call end to fail twice",
        )

    assert ended(call).end_reason == Call.EndReason.HANGUP


def test_audio_turn_with_a_late_transcript_keeps_conversation_order(
    worker: Worker, upstream: EmulatorServer
) -> None:
    # The user's transcript completes well after the assistant's answer started.
    upstream.control("POST", "/_emulator/settings", {"transcription_delay_s": 0.3})
    session = session_new()
    call = attached(upstream, call_start(session, synthetic_call(upstream)))

    user_audio(upstream, call, "I am speaking")
    wait_for(
        lambda: TranscriptTurn.objects.filter(session=session, role="assistant").exists(),
        what="the assistant's turn",
    )
    early = turns(session)

    assert early[0] == ("user", None, "in_progress")
    assert wait_for(turns_settled(session, 2)) == [
        ("user", "I am speaking", "completed"),
        ("assistant", reply("I am speaking"), "completed"),
    ]


def test_failed_transcription_marks_the_user_turn_failed(
    worker: Worker, upstream: EmulatorServer
) -> None:
    session = session_new()
    call = attached(upstream, call_start(session, synthetic_call(upstream)))

    user_audio(upstream, call, "mumble", transcription="failed")

    assert wait_for(turns_settled(session, 2)) == [
        ("user", None, "failed"),
        ("assistant", "I heard you.", "completed"),
    ]
    user = TranscriptTurn.objects.get(session=session, role="user")
    assert user.status_reason == "transcription failed: transcription_failed"


def test_interrupted_answer_is_kept_incomplete(worker: Worker, upstream: EmulatorServer) -> None:
    session = session_new()
    slow = synthetic_call(upstream, delta_interval_s=0.2)
    call = attached(upstream, call_start(session, slow))
    user_text(upstream, call, "tell me a long story about the sea")
    wait_for(
        lambda: TranscriptTurn.objects.filter(session=session, role="assistant").exists(),
        what="the assistant's turn to start",
    )

    interrupted = upstream.control("POST", f"/_emulator/calls/{call.call_id}/interrupt")

    assert interrupted["interrupted"] is True
    rows = wait_for(turns_settled(session, 2))
    assert rows[0] == ("user", "tell me a long story about the sea", "completed")
    assert rows[1][0] == "assistant"
    assert rows[1][2] == "incomplete"
    full = reply("tell me a long story about the sea")
    assert rows[1][1] is None or (rows[1][1] != full and full.startswith(rows[1][1]))


def test_renew_hands_over_to_the_new_call(worker: Worker, upstream: EmulatorServer) -> None:
    session = session_new()
    old = attached(upstream, call_start(session, synthetic_call(upstream)))
    user_text(upstream, old, "before renew")
    wait_for(turns_settled(session, 2))

    renewed = synthetic_call(upstream)
    started = time.monotonic()
    new = call_start(session, renewed, kind="renew")
    wait_for(lambda: sidebands(upstream, old.call_id) == 0, timeout=5, what="old socket closed")
    closed_after = time.monotonic() - started
    new = attached(upstream, new)
    user_text(upstream, new, "after renew")

    assert closed_after < 2.0
    assert wait_for(turns_settled(session, 4)) == [
        ("user", "before renew", "completed"),
        ("assistant", reply("before renew"), "completed"),
        ("user", "after renew", "completed"),
        ("assistant", reply("after renew"), "completed"),
    ]
    by_call = list(
        TranscriptTurn.objects.filter(session=session)
        .order_by("position")
        .values_list("call__call_id", flat=True)
    )
    assert by_call == [old.call_id, old.call_id, new.call_id, new.call_id]
    old.refresh_from_db()
    assert old.end_reason == Call.EndReason.SUPERSEDED
    # Rehydration: the new call was seeded with the earlier turns first, stored only once.
    items = emulator_call(upstream, new.call_id)["items"]
    assert [(i["id"].startswith("seed_"), i["role"], i["content"][0].get("text")) for i in items][
        :3
    ] == [
        (True, "user", "before renew"),
        (True, "assistant", reply("before renew")),
        (False, "user", "after renew"),
    ]


def test_old_call_events_after_handover_are_not_written(
    worker: Worker, upstream: EmulatorServer
) -> None:
    session = session_new()
    old = attached(upstream, call_start(session, synthetic_call(upstream)))
    new = attached(upstream, call_start(session, synthetic_call(upstream), kind="renew"))
    wait_for(lambda: sidebands(upstream, old.call_id) == 0, timeout=5, what="old socket closed")

    # The old call is hung up upstream: nothing more can be said on it.
    wait_for(
        lambda: emulator_call(upstream, old.call_id)["status"] == "ended",
        what="the old call to be hung up upstream",
    )
    with pytest.raises(EmulatorError):
        user_text(upstream, old, "too late")
    user_text(upstream, new, "on the new call")

    assert wait_for(turns_settled(session, 2)) == [
        ("user", "on the new call", "completed"),
        ("assistant", reply("on the new call"), "completed"),
    ]


def test_duplicate_call_own_does_nothing(worker: Worker, upstream: EmulatorServer) -> None:
    session = session_new()
    call = attached(upstream, call_start(session, synthetic_call(upstream)))
    before = Call.objects.values_list("lease_owner", flat=True).get(pk=call.pk)

    # A redelivered task in another process: the lease is held, so it does nothing.
    try:
        call_own.run(call.call_id, call.generation)
        local = owner_current()
        assert local is not None
        assert local.call_ids() == []
    finally:
        owner_reset()
    # And one through the broker, which the worker that owns the call receives or not.
    call_own.delay(call.call_id, call.generation)
    user_text(upstream, call, "only once")

    assert wait_for(turns_settled(session, 2)) == [
        ("user", "only once", "completed"),
        ("assistant", reply("only once"), "completed"),
    ]
    assert sidebands(upstream, call.call_id) == 1
    assert Call.objects.values_list("lease_owner", flat=True).get(pk=call.pk) == before


def test_dropped_socket_recovers_a_missed_item(worker: Worker, upstream: EmulatorServer) -> None:
    session = session_new()
    call = attached(upstream, call_start(session, synthetic_call(upstream)))
    user_text(upstream, call, "first")
    wait_for(turns_settled(session, 2))

    # Drop the worker's socket; while it backs off (>= 0.25 s), an item is added that it
    # never sees: the page inserts a typed message without asking for an answer.
    upstream.control("POST", f"/_emulator/calls/{call.call_id}/drop-sidebands", {})
    ws = websocket.create_connection(
        f"{upstream.ws_base}/realtime?call_id={call.call_id}",
        header=[f"Authorization: Bearer {upstream.api_key}"],
        timeout=5,
    )
    ws.send(
        json.dumps(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "while you were away"}],
                },
            }
        )
    )
    while json.loads(ws.recv())["type"] != "conversation.item.added":
        pass
    alone = sidebands(upstream, call.call_id)
    ws.close()
    assert alone == 1, "the worker reconnected before the missed item was added"
    wait_for(lambda: sidebands(upstream, call.call_id) == 1, what="the worker to reconnect")

    user_text(upstream, call, "back again")

    assert wait_for(turns_settled(session, 5)) == [
        ("user", "first", "completed"),
        ("assistant", reply("first"), "completed"),
        ("user", "while you were away", "completed"),
        ("user", "back again", "completed"),
        ("assistant", reply("back again"), "completed"),
    ]


def test_a_two_item_gap_recovers_only_the_newest_item(
    worker: Worker, upstream: EmulatorServer
) -> None:
    """The GA `conversation.item.retrieved` carries no previous_item_id, so without the page's
    hints (test_gap_fill.py) the walk back stops after one item: of a missed question and its
    answer only the answer comes back."""
    session = session_new()
    call = attached(upstream, call_start(session, synthetic_call(upstream)))
    user_text(upstream, call, "first")
    wait_for(turns_settled(session, 2))
    upstream.control("POST", f"/_emulator/calls/{call.call_id}/drop-sidebands", {"block": True})
    user_text(upstream, call, "missed")
    wait_for(
        lambda: any(
            item.get("role") == "assistant" and item.get("status") == "completed"
            for item in emulator_call(upstream, call.call_id)["items"][2:]
        ),
        what="the missed answer to complete upstream",
    )
    upstream.control("POST", f"/_emulator/calls/{call.call_id}/unblock-sidebands")
    wait_for(lambda: sidebands(upstream, call.call_id) == 1, what="the worker to reconnect")

    user_text(upstream, call, "back again")

    assert wait_for(turns_settled(session, 5)) == [
        ("user", "first", "completed"),
        ("assistant", reply("first"), "completed"),
        ("assistant", reply("missed"), "completed"),
        ("user", "back again", "completed"),
        ("assistant", reply("back again"), "completed"),
    ]


def test_expired_secret_ends_the_call(worker: Worker, upstream: EmulatorServer) -> None:
    session = session_new()
    synthetic = synthetic_call(upstream)
    call = attached(upstream, call_start(session, synthetic))

    upstream.control("POST", "/_emulator/secrets/expire", {"value": synthetic["client_secret"]})
    upstream.control("POST", f"/_emulator/calls/{call.call_id}/drop-sidebands", {})

    assert ended(call).end_reason == Call.EndReason.SECRET_EXPIRED
    assert sidebands(upstream, call.call_id) == 0


def test_hangup_ends_the_call(worker: Worker, upstream: EmulatorServer) -> None:
    session = session_new()
    call = attached(upstream, call_start(session, synthetic_call(upstream)))

    upstream.control("POST", f"/_emulator/calls/{call.call_id}/hangup")

    assert ended(call).end_reason == Call.EndReason.HANGUP
    assert Call.objects.get(pk=call.pk).lease_owner == ""


def test_session_expired_ends_the_call(worker: Worker, upstream: EmulatorServer) -> None:
    session = session_new()
    call = attached(upstream, call_start(session, synthetic_call(upstream)))

    upstream.control("POST", f"/_emulator/calls/{call.call_id}/expire-session")

    assert ended(call).end_reason == Call.EndReason.SESSION_EXPIRED


def test_sigkill_is_recovered_by_the_reconciler(
    workers: Workers, worker: Worker, upstream: EmulatorServer, settings: object
) -> None:
    session = session_new()
    call = attached(upstream, call_start(session, synthetic_call(upstream)))
    owner = next(w for w in workers.running if f":{w.pid}:" in call.lease_owner)
    spare = workers.start()
    user_text(upstream, call, "before the crash")
    wait_for(turns_settled(session, 2))

    killed_at = time.monotonic()
    workers.stop(owner, signal.SIGKILL)
    # Celery beat would run this every SIDEBAND_RECONCILE_S; the test runs it the same way.
    wait_for(
        lambda: calls_reconcile() > 0,
        timeout=30,
        interval=0.5,
        what="the reconciler to re-dispatch the call",
    )
    wait_for(
        lambda: f":{spare.pid}:" in Call.objects.get(pk=call.pk).lease_owner,
        timeout=10,
        what="the spare worker to own the call",
    )
    recovered_after = time.monotonic() - killed_at
    wait_for(lambda: sidebands(upstream, call.call_id) == 1, what="the new socket")
    user_text(upstream, call, "after the crash")

    assert recovered_after < 30
    assert wait_for(turns_settled(session, 4)) == [
        ("user", "before the crash", "completed"),
        ("assistant", reply("before the crash"), "completed"),
        ("user", "after the crash", "completed"),
        ("assistant", reply("after the crash"), "completed"),
    ]


def test_sigterm_closes_sockets_and_hands_calls_back(
    workers: Workers, worker: Worker, upstream: EmulatorServer
) -> None:
    session = session_new()
    call = attached(upstream, call_start(session, synthetic_call(upstream)))
    owner = next(w for w in workers.running if f":{w.pid}:" in call.lease_owner)
    spare = workers.start()

    workers.stop(owner, signal.SIGTERM)

    # No reconciler runs here: only the hand-back can give the call to the spare this soon.
    wait_for(
        lambda: f":{spare.pid}:" in Call.objects.get(pk=call.pk).lease_owner,
        timeout=5,
        what="the spare worker to take the handed-back call",
    )
    assert "handed back 1 calls" in owner.log_text()
    wait_for(lambda: sidebands(upstream, call.call_id) == 1, what="the new socket")
    user_text(upstream, call, "still here")
    assert wait_for(turns_settled(session, 2)) == [
        ("user", "still here", "completed"),
        ("assistant", reply("still here"), "completed"),
    ]


async def test_the_page_sees_turns_and_deltas_live_then_the_call_end(
    worker: Worker, upstream: EmulatorServer
) -> None:
    session = await sync_to_async(session_new)()
    synthetic = await sync_to_async(synthetic_call)(upstream)
    call = await sync_to_async(call_start)(session, synthetic)
    await sync_to_async(attached)(upstream, call)
    communicator = page_socket(session)
    try:
        assert (await communicator.connect())[0] is True
        snapshot = await communicator.receive_json_from(timeout=5)
        await sync_to_async(user_text)(upstream, call, "live please")
        messages: list[dict[str, Any]] = []
        while not any(
            m["type"] == "turn"
            and m["turn"]["role"] == "assistant"
            and m["turn"]["status"] == "completed"
            for m in messages
        ):
            messages.append(await communicator.receive_json_from(timeout=5))
        await sync_to_async(upstream.control)("POST", f"/_emulator/calls/{call.call_id}/hangup")
        while messages[-1]["type"] != "call.ended":
            messages.append(await communicator.receive_json_from(timeout=5))
    finally:
        await communicator.disconnect()
        await sync_to_async(connections.close_all)()

    epoch = snapshot["epoch"]
    assert snapshot == {"type": "snapshot", "seq": 0, "epoch": epoch, "turns": []}
    assert [(m["epoch"], m["seq"]) for m in messages] == [
        (epoch, n) for n in range(1, len(messages) + 1)
    ]
    deltas = [m for m in messages if m["type"] == "delta" and m["role"] == "assistant"]
    assert deltas[-1]["text"] == reply("live please")
    assert "".join(d["delta"] for d in deltas) == reply("live please")
    final = {m["turn"]["itemId"]: m["turn"] for m in messages if m["type"] == "turn"}
    assert sorted((t["role"], t["text"], t["status"]) for t in final.values()) == [
        ("assistant", reply("live please"), "completed"),
        ("user", "live please", "completed"),
    ]
    assert messages[-1] == {
        "type": "call.ended",
        "seq": len(messages),
        "epoch": epoch,
        "callId": call.call_id,
        "reason": "hangup",
        "message": "sideband closed: hangup",
        "generation": 1,
    }
