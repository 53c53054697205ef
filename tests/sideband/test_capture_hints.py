"""Gap fill from the page's hints (sideband.capture.hints): pure, a list of events in."""

from __future__ import annotations

from sideband.capture import (
    CaptureState,
    ItemMissing,
    TurnUpsert,
    hints_apply,
    hints_trailing,
    retrieve_event_id,
    transcript_close_out,
)
from tests.sideband.capture_events import added, assistant, ev, run, user_audio, user_text


def _known_question() -> CaptureState:
    return CaptureState.seeded(
        [
            TurnUpsert(
                item_id="q1", role="user", previous_item_id=None, text="Q1", status="completed"
            )
        ]
    )


def _missing(ops: list) -> list[ItemMissing]:
    return [op for op in ops if isinstance(op, ItemMissing)]


def test_a_three_item_gap_is_walked_back_by_hints_and_placed_in_order() -> None:
    # The sideband missed q2, a2 and q3; it sees q4, which follows q3.
    state = _known_question()
    first = run(state, [added(user_text("q4", "Q4"), "q3")])
    hints = {"q2": "q1", "a2": "q2", "q3": "a2", "q4": "q3"}

    retrieved_q3 = run(state, [ev("conversation.item.retrieved", item=user_text("q3", "Q3"))])
    walk = hints_apply(state, hints)
    retrieved_a2 = run(state, [ev("conversation.item.retrieved", item=assistant("a2", "A2"))])
    retrieved_q2 = run(state, [ev("conversation.item.retrieved", item=user_text("q2", "Q2"))])

    assert _missing(first) == [ItemMissing("q3")]
    assert _missing(retrieved_q3) == []
    assert state.unanchored == set()
    assert walk == [ItemMissing("a2")]
    assert _missing(retrieved_a2) == [ItemMissing("q2")]
    assert _missing(retrieved_q2) == []
    assert [(t.item_id, t.text) for t in state.turns()] == [
        ("q1", "Q1"),
        ("q2", "Q2"),
        ("a2", "A2"),
        ("q3", "Q3"),
        ("q4", "Q4"),
    ]
    assert state.missing == {}


def test_hints_known_before_the_gap_continue_the_walk_at_once() -> None:
    state = _known_question()
    hints_apply(state, {"q2": "q1", "a2": "q2"})
    run(state, [added(user_text("q3", "Q3"), "a2")])

    ops = run(state, [ev("conversation.item.retrieved", item=assistant("a2", "A2"))])

    assert _missing(ops) == [ItemMissing("q2")]
    assert state.unanchored == set()


def test_a_hint_the_upstream_does_not_know_is_dropped_and_writes_nothing() -> None:
    state = _known_question()
    run(state, [added(user_text("q3", "Q3"), "a2")])
    run(state, [ev("conversation.item.retrieved", item=assistant("a2", "A2"))])
    walk = hints_apply(state, {"a2": "forged"})

    refused = run(
        state,
        [
            ev(
                "error",
                error={
                    "type": "invalid_request_error",
                    "code": "item_retrieve_invalid_item_id",
                    "message": "Item with item_id not found: forged",
                    "param": "item_id",
                    "event_id": retrieve_event_id("forged"),
                },
            )
        ],
    )

    assert walk == [ItemMissing("forged")]
    assert refused == []
    assert state.missing == {}
    assert state.unknown_items == 1
    assert [t.item_id for t in state.turns()] == ["q1", "a2", "q3"]


def test_hints_without_a_gap_ask_for_nothing() -> None:
    state = _known_question()
    run(state, [added(user_text("q2", "Q2"), "q1")])

    assert hints_apply(state, {"q2": "q1", "other": "q2", "q1": None}) == []
    assert state.missing == {}


def test_a_spoken_turn_reread_from_the_upstream_gets_its_transcript() -> None:
    state = CaptureState()
    run(state, [ev("input_audio_buffer.committed", item_id="u1", previous_item_id=None)])
    assert state.items["u1"].awaiting_transcript

    reread = run(state, [ev("conversation.item.retrieved", item=user_audio("u1", "said"))])

    assert [(op.text, op.status) for op in reread if isinstance(op, TurnUpsert)] == [
        ("said", "completed")
    ]


def test_a_spoken_turn_never_transcribed_is_closed_out_and_a_late_transcript_still_wins() -> None:
    state = CaptureState()
    run(state, [ev("input_audio_buffer.committed", item_id="u1", previous_item_id=None)])

    closed = transcript_close_out(state, "u1", "not transcribed")
    late = run(
        state,
        [
            ev(
                "conversation.item.input_audio_transcription.completed",
                item_id="u1",
                transcript="at last",
            )
        ],
    )

    assert [(op.text, op.status) for op in closed if isinstance(op, TurnUpsert)] == [
        (None, "untranscribed")
    ]
    assert [(op.text, op.status) for op in late if isinstance(op, TurnUpsert)] == [
        ("at last", "completed")
    ]
    assert transcript_close_out(state, "u1", "again") == []


def test_items_missed_at_the_end_of_a_gap_are_asked_for_oldest_first() -> None:
    state = _known_question()
    hints = {"q1": None, "q2": "q1", "a2": "q2", "elsewhere": "unknown", "loop": "loop"}

    ops = hints_trailing(state, hints)
    run(state, [ev("conversation.item.retrieved", item=user_text("q2", "Q2"))])
    run(state, [ev("conversation.item.retrieved", item=assistant("a2", "A2"))])

    assert ops == [ItemMissing("q2"), ItemMissing("a2")]
    assert [(t.item_id, t.previous_item_id) for t in state.turns()] == [
        ("q1", None),
        ("q2", "q1"),
        ("a2", "q2"),
    ]
    assert hints_trailing(state, hints) == []
