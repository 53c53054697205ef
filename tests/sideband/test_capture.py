"""The pure capture: Realtime server events -> transcript operations.

Fixtures are hand-written events in the shapes of the recorded corpus (GA names unless a test
says beta); no I/O, no database.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sideband.capture import (
    CallEnded,
    CaptureState,
    ItemMissing,
    Op,
    TurnDelta,
    TurnUpsert,
    capture_event,
    capture_frame,
)

_ids = itertools.count(1)


def ev(type_: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_, "event_id": f"event_{next(_ids):05d}", **fields}


def user_text(item_id: str, text: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_text", "text": text}],
    }


def user_audio(item_id: str, transcript: str | None = None) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_audio", "transcript": transcript}],
    }


def assistant(
    item_id: str, transcript: str | None = None, *, status: str = "completed"
) -> dict[str, Any]:
    content = [] if transcript is None else [{"type": "output_audio", "transcript": transcript}]
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def added(item: dict[str, Any], prev: str | None) -> dict[str, Any]:
    return ev("conversation.item.added", previous_item_id=prev, item=item)


def done(item: dict[str, Any], prev: str | None = None) -> dict[str, Any]:
    return ev("conversation.item.done", previous_item_id=prev, item=item)


def run(state: CaptureState, events: list[dict[str, Any]]) -> list[Op]:
    ops: list[Op] = []
    for event in events:
        ops.extend(capture_event(state, event))
    return ops


def upserts(ops: list[Op]) -> list[TurnUpsert]:
    return [op for op in ops if isinstance(op, TurnUpsert)]


def texts(state: CaptureState) -> list[tuple[str, str, str | None, str]]:
    return [(t.item_id, t.role, t.text, t.status) for t in state.turns()]


def answer(item_id: str, prev: str, text: str, response_id: str = "resp_1") -> list[dict]:
    """An in-band spoken answer, as the corpus shows it."""
    return [
        ev(
            "response.created",
            response={"id": response_id, "status": "in_progress", "conversation_id": "conv_1"},
        ),
        ev(
            "response.output_item.added",
            response_id=response_id,
            output_index=0,
            item=assistant(item_id, status="in_progress"),
        ),
        added(assistant(item_id, status="in_progress"), prev),
        ev(
            "response.output_audio_transcript.delta",
            response_id=response_id,
            item_id=item_id,
            content_index=0,
            delta=text[:3],
        ),
        ev(
            "response.output_audio_transcript.done",
            response_id=response_id,
            item_id=item_id,
            content_index=0,
            transcript=text,
        ),
        done(assistant(item_id, text), prev=None),
        ev(
            "response.done",
            response={
                "id": response_id,
                "status": "completed",
                "conversation_id": "conv_1",
                "output": [assistant(item_id, text)],
            },
        ),
    ]


# --- Order ------------------------------------------------------------------------------


def test_order_follows_previous_item_id_not_arrival_order() -> None:
    state = CaptureState()

    ops = run(
        state,
        [
            added(user_text("item_a", "first"), None),
            added(user_text("item_c", "third"), "item_a"),
            # Inserted after item_a, so before item_c although it arrives last.
            added(user_text("item_b", "second"), "item_a"),
        ],
    )

    assert [t.item_id for t in state.turns()] == ["item_a", "item_b", "item_c"]
    assert [(u.item_id, u.previous_item_id) for u in upserts(ops)] == [
        ("item_a", None),
        ("item_c", "item_a"),
        ("item_b", "item_a"),
    ]


def test_done_with_null_previous_item_id_keeps_the_place_from_added() -> None:
    state = CaptureState()
    run(state, [added(user_text("item_a", "hi"), None), *answer("item_b", "item_a", "Hello.")])

    ops = run(state, [done(user_text("item_c", "again"), prev=None)])

    # An unknown item on .done with null previous goes last; a known one never moves.
    assert [t.item_id for t in state.turns()] == ["item_a", "item_b", "item_c"]
    assert upserts(ops)[0].previous_item_id == "item_b"
    assert run(state, [done(assistant("item_b", "Hello."), prev=None)]) == []
    assert [t.item_id for t in state.turns()] == ["item_a", "item_b", "item_c"]


def test_committed_audio_places_the_user_turn_before_its_item_is_added() -> None:
    state = CaptureState()
    run(state, [added(user_text("item_a", "hi"), None), *answer("item_b", "item_a", "Hello.")])

    ops = run(state, [ev("input_audio_buffer.committed", previous_item_id="item_b", item_id="u2")])

    assert upserts(ops) == [
        TurnUpsert(
            item_id="u2",
            role="user",
            previous_item_id="item_b",
            status="in_progress",
            input_mode="audio",
        )
    ]
    assert [t.item_id for t in state.turns()] == ["item_a", "item_b", "u2"]


# --- User text ----------------------------------------------------------------------------


def test_late_transcription_after_the_assistant_answered_fills_the_user_turn() -> None:
    state = CaptureState()
    run(
        state,
        [
            ev("input_audio_buffer.committed", previous_item_id=None, item_id="item_u"),
            added(user_audio("item_u"), None),
            done(user_audio("item_u"), None),
            *answer("item_a", "item_u", "Hi Marcelo!"),
        ],
    )
    assert texts(state) == [
        ("item_u", "user", None, "in_progress"),
        ("item_a", "assistant", "Hi Marcelo!", "completed"),
    ]

    ops = run(
        state,
        [
            ev(
                "conversation.item.input_audio_transcription.completed",
                item_id="item_u",
                content_index=0,
                transcript="Hello, my name is Marcelo.",
            )
        ],
    )

    assert upserts(ops) == [
        TurnUpsert(
            item_id="item_u",
            role="user",
            previous_item_id=None,
            text="Hello, my name is Marcelo.",
            status="completed",
            input_mode="audio",
        )
    ]
    assert texts(state) == [
        ("item_u", "user", "Hello, my name is Marcelo.", "completed"),
        ("item_a", "assistant", "Hi Marcelo!", "completed"),
    ]


def test_transcription_arriving_before_its_item_is_applied_when_the_item_arrives() -> None:
    state = CaptureState()

    early = run(
        state,
        [
            ev(
                "conversation.item.input_audio_transcription.completed",
                item_id="item_u",
                content_index=0,
                transcript="Early words.",
            )
        ],
    )
    ops = run(state, [added(user_audio("item_u"), None)])

    assert early == []
    assert texts(state) == [("item_u", "user", "Early words.", "completed")]
    assert len(upserts(ops)) == 1


def test_failed_transcription_is_recorded_as_failed() -> None:
    state = CaptureState()
    run(state, [added(user_audio("item_u"), None)])

    ops = run(
        state,
        [
            ev(
                "conversation.item.input_audio_transcription.failed",
                item_id="item_u",
                content_index=0,
                error={
                    "type": "server_error",
                    "code": "DeploymentNotFound",
                    "message": "Input transcription failed for item 'item_u'.",
                    "param": None,
                },
            ),
            *answer("item_a", "item_u", "Hi!"),
        ],
    )

    assert upserts(ops)[0] == TurnUpsert(
        item_id="item_u",
        role="user",
        previous_item_id=None,
        text=None,
        status="failed",
        status_reason="transcription failed: DeploymentNotFound",
        input_mode="audio",
    )
    assert texts(state) == [
        ("item_u", "user", None, "failed"),
        ("item_a", "assistant", "Hi!", "completed"),
    ]


def test_user_audio_is_completed_without_text_when_the_session_does_not_transcribe() -> None:
    state = CaptureState()

    run(
        state,
        [
            ev(
                "session.updated",
                session={"type": "realtime", "audio": {"input": {"transcription": None}}},
            ),
            added(user_audio("item_u"), None),
        ],
    )

    assert state.transcription_expected is False
    assert texts(state) == [("item_u", "user", None, "completed")]


# --- Assistant text -----------------------------------------------------------------------


def test_assistant_text_comes_from_output_text_done() -> None:
    state = CaptureState()
    run(state, [added(user_text("item_u", "Name?"), None)])

    ops = run(
        state,
        [
            added(assistant("item_a", status="in_progress"), "item_u"),
            ev("response.output_text.delta", response_id="r", item_id="item_a", delta="Alice"),
            ev(
                "response.output_text.done",
                response_id="r",
                item_id="item_a",
                content_index=0,
                text="Alice.",
            ),
        ],
    )

    assert [(u.text, u.status) for u in upserts(ops)] == [
        (None, "in_progress"),
        ("Alice.", "in_progress"),
    ]
    assert texts(state)[1] == ("item_a", "assistant", "Alice.", "in_progress")


def test_interrupted_answer_keeps_generated_text_and_is_marked_incomplete() -> None:
    state = CaptureState()
    run(state, [added(user_audio("item_u", "Tell me a story."), None)])
    partial = {"type": "output_audio", "transcript": "Once upon a time"}

    run(
        state,
        [
            ev(
                "response.created",
                response={"id": "resp_1", "status": "in_progress", "conversation_id": "conv_1"},
            ),
            added(assistant("item_a", status="in_progress"), "item_u"),
            ev(
                "response.output_audio_transcript.delta",
                response_id="resp_1",
                item_id="item_a",
                delta="Once upon a time",
            ),
            done({**assistant("item_a", status="incomplete"), "content": [partial]}),
            ev(
                "response.done",
                response={
                    "id": "resp_1",
                    "status": "cancelled",
                    "status_details": {"type": "cancelled", "reason": "turn_detected"},
                    "conversation_id": "conv_1",
                    "output": [{**assistant("item_a", status="incomplete"), "content": [partial]}],
                },
            ),
        ],
    )
    ops = run(
        state,
        [
            ev("conversation.item.truncated", item_id="item_a", content_index=0, audio_end_ms=1200),
            # Truncation removes the server-side transcript: a later copy of the item is empty.
            ev(
                "conversation.item.retrieved",
                item={
                    **assistant("item_a", status="incomplete"),
                    "content": [{"type": "output_audio", "transcript": ""}],
                },
            ),
        ],
    )

    turn = state.turn("item_a")
    assert turn is not None
    assert (turn.text, turn.status) == ("Once upon a time", "incomplete")
    assert turn.status_reason == "response cancelled: turn_detected"
    assert upserts(ops) == []  # already incomplete with this text: nothing new to write


def test_truncation_of_a_completed_answer_marks_it_incomplete_keeping_its_text() -> None:
    state = CaptureState()
    run(
        state,
        [
            added(user_text("item_u", "Hi"), None),
            *answer("item_a", "item_u", "Hello there, friend."),
        ],
    )

    ops = run(
        state,
        [ev("conversation.item.truncated", item_id="item_a", content_index=0, audio_end_ms=640)],
    )

    assert upserts(ops) == [
        TurnUpsert(
            item_id="item_a",
            role="assistant",
            previous_item_id="item_u",
            text="Hello there, friend.",
            status="incomplete",
            status_reason="truncated at 640 ms",
        )
    ]


def test_out_of_band_response_items_are_not_turns() -> None:
    state = CaptureState()
    run(state, [added(user_text("item_u", "Hi"), None)])
    oob_item = assistant("item_x", status="in_progress")

    ops = run(
        state,
        [
            ev(
                "response.created",
                response={"id": "resp_oob", "status": "in_progress", "conversation_id": None},
            ),
            ev("response.output_item.added", response_id="resp_oob", output_index=0, item=oob_item),
            ev(
                "response.output_text.delta",
                response_id="resp_oob",
                item_id="item_x",
                delta="Summary",
            ),
            ev(
                "response.output_text.done",
                response_id="resp_oob",
                item_id="item_x",
                content_index=0,
                text="Summary.",
            ),
            ev(
                "response.output_item.done",
                response_id="resp_oob",
                output_index=0,
                item=assistant("item_x", "Summary."),
            ),
            ev(
                "response.done",
                response={
                    "id": "resp_oob",
                    "status": "completed",
                    "conversation_id": None,
                    "output": [assistant("item_x", "Summary.")],
                },
            ),
        ],
    )

    assert ops == []
    assert [t.item_id for t in state.turns()] == ["item_u"]
    assert state.unknown_event_counts == {}


def test_function_call_and_output_are_turns_of_their_own_kind() -> None:
    state = CaptureState()
    call = {
        "id": "item_f",
        "type": "function_call",
        "status": "in_progress",
        "name": "get_weather",
        "call_id": "call_1",
        "arguments": "",
    }
    run(state, [added(user_text("item_u", "Weather?"), None)])

    run(
        state,
        [
            added(call, "item_u"),
            ev(
                "response.function_call_arguments.delta",
                response_id="r",
                item_id="item_f",
                delta='{"city"',
            ),
            ev(
                "response.function_call_arguments.done",
                response_id="r",
                item_id="item_f",
                call_id="call_1",
                name="get_weather",
                arguments='{"city":"London"}',
            ),
            done({**call, "status": "completed", "arguments": '{"city":"London"}'}, prev="item_u"),
            added(
                {
                    "id": "item_o",
                    "type": "function_call_output",
                    "call_id": "call_1",
                    "output": "Foggy.",
                },
                "item_f",
            ),
        ],
    )

    assert state.turns()[1:] == [
        TurnUpsert(
            item_id="item_f",
            role="tool_call",
            previous_item_id="item_u",
            status="completed",
            name="get_weather",
            arguments='{"city":"London"}',
            tool_call_id="call_1",
        ),
        TurnUpsert(
            item_id="item_o",
            role="tool_output",
            previous_item_id="item_f",
            status="completed",
            tool_call_id="call_1",
            output="Foggy.",
        ),
    ]


def test_items_that_are_not_turns_are_skipped_but_keep_the_chain() -> None:
    state = CaptureState()
    system = {
        "id": "item_s",
        "type": "message",
        "status": "completed",
        "role": "system",
        "content": [{"type": "input_text", "text": "Be brief."}],
    }

    ops = run(
        state,
        [
            added(user_text("item_u", "Hi"), None),
            added(system, "item_u"),
            added(user_text("item_v", "Again"), "item_s"),
        ],
    )

    assert [t.item_id for t in state.turns()] == ["item_u", "item_v"]
    assert not any(isinstance(op, ItemMissing) for op in ops)
    assert upserts(ops)[-1].previous_item_id == "item_u"


def test_beta_event_names_are_understood() -> None:
    state = CaptureState()
    beta_user = {
        "id": "item_u",
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_audio", "transcript": None}],
    }
    beta_assistant = {
        "id": "item_a",
        "type": "message",
        "status": "in_progress",
        "role": "assistant",
        "content": [],
    }
    final = {
        **beta_assistant,
        "status": "completed",
        "content": [{"type": "audio", "transcript": "Hello."}],
    }

    ops = run(
        state,
        [
            ev(
                "session.created",
                session={"id": "sess_1", "input_audio_transcription": {"model": "whisper-1"}},
            ),
            ev("conversation.item.created", previous_item_id=None, item=beta_user),
            ev("response.created", response={"id": "resp_1", "status": "in_progress"}),
            ev(
                "response.output_item.added",
                response_id="resp_1",
                output_index=0,
                item=beta_assistant,
            ),
            ev("conversation.item.created", previous_item_id="item_u", item=beta_assistant),
            ev(
                "response.audio_transcript.delta",
                response_id="resp_1",
                item_id="item_a",
                delta="Hel",
            ),
            ev("response.audio.delta", response_id="resp_1", item_id="item_a", delta="AAAA"),
            ev(
                "response.audio_transcript.done",
                response_id="resp_1",
                item_id="item_a",
                content_index=0,
                transcript="Hello.",
            ),
            ev("response.output_item.done", response_id="resp_1", output_index=0, item=final),
            ev(
                "conversation.item.input_audio_transcription.completed",
                item_id="item_u",
                content_index=0,
                transcript="Hi there",
            ),
        ],
    )

    assert texts(state) == [
        ("item_u", "user", "Hi there", "completed"),
        ("item_a", "assistant", "Hello.", "completed"),
    ]
    assert TurnDelta(item_id="item_a", role="assistant", delta="Hel", text="Hel") in ops
    assert state.unknown_event_counts == {}


def test_beta_text_done_sets_assistant_text() -> None:
    state = CaptureState()
    run(
        state,
        [ev("conversation.item.created", previous_item_id=None, item=user_text("item_u", "Hi"))],
    )
    run(
        state,
        [
            ev(
                "conversation.item.created",
                previous_item_id="item_u",
                item={
                    "id": "item_a",
                    "type": "message",
                    "status": "in_progress",
                    "role": "assistant",
                    "content": [],
                },
            )
        ],
    )

    run(
        state,
        [ev("response.text.done", response_id="r", item_id="item_a", content_index=0, text="Hey.")],
    )

    assert texts(state)[1] == ("item_a", "assistant", "Hey.", "in_progress")


# --- Robustness ---------------------------------------------------------------------------


def test_unknown_events_are_counted_and_ignored() -> None:
    state = CaptureState()
    run(state, [added(user_text("item_u", "Hi"), None)])

    ops = run(
        state,
        [
            ev("response.brand_new_thing", x=1),
            ev("response.brand_new_thing"),
            ev("mcp.list_tools.in_progress"),
        ],
    )

    assert ops == []
    assert state.unknown_event_counts == {
        "response.brand_new_thing": 2,
        "mcp.list_tools.in_progress": 1,
    }
    assert [t.item_id for t in state.turns()] == ["item_u"]


def test_malformed_frames_are_logged_without_content_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = CaptureState()
    secret_text = "my card number is 4111"
    frames: list[str | bytes] = [
        '{"type": "conversation.item.added", "item": {"id": "x", "content": "' + secret_text,  # cut
        json.dumps([secret_text]),
        json.dumps({"no_type": secret_text}),
        json.dumps(
            {"type": "conversation.item.added", "previous_item_id": None, "item": secret_text}
        ),
        json.dumps(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": 7,
                "transcript": secret_text,
            }
        ),
        b"\xff\xfe not utf-8",
        "[" * 100_000,  # nesting deeper than the parser's recursion limit
        json.dumps(added(user_text("item_" + "x" * 60, secret_text), None)),  # id too long to store
    ]

    with caplog.at_level(logging.WARNING, logger="sideband.capture"):
        results = [capture_frame(state, frame) for frame in frames]
        after = capture_frame(state, json.dumps(added(user_text("item_u", "still here"), None)))

    assert results == [[]] * 8
    assert state.malformed_frames == 8
    assert secret_text not in caplog.text
    assert len(caplog.records) == 8
    assert [op.item_id for op in upserts(after)] == ["item_u"]


def test_a_seeded_state_emits_only_what_changed() -> None:
    seeded = [
        TurnUpsert(
            item_id="item_u", role="user", previous_item_id=None, text=None, status="in_progress"
        ),
        TurnUpsert(
            item_id="item_a",
            role="assistant",
            previous_item_id="item_u",
            text="Hi!",
            status="completed",
        ),
    ]
    state = CaptureState.seeded(seeded)

    repeated = run(state, [done(assistant("item_a", "Hi!"), prev="item_u")])
    ops = run(
        state,
        [
            ev(
                "conversation.item.input_audio_transcription.completed",
                item_id="item_u",
                content_index=0,
                transcript="Hello",
            )
        ],
    )

    assert repeated == []
    assert upserts(ops) == [
        TurnUpsert(
            item_id="item_u", role="user", previous_item_id=None, text="Hello", status="completed"
        )
    ]


def test_repeated_events_emit_nothing_new() -> None:
    state = CaptureState()
    events = [added(user_text("item_u", "Hi"), None), *answer("item_a", "item_u", "Hello.")]
    run(state, events)

    again = run(state, [e for e in events if not e["type"].endswith(".delta")])

    assert again == []


# --- Gaps: ItemMissing and recovery ---------------------------------------------------


def test_unknown_predecessor_is_reported_and_the_retrieved_item_fills_the_gap() -> None:
    state = CaptureState.seeded(
        [
            TurnUpsert(
                item_id="item_a",
                role="assistant",
                previous_item_id=None,
                text="Hi",
                status="completed",
            )
        ]
    )

    ops = run(state, [added(user_text("item_d", "after the gap"), "item_c")])

    assert ops[0] == ItemMissing("item_c")
    assert upserts(ops)[0].previous_item_id == "item_a"

    recovered = run(
        state, [ev("conversation.item.retrieved", item=user_audio("item_c", "lost words"))]
    )

    assert upserts(recovered) == [
        TurnUpsert(
            item_id="item_c",
            role="user",
            previous_item_id="item_a",
            text="lost words",
            status="completed",
            input_mode="audio",
            next_item_id="item_d",
        )
    ]
    assert [t.item_id for t in state.turns()] == ["item_a", "item_c", "item_d"]
    assert state.recovered_items == 1
    assert state.missing == {}


def test_recovery_walks_back_while_retrieved_items_name_their_predecessor() -> None:
    state = CaptureState.seeded(
        [
            TurnUpsert(
                item_id="item_a", role="user", previous_item_id=None, text="Hi", status="completed"
            )
        ]
    )
    run(state, [added(user_text("item_d", "D"), "item_c")])

    step1 = run(
        state,
        [
            ev(
                "conversation.item.retrieved",
                previous_item_id="item_b",
                item=assistant("item_c", "C"),
            )
        ],
    )
    step2 = run(
        state,
        [
            ev(
                "conversation.item.retrieved",
                previous_item_id="item_a",
                item=user_text("item_b", "B"),
            )
        ],
    )

    assert [op for op in step1 if isinstance(op, ItemMissing)] == [ItemMissing("item_b")]
    assert not any(isinstance(op, ItemMissing) for op in step2)
    assert [t.item_id for t in state.turns()] == ["item_a", "item_b", "item_c", "item_d"]
    assert state.recovered_items == 2


def test_recovery_with_nothing_known_places_the_item_before_the_one_that_referenced_it() -> None:
    state = CaptureState()
    run(state, [*answer("item_a", "item_u", "Hello.")])

    recovered = run(state, [ev("conversation.item.retrieved", item=user_audio("item_u", "Hi"))])

    assert [t.item_id for t in state.turns()] == ["item_u", "item_a"]
    assert upserts(recovered)[0].previous_item_id is None
    assert upserts(recovered)[0].next_item_id == "item_a"


# --- Call end and deltas ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason", "message"),
    [
        (
            "session_expired",
            "session_expired",
            "Your session hit the maximum duration of 60 minutes.",
        ),
        ("invalid_api_key", "secret_expired", "Incorrect API key provided: ek_6***abcd."),
    ],
)
def test_a_terminal_error_ends_the_call(code: str, reason: str, message: str) -> None:
    state = CaptureState()
    error = {
        "type": "invalid_request_error",
        "code": code,
        "message": message,
        "param": None,
        "event_id": None,
    }

    ops = run(state, [ev("error", error=error)])

    assert ops == [CallEnded(reason=reason, message=message)]


def test_a_non_terminal_error_is_not_a_call_end() -> None:
    state = CaptureState()

    ops = run(
        state,
        [
            ev(
                "error",
                error={
                    "type": "invalid_request_error",
                    "code": "item_not_found",
                    "message": "x",
                    "param": None,
                },
            )
        ],
    )

    assert ops == []
    assert state.unknown_event_counts == {}


def test_deltas_become_turn_deltas_with_the_text_so_far() -> None:
    state = CaptureState()
    run(state, [ev("input_audio_buffer.committed", previous_item_id=None, item_id="item_u")])

    ops = run(
        state,
        [
            ev(
                "conversation.item.input_audio_transcription.delta",
                item_id="item_u",
                content_index=0,
                delta="Hello",
            ),
            ev(
                "conversation.item.input_audio_transcription.delta",
                item_id="item_u",
                content_index=0,
                delta=", you",
            ),
            added(assistant("item_a", status="in_progress"), "item_u"),
            ev(
                "response.output_audio_transcript.delta",
                response_id="r",
                item_id="item_a",
                content_index=0,
                delta="Hi",
            ),
            ev(
                "response.output_text.delta",
                response_id="r",
                item_id="item_a",
                content_index=0,
                delta="!",
            ),
        ],
    )

    assert [op for op in ops if isinstance(op, TurnDelta)] == [
        TurnDelta(item_id="item_u", role="user", delta="Hello", text="Hello"),
        TurnDelta(item_id="item_u", role="user", delta=", you", text="Hello, you"),
        TurnDelta(item_id="item_a", role="assistant", delta="Hi", text="Hi"),
        TurnDelta(item_id="item_a", role="assistant", delta="!", text="Hi!"),
    ]


def test_user_turns_are_marked_typed_or_spoken() -> None:
    state = CaptureState()
    run(
        state,
        [
            added(user_text("item_t", "typed"), None),
            *answer("item_a", "item_t", "Hi."),
            added(user_audio("item_s", "spoken"), "item_a"),
        ],
    )

    assert [(t.item_id, t.input_mode) for t in state.turns()] == [
        ("item_t", "text"),
        ("item_a", ""),
        ("item_s", "audio"),
    ]


def test_a_retrieved_item_already_known_is_merged_not_moved() -> None:
    state = CaptureState()
    run(state, [added(user_audio("item_u"), None), *answer("item_a", "item_u", "Hello.")])

    ops = run(state, [ev("conversation.item.retrieved", item=user_audio("item_u", "Found it"))])

    assert upserts(ops) == [
        TurnUpsert(
            item_id="item_u",
            role="user",
            previous_item_id=None,
            text="Found it",
            status="completed",
            input_mode="audio",
        )
    ]
    assert [t.item_id for t in state.turns()] == ["item_u", "item_a"]
    assert state.recovered_items == 0


def test_the_capture_imports_nothing_from_django_or_the_network() -> None:
    root = Path(__file__).resolve().parents[2]
    probe = (
        "import sys, sideband.capture; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'django', 'socket', 'websocket', 'psycopg', 'redis', 'openai'}))"
    )

    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=root,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )

    assert result.stdout.strip() == "[]"


def test_a_frame_only_the_stdlib_json_parser_accepts_is_still_captured() -> None:
    # orjson refuses NaN and lone surrogates; such a frame falls back to json.loads.
    state = CaptureState()
    ops = capture_frame(state, '{"type": "rate_limits.updated", "x": NaN, "y": "\\ud800"}')
    assert ops == []
    assert state.events == 1
    assert state.malformed_frames == 0
    assert state.unknown_event_counts == {}
