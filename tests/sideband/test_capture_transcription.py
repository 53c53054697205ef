"""The capture of the user's speech: input_audio_buffer.committed and
conversation.item.input_audio_transcription.completed/.failed (its .delta: test_capture_responses).

Pure: hand-written events (tests/sideband/capture_events.py), no I/O, no database.
"""

from __future__ import annotations

from sideband.capture import CaptureState, TurnUpsert
from tests.sideband.capture_events import (
    added,
    answer,
    done,
    ev,
    run,
    texts,
    upserts,
    user_audio,
    user_text,
)


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
