"""The fenced transcript writer against real Postgres."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import pytest
import websocket
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from extraction.models import Profile
from sessions_app.models import Call, Session, TranscriptTurn
from sessions_app.upstream import item_retrieve_event
from sideband.capture import (
    CallEnded,
    CaptureState,
    ItemMissing,
    Op,
    TurnDelta,
    TurnUpsert,
    capture_frame,
)
from sideband.selectors import state_load
from sideband.transcript import (
    POSITION_STEP,
    Fenced,
    batch_run_sync,
    turns_write,
)
from tests.factories import CallFactory, ProfileFactory, SessionFactory, TranscriptTurnFactory
from tests.processes import wait_for

if TYPE_CHECKING:
    from realtime_emulator.testing import EmulatorServer

pytestmark = pytest.mark.django_db


def live_call() -> Call:
    """A session's current, live call (generation 1)."""
    return cast(Call, CallFactory(session=SessionFactory(current_generation=1), generation=1))


@pytest.fixture
def call() -> Call:
    return live_call()


def user(item_id: str, prev: str | None, text: str | None = "hi", **kw: Any) -> TurnUpsert:
    return TurnUpsert(
        item_id=item_id,
        role="user",
        previous_item_id=prev,
        text=text,
        status=kw.pop("status", "completed"),
        **kw,
    )


def positions(session: Session) -> list[tuple[str, int]]:
    return list(
        TranscriptTurn.objects.filter(session=session)
        .order_by("position")
        .values_list("item_id", "position")
    )


def snapshot(session: Session) -> list[dict[str, Any]]:
    rows = TranscriptTurn.objects.filter(session=session).order_by("position").values()
    return [dict(row) for row in rows]


def new_generation(session: Session) -> Call:
    Session.objects.filter(pk=session.pk).update(current_generation=F("current_generation") + 1)
    session.refresh_from_db()
    return cast(Call, CallFactory(session=session, generation=session.current_generation))


def test_turns_are_stored_in_conversation_order_a_step_apart(call: Call) -> None:
    turns = turns_write(
        call=call,
        ops=[
            user("item_a", None),
            TurnUpsert(
                item_id="item_b",
                role="assistant",
                previous_item_id="item_a",
                text="Hello",
                status="completed",
            ),
        ],
    )

    assert [(t.item_id, t.position) for t in turns] == [
        ("item_a", POSITION_STEP),
        ("item_b", 2 * POSITION_STEP),
    ]
    stored = TranscriptTurn.objects.get(item_id="item_b")
    assert (stored.role, stored.text, stored.status, stored.previous_item_id, stored.call_id) == (
        "assistant",
        "Hello",
        "completed",
        "item_a",
        call.pk,
    )
    assert stored.completed_at is not None


def test_worker_only_ops_are_ignored(call: Call) -> None:
    ops: list[Op] = [
        TurnDelta(item_id="item_a", role="user", delta="h", text="h"),
        ItemMissing("item_z"),
        CallEnded(reason="session_expired", message="over"),
    ]

    assert turns_write(call=call, ops=ops) == []
    assert TranscriptTurn.objects.count() == 0


def test_a_new_calls_first_item_goes_after_the_sessions_last_turn(call: Call) -> None:
    turns_write(call=call, ops=[user("item_a", None), user("item_b", "item_a")])
    call2 = new_generation(call.session)

    turns_write(
        call=call2,
        ops=[user("item_c", None), user("item_d", "item_unknown_to_db"), user("item_e", "item_c")],
    )

    assert positions(call.session) == [
        ("item_a", 1024),
        ("item_b", 2048),
        ("item_c", 3072),
        ("item_e", 3584),
        ("item_d", 4096),
    ]
    assert TranscriptTurn.objects.get(item_id="item_c").call_id == call2.pk


def test_an_item_placed_between_two_gets_the_midpoint(call: Call) -> None:
    turns_write(call=call, ops=[user("item_a", None), user("item_d", "item_a")])

    turns = turns_write(call=call, ops=[user("item_c", "item_a", next_item_id="item_d")])

    assert [(t.item_id, t.position) for t in turns] == [("item_c", 1536)]
    assert [i for i, _ in positions(call.session)] == ["item_a", "item_c", "item_d"]


def test_an_item_with_only_a_successor_goes_right_before_it(call: Call) -> None:
    turns_write(call=call, ops=[user("item_d", None)])

    turns_write(call=call, ops=[user("item_c", None, next_item_id="item_d")])
    turns_write(call=call, ops=[user("item_b", None, next_item_id="item_c")])

    assert positions(call.session) == [("item_b", 256), ("item_c", 512), ("item_d", 1024)]


def test_positions_are_renumbered_when_there_is_no_room(call: Call) -> None:
    session = call.session
    TranscriptTurnFactory(session=session, item_id="item_a", position=1000)
    TranscriptTurnFactory(session=session, item_id="item_b", position=1001)
    TranscriptTurnFactory(session=session, item_id="item_z", position=5000)
    profile = cast(Profile, ProfileFactory(session=session, last_position=1001, turn_count=2))

    turns = turns_write(
        call=call,
        ops=[user("item_x", "item_a"), user("item_y", "item_x"), user("item_q", "item_z")],
    )

    assert positions(session) == [
        ("item_a", 1024),
        ("item_x", 1536),
        ("item_y", 1792),
        ("item_b", 2048),
        ("item_z", 3072),
        ("item_q", 4096),
    ]
    # The returned turns carry their final positions; the profile still points at item_b.
    assert [(t.item_id, t.position) for t in turns] == [
        ("item_x", 1536),
        ("item_y", 1792),
        ("item_q", 4096),
    ]
    profile.refresh_from_db()
    assert profile.last_position == 2048


def test_applying_the_same_ops_twice_changes_nothing(call: Call) -> None:
    ops = [
        user("item_a", None),
        TurnUpsert(
            item_id="item_f",
            role="tool_call",
            previous_item_id="item_a",
            status="completed",
            name="get_weather",
            arguments='{"city":"London"}',
            tool_call_id="call_1",
        ),
        user("item_u", "item_f", text=None, status="failed", status_reason="transcription failed"),
    ]
    turns_write(call=call, ops=ops)
    before = snapshot(call.session)

    again = turns_write(call=call, ops=ops)

    assert again == []
    assert snapshot(call.session) == before


def test_an_update_changes_the_row_and_completes_it(call: Call) -> None:
    turns_write(call=call, ops=[user("item_u", None, text=None, status="in_progress")])
    assert TranscriptTurn.objects.get(item_id="item_u").completed_at is None

    turns = turns_write(call=call, ops=[user("item_u", None, text="Hello, Marcelo.")])

    stored = TranscriptTurn.objects.get(item_id="item_u")
    assert [t.pk for t in turns] == [stored.pk]
    assert (stored.text, stored.status, stored.position) == ("Hello, Marcelo.", "completed", 1024)
    assert stored.completed_at is not None


def test_a_superseded_call_is_fenced_and_writes_nothing(call: Call) -> None:
    turns_write(call=call, ops=[user("item_a", None, text=None, status="in_progress")])
    before = snapshot(call.session)
    new_generation(call.session)

    with pytest.raises(Fenced):
        turns_write(call=call, ops=[user("item_a", None, text="late"), user("item_b", "item_a")])

    assert snapshot(call.session) == before


def test_an_ended_call_is_fenced_and_writes_nothing(call: Call) -> None:
    Call.objects.filter(pk=call.pk).update(
        ended_at=call.registered_at, end_reason=Call.EndReason.HANGUP
    )

    with pytest.raises(Fenced):
        turns_write(call=call, ops=[user("item_a", None)])

    assert TranscriptTurn.objects.count() == 0


def test_a_closed_session_is_fenced(call: Call) -> None:
    Session.objects.filter(pk=call.session_id).update(
        status=Session.Status.CLOSED, closed_at=call.registered_at
    )

    with pytest.raises(Fenced):
        turns_write(call=call, ops=[user("item_a", None)])

    assert TranscriptTurn.objects.count() == 0


def test_state_load_seeds_the_capture_from_stored_turns(call: Call) -> None:
    Session.objects.filter(pk=call.session_id).update(transcription_enabled=False)
    turns_write(
        call=call,
        ops=[user("item_a", None), user("item_b", "item_a", text=None, status="in_progress")],
    )

    state = state_load(call=call)

    assert state.order == ["item_a", "item_b"]
    assert state.turn("item_b") == user("item_b", "item_a", text=None, status="in_progress")
    assert state.transcription_expected is False


def test_a_batch_costs_a_bounded_number_of_queries(
    call: Call, django_assert_max_num_queries: Any
) -> None:
    turns_write(call=call, ops=[user("item_0", None)])
    ops = [user(f"item_{i}", f"item_{i - 1}") for i in range(1, 21)]

    # fence + the referenced rows + the last positions + one upsert for all turns (+ the
    # transaction's and the upsert's savepoints and releases), however many turns.
    with django_assert_max_num_queries(8):
        turns_write(call=call, ops=ops)

    updates = [user(f"item_{i}", f"item_{i - 1}", text="changed") for i in range(1, 21)]
    with django_assert_max_num_queries(8):
        turns_write(call=call, ops=updates)
    assert set(
        TranscriptTurn.objects.filter(item_id__in=[op.item_id for op in updates]).values_list(
            "text", flat=True
        )
    ) == {"changed"}


def test_a_batch_of_many_calls_costs_the_queries_of_one(
    django_assert_max_num_queries: Any,
) -> None:
    calls = [live_call() for _ in range(30)]
    writes: list[tuple[Call, list[Op]]] = [
        (c, [user(f"item_{i}_a", None), user(f"item_{i}_b", f"item_{i}_a", status="in_progress")])
        for i, c in enumerate(calls)
    ]

    with django_assert_max_num_queries(8):
        outcomes = batch_run_sync(writes=writes)

    assert [[(t.item_id, t.position) for t in cast(list, o)] for o in outcomes] == [
        [(f"item_{i}_a", POSITION_STEP), (f"item_{i}_b", 2 * POSITION_STEP)] for i in range(30)
    ]
    for i, c in enumerate(calls):
        assert positions(c.session) == [
            (f"item_{i}_a", POSITION_STEP),
            (f"item_{i}_b", 2 * POSITION_STEP),
        ]
    stored = TranscriptTurn.objects.get(item_id="item_0_b")
    assert (stored.status, stored.completed_at, stored.call_id) == (
        "in_progress",
        None,
        calls[0].pk,
    )
    assert TranscriptTurn.objects.get(item_id="item_0_a").completed_at is not None


def test_a_fenced_call_in_a_batch_writes_nothing_and_the_others_do(call: Call) -> None:
    superseded = live_call()
    new_generation(superseded.session)
    ended = live_call()
    Call.objects.filter(pk=ended.pk).update(ended_at=timezone.now(), end_reason="hangup")

    outcomes = batch_run_sync(
        writes=[
            (superseded, [user("item_s", None)]),
            (call, [user("item_a", None)]),
            (ended, [user("item_e", None)]),
        ]
    )

    assert [type(o).__name__ for o in outcomes] == ["Fenced", "list", "Fenced"]
    assert list(TranscriptTurn.objects.values_list("item_id", flat=True)) == ["item_a"]


def test_a_refused_call_in_a_batch_does_not_spoil_the_others(call: Call) -> None:
    other = live_call()

    # A failed turn must say why (turn_failed_has_reason): the database refuses this record.
    outcomes = batch_run_sync(
        writes=[
            (other, [user("item_x", None), user("item_y", "item_x", status="failed")]),
            (call, [user("item_a", None)]),
        ]
    )

    # The refused record costs only itself: its call's other record and the other call stand.
    assert [t.item_id for t in cast(list, outcomes[0])] == ["item_x"]
    assert [t.item_id for t in cast(list, outcomes[1])] == ["item_a"]
    assert sorted(TranscriptTurn.objects.values_list("item_id", flat=True)) == ["item_a", "item_x"]


def test_a_recovered_item_in_a_batch_is_placed_between_and_the_others_append(call: Call) -> None:
    other = live_call()
    turns_write(call=call, ops=[user("item_a", None), user("item_d", "item_a")])

    outcomes = batch_run_sync(
        writes=[
            (call, [user("item_c", "item_a", next_item_id="item_d"), user("item_e", "item_d")]),
            (other, [user("item_x", None)]),
        ]
    )

    assert [[t.item_id for t in cast(list, o)] for o in outcomes] == [
        ["item_c", "item_e"],
        ["item_x"],
    ]
    assert positions(call.session) == [
        ("item_a", POSITION_STEP),
        ("item_c", POSITION_STEP + POSITION_STEP // 2),
        ("item_d", 2 * POSITION_STEP),
        ("item_e", 3 * POSITION_STEP),
    ]
    assert positions(other.session) == [("item_x", POSITION_STEP)]


def _writers_waiting_on_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


@pytest.mark.django_db(transaction=True)
def test_a_write_racing_a_generation_bump_waits_for_it_and_is_fenced() -> None:
    session = cast(Session, SessionFactory(current_generation=1))
    call = cast(Call, CallFactory(session=session, generation=1))
    bumped, release = threading.Event(), threading.Event()
    outcome: list[str] = []

    def bump() -> None:
        try:
            with transaction.atomic():
                Session.objects.filter(pk=session.pk).update(
                    current_generation=F("current_generation") + 1
                )
                bumped.set()
                release.wait(10)
        finally:
            connection.close()

    def write() -> None:
        try:
            turns_write(call=call, ops=[user("item_a", None)])
            outcome.append("written")
        except Fenced:
            outcome.append("fenced")
        finally:
            connection.close()

    bumper = threading.Thread(target=bump)
    bumper.start()
    assert bumped.wait(10)
    writer = threading.Thread(target=write)
    writer.start()
    wait_for(
        _writers_waiting_on_a_lock,
        timeout=10,
        interval=0.01,
        what="the write to queue behind the bump",
    )
    assert outcome == []  # blocked on the session row, not decided yet

    release.set()
    bumper.join(10)
    writer.join(10)

    assert outcome == ["fenced"]
    assert TranscriptTurn.objects.count() == 0


# --- Against the emulator: a live event stream, a dropped socket, recovery ------------------


def _pump(
    ws: websocket.WebSocket, state: CaptureState, call: Call, done: Callable[[], bool]
) -> None:
    """Feed frames through capture + writer (answering ItemMissing) until `done()`, bounded."""
    deadline = time.monotonic() + 15
    while not done():
        remaining = deadline - time.monotonic()
        assert remaining > 0, "the transcript never reached the expected state"
        ws.settimeout(remaining)
        ops = capture_frame(state, ws.recv())
        turns_write(call=call, ops=ops)
        for op in ops:
            if isinstance(op, ItemMissing):
                ws.send(json.dumps(item_retrieve_event(op.item_id)))


def _stored(session: Session) -> list[tuple[str, str | None, str]]:
    return list(
        TranscriptTurn.objects.filter(session=session)
        .order_by("position")
        .values_list("role", "text", "status")
    )


def _connect(server: EmulatorServer, call_id: str, secret: str) -> websocket.WebSocket:
    return websocket.create_connection(
        f"{server.ws_base}/realtime?call_id={call_id}",
        header=[f"Authorization: Bearer {secret}"],
        timeout=10,
    )


def test_an_emulator_call_is_captured_and_a_gap_is_recovered_in_place(
    upstream: EmulatorServer,
) -> None:
    synthetic = upstream.control(
        "POST", "/_emulator/synthetic-calls", {"count": 1, "turns": 0, "start": "now"}
    )["calls"][0]
    call_id, secret = synthetic["call_id"], synthetic["client_secret"]
    session = cast(Session, SessionFactory(current_generation=1))
    call = cast(Call, CallFactory(session=session, generation=1, call_id=call_id))
    ws = _connect(upstream, call_id, secret)
    state = state_load(call=call)
    try:
        upstream.control("POST", f"/_emulator/calls/{call_id}/user-text", {"text": "Hello there"})
        _pump(
            ws,
            state,
            call,
            lambda: len(_stored(session)) == 2 and _stored(session)[1][2] == "completed",
        )
        upstream.control(
            "POST", f"/_emulator/calls/{call_id}/user-audio", {"transcript": "Spoken words"}
        )
        _pump(ws, state, call, lambda: [s for _, _, s in _stored(session)] == ["completed"] * 4)
    finally:
        ws.close()

    # The socket drops; a turn happens while no sideband listens.
    upstream.control("POST", f"/_emulator/calls/{call_id}/drop-sidebands", {"block": True})
    upstream.control("POST", f"/_emulator/calls/{call_id}/user-text", {"text": "During the gap"})

    def gap_turn_answered() -> list[dict[str, Any]] | None:
        items = upstream.control("GET", f"/_emulator/calls/{call_id}")["items"]
        return items if len(items) == 6 and items[-1].get("status") == "completed" else None

    items = wait_for(
        gap_turn_answered, timeout=15, interval=0.02, what="the emulator to answer the gap turn"
    )
    upstream.control("POST", f"/_emulator/calls/{call_id}/unblock-sidebands")

    # A reconnect starts from what Postgres has; the next event references the missed item.
    ws = _connect(upstream, call_id, secret)
    state = state_load(call=call)
    try:
        upstream.control("POST", f"/_emulator/calls/{call_id}/user-text", {"text": "After the gap"})
        _pump(
            ws,
            state,
            call,
            lambda: len(_stored(session)) == 7 and _stored(session)[6][2] == "completed",
        )
    finally:
        ws.close()

    assert _stored(session) == [
        ("user", "Hello there", "completed"),
        ("assistant", 'You said: "Hello there".', "completed"),
        ("user", "Spoken words", "completed"),
        ("assistant", 'You said: "Spoken words".', "completed"),
        # Recovered with conversation.item.retrieve; the GA event does not name its
        # predecessor, so the gap's user item (never referenced) cannot be found.
        ("assistant", 'You said: "During the gap".', "completed"),
        ("user", "After the gap", "completed"),
        ("assistant", 'You said: "After the gap".', "completed"),
    ]
    assert state.recovered_items == 1
    emulator_ids = [item["id"] for item in items]
    stored_ids = list(
        TranscriptTurn.objects.filter(session=session)
        .order_by("position")
        .values_list("item_id", flat=True)
    )
    assert stored_ids[:5] == [emulator_ids[i] for i in (0, 1, 2, 3, 5)]


def test_returned_turns_carry_their_call_for_the_live_push(
    call: Call, django_assert_num_queries: Any
) -> None:
    # The worker pushes them from its event loop, where a lazy query is not allowed.
    turns_write(call=call, ops=[user("item_a", None), user("item_d", "item_a")])
    batched = turns_write(call=call, ops=[user("item_d", "item_a", text="edited")])
    # A recovered item between two turns takes the turn-by-turn path.
    one_by_one = turns_write(
        call=call,
        ops=[
            user("item_c", "item_a", next_item_id="item_d"),
            user("item_a", None, text="edited"),
        ],
    )

    with django_assert_num_queries(0):
        call_ids = [turn.call.call_id for turn in batched + one_by_one if turn.call is not None]
    assert call_ids == [call.call_id] * 3
