"""The pure Live capture: Live server events -> transcript operations.

Fixtures are hand-written events in the shapes of ../shared/live-corpus/; no I/O, no database.
"""

from __future__ import annotations

import itertools
import json
import typing
from typing import Any

import pytest
from openai.types.live import ConnectServerEvent

from sideband.capture.ops import CallEnded, Op, TurnDelta, TurnUpsert
from sideband.live_capture import (
    LiveCaptureState,
    live_capture_event,
    live_capture_finish,
    live_capture_frame,
)
from sideband.live_capture.handlers import HANDLERS

SID = "live_u1_TESTp3oN5MxHXS4UFdaMdUu5hWajOGp"
_ids = itertools.count(1)


def started(session_id: str = SID, **session: Any) -> dict[str, Any]:
    return {
        "type": "session.started",
        "event_id": f"event_{next(_ids)}",
        "session": {"id": session_id, "status": "active", **session},
    }


def said(speaker: str, delta: str, start_ms: int, end_ms: int, **extra: Any) -> dict[str, Any]:
    kind = "input" if speaker == "user" else "output"
    return {
        "type": f"session.{kind}_transcript.delta",
        "event_id": f"event_{next(_ids)}",
        "delta": delta,
        "start_ms": start_ms,
        "end_ms": end_ms,
        **extra,
    }


def closed(reason: str = "close_requested") -> dict[str, Any]:
    return {
        "type": "session.closed",
        "event_id": f"event_{next(_ids)}",
        "reason": reason,
        "session": {"id": SID},
        "usage": {"seconds": 1.0},
    }


def run(state: LiveCaptureState, *events: dict[str, Any]) -> list[Op]:
    ops: list[Op] = []
    for event in events:
        ops.extend(live_capture_event(state, event))
    return ops


def upserts(ops: list[Op]) -> list[TurnUpsert]:
    return [op for op in ops if isinstance(op, TurnUpsert)]


def texts(state: LiveCaptureState) -> list[tuple[str, str | None, str]]:
    return [(t.role, t.text, t.status) for t in state.turns()]


def test_fragments_group_into_turns_with_ids_from_the_timeline() -> None:
    state = LiveCaptureState()

    ops = run(
        state,
        started(),
        said("user", "Hi", 200, 400),
        said("user", " there", 400, 600),
        said("assistant", " Hello", 1400, 1600),
        closed(),
    )

    assert texts(state) == [
        ("user", "Hi there", "completed"),
        ("assistant", " Hello", "completed"),
    ]
    assert [(t.item_id, t.previous_item_id) for t in state.turns()] == [
        (f"{SID}/u200", None),
        (f"{SID}/a1400", f"{SID}/u200"),
    ]
    assert state.spans == {f"{SID}/u200": (200, 600), f"{SID}/a1400": (1400, 1600)}
    assert ops[-1] == CallEnded(
        reason="session_closed", message="live session closed: close_requested"
    )


def test_a_live_user_turn_is_spoken_and_an_assistant_turn_has_no_input_mode() -> None:
    state = LiveCaptureState()

    run(
        state,
        started(),
        said("user", "Hi", 0, 200),
        said("assistant", " Hello", 900, 1100),
        closed(),
    )

    assert [(t.role, t.input_mode) for t in state.turns()] == [("user", "audio"), ("assistant", "")]


@pytest.mark.parametrize("through", ["event", "frame"])
def test_live_text_passes_the_same_storable_rule_as_realtime(through: str) -> None:
    state = LiveCaptureState()
    hostile = said("user", "a\x00b\ud800c", 0, 200)

    if through == "event":
        run(state, started(), hostile, closed())
    else:
        run(state, started())
        live_capture_frame(state, json.dumps(hostile))
        run(state, closed())

    assert texts(state) == [("user", "a\ufffdb\ufffdc", "completed")]


def test_each_growth_is_a_delta_for_the_page_and_an_in_progress_record() -> None:
    state = LiveCaptureState()

    ops = run(state, started(), said("user", "Hi", 0, 200), said("user", " there", 200, 400))

    assert [op for op in ops if isinstance(op, TurnDelta)] == [
        TurnDelta(item_id=f"{SID}/u0", role="user", delta="Hi", text="Hi"),
        TurnDelta(item_id=f"{SID}/u0", role="user", delta=" there", text="Hi there"),
    ]
    assert [(u.text, u.status) for u in upserts(ops)] == [
        ("Hi", "in_progress"),
        ("Hi there", "in_progress"),
    ]


def test_overlapping_speakers_keep_both_speakers_words_in_order() -> None:
    # An interruption: both speakers' fragments in the same 200 ms windows (as in
    # live_sideband__webrtc_bound_history, 2400-3000 ms).
    state = LiveCaptureState()

    run(
        state,
        started(),
        said("user", "Can you remind me", 600, 2400),
        said("user", " what my", 2400, 2600),
        said("assistant", "You mentioned", 2400, 2600),
        said("user", " name is?", 2600, 3000),
        said("assistant", " your name is Ada.", 2600, 3400),
    )
    live_capture_finish(state)

    assert texts(state) == [
        ("user", "Can you remind me what my name is?", "completed"),
        ("assistant", "You mentioned your name is Ada.", "completed"),
    ]


def test_a_fragment_delivered_twice_counts_once() -> None:
    state = LiveCaptureState()
    fragment = said("user", "Hello", 0, 200)

    run(state, started(), fragment, said("user", " again", 200, 400))
    again = run(state, started(), fragment)  # a re-attach replays what it already sent

    assert texts(state) == [("user", "Hello again", "in_progress")]
    assert again == []


def test_a_reattach_to_the_same_session_continues_its_open_turn() -> None:
    state = LiveCaptureState()

    run(state, started(), said("assistant", "One", 0, 200))
    run(state, started(), said("assistant", " two", 200, 400))
    live_capture_finish(state)

    assert texts(state) == [("assistant", "One two", "completed")]


def test_a_fork_closes_the_previous_sessions_turns_and_starts_new_ids() -> None:
    state = LiveCaptureState()
    fork = "live_u0_FORKp3oMY4pObbROKncJKe6ZbuSvH9r"

    ops = run(
        state,
        started(),
        said("user", "First", 0, 200),
        started(fork, input=[]),
        said("user", "Second", 0, 200),
    )
    ops += live_capture_finish(state)

    assert [(u.item_id, u.status) for u in upserts(ops)] == [
        (f"{SID}/u0", "in_progress"),
        (f"{SID}/u0", "completed"),
        (f"{fork}/u0", "in_progress"),
        (f"{fork}/u0", "completed"),
    ]
    assert state.turns()[1].previous_item_id == f"{SID}/u0"


@pytest.mark.parametrize(
    ("reason", "end"),
    [
        ("close_requested", "session_closed"),
        ("expired", "session_expired"),
        ("content", "session_closed"),
        ("remote_hangup", "hangup"),
        ("connection_lost", "upstream_error"),
    ],
)
def test_session_closed_completes_open_turns_and_ends_the_call(reason: str, end: str) -> None:
    state = LiveCaptureState()

    ops = run(state, started(), said("assistant", "Bye.", 0, 200), closed(reason))

    assert texts(state) == [("assistant", "Bye.", "completed")]
    assert ops[-1] == CallEnded(reason=end, message=f"live session closed: {reason}")
    assert state.closed_reason == reason
    assert run(state, said("assistant", " Late", 400, 600)) == []


def test_a_brief_overlapping_acknowledgment_is_dropped_as_the_sdk_does() -> None:
    state = LiveCaptureState()

    run(
        state,
        started(),
        said("user", "So I was thinking about the trip", 0, 2000),
        said("assistant", " Mhm.", 2000, 2200),
        said("user", " and the dates", 2200, 3000),
    )
    live_capture_finish(state)

    assert texts(state) == [("user", "So I was thinking about the trip and the dates", "completed")]


def test_the_seeded_input_history_is_not_captured_again() -> None:
    state = LiveCaptureState()
    history = [{"role": "user", "content": [{"type": "input_text", "text": "My name is Ada."}]}]

    ops = run(state, started(input=history))

    assert ops == []
    assert state.turns() == []


def test_a_timestamp_reset_never_reuses_an_id() -> None:
    state = LiveCaptureState()

    run(
        state,
        started(),
        said("user", "Before", 0, 200),
        said("user", " that", 200, 400),
        said("user", "After", 0, 200),
    )
    live_capture_finish(state)

    assert [(t.item_id, t.text) for t in state.turns()] == [
        (f"{SID}/u0", "Before that"),
        (f"{SID}/u0~1", "After"),
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"event_id": None},
        {"start_ms": 400, "end_ms": 200},
        {"start_ms": -1},
        {"start_ms": "0"},
        {"delta": 5},
    ],
)
def test_a_malformed_fragment_is_skipped_and_changes_nothing(bad: dict[str, Any]) -> None:
    state = LiveCaptureState()
    run(state, started(), said("user", "Hi", 0, 200))
    before = texts(state)

    ops = run(state, {**said("user", " there", 200, 400), **bad})

    assert ops == []
    assert state.malformed_frames == 1
    assert texts(state) == before


def test_frames_that_are_not_events_are_counted_and_unknown_types_tallied() -> None:
    state = LiveCaptureState()

    ops = [
        *live_capture_frame(state, "{not json"),
        *live_capture_frame(state, "[1]"),
        *live_capture_frame(state, json.dumps({"type": "session.future"})),
    ]

    assert ops == []
    assert state.malformed_frames == 2
    assert state.unknown_event_counts == {"session.future": 1}


def test_the_handler_table_knows_every_sideband_server_event_of_the_sdk() -> None:
    def event_types(union: Any) -> set[str]:
        found: set[str] = set()
        for member in typing.get_args(union):
            if hasattr(member, "model_fields"):
                found.update(typing.get_args(member.model_fields["type"].annotation))
            else:
                found |= event_types(member)
        return found

    assert event_types(ConnectServerEvent) == set(HANDLERS)
