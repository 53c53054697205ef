"""The capture of conversation items: conversation.item.added/.created (beta)/.done/.retrieved.

Where a turn goes (previous_item_id, not arrival order), which items are turns and of what kind,
and the gaps: an unknown predecessor is reported (ItemMissing) and the retrieved item fills it.
Pure: hand-written events (tests/sideband/capture_events.py), no I/O, no database.
"""

from __future__ import annotations

from sideband.capture import CaptureState, ItemMissing, TurnUpsert
from tests.sideband.capture_events import (
    added,
    answer,
    assistant,
    done,
    ev,
    run,
    upserts,
    user_audio,
    user_text,
)

# --- Order --------------------------------------------------------------------------------


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


# --- Which items are turns, and of what kind ----------------------------------------------


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


# --- Gaps: ItemMissing and recovery (conversation.item.retrieved) -------------------------


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
