"""The capture of the assistant's answers: response.* events (created, output items, text and
audio transcript deltas and .done, function call arguments, done), truncation of an answer
(conversation.item.truncated) and the beta names of these events.

Pure: hand-written events (tests/sideband/capture_events.py), no I/O, no database.
"""

from __future__ import annotations

from sideband.capture import CaptureState, TurnDelta, TurnUpsert
from tests.sideband.capture_events import (
    added,
    answer,
    assistant,
    done,
    ev,
    run,
    texts,
    upserts,
    user_audio,
    user_text,
)

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


# --- Deltas -------------------------------------------------------------------------------


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


# --- Beta names ---------------------------------------------------------------------------


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
