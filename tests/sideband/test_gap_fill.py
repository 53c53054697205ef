"""Gap fill from the page's item-id hints, end to end: a real worker process, the emulator
(whose `conversation.item.retrieved` carries no previous_item_id, as OpenAI's GA API), Postgres,
Redis, and the page's live socket carrying the hints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from asgiref.sync import async_to_sync

from sideband.hints import hints_load
from tests.sideband.helpers import (
    Worker,
    Workers,
    attached,
    call_start,
    emulator_call,
    page_socket,
    reply,
    session_new,
    sidebands,
    synthetic_call,
    turns_settled,
    user_text,
    wait_for,
)

if TYPE_CHECKING:
    from realtime_emulator.testing import EmulatorServer
    from sessions_app.models import Call, Session

pytestmark = pytest.mark.django_db(transaction=True)


def seen_by_the_page(upstream: EmulatorServer, call: Call) -> list[dict[str, Any]]:
    """What the page's data channel saw: each item's id and the id before it."""
    ids = [item["id"] for item in emulator_call(upstream, call.call_id)["items"]]
    return [{"id": i, "previousItemId": p} for i, p in zip(ids, [None, *ids], strict=False)]


def page_reports(session: Session, message: dict[str, Any]) -> None:
    """The page sends `message` on its live socket."""

    async def send() -> None:
        page = page_socket(session)
        try:
            assert (await page.connect())[0] is True
            await page.receive_json_from(timeout=5)  # the snapshot
            await page.send_json_to(message)
        finally:
            await page.disconnect()

    async_to_sync(send)()


def hints_reported(session: Session, call: Call, items: list[dict[str, Any]]) -> None:
    page_reports(session, {"type": "items.seen", "callId": call.call_id, "items": items})
    wait_for(
        lambda: {i["id"] for i in items} <= set(hints_load(call_id=call.call_id)),
        what="the hints to be stored",
    )


def sideband_lost_after_a_first_question(upstream: EmulatorServer) -> tuple[Session, Call]:
    """A call whose first question and answer are recorded, then its sideband dropped and kept
    out (the emulator refuses it until `sideband_back`)."""
    session = session_new()
    call = attached(upstream, call_start(session, synthetic_call(upstream)))
    user_text(upstream, call, "first question")
    wait_for(turns_settled(session, 2))
    upstream.control("POST", f"/_emulator/calls/{call.call_id}/drop-sidebands", {"block": True})
    return session, call


def answered_upstream(upstream: EmulatorServer, call: Call, *, items: int) -> None:
    """Wait until the call holds `items` items upstream, the last an answer, complete."""

    def check() -> bool:
        held = emulator_call(upstream, call.call_id)["items"]
        last = held[-1] if held else {}
        return len(held) == items and (last.get("role"), last.get("status")) == (
            "assistant",
            "completed",
        )

    wait_for(check, what="the missed answer to complete upstream")


def sideband_back(upstream: EmulatorServer, call: Call) -> None:
    upstream.control("POST", f"/_emulator/calls/{call.call_id}/unblock-sidebands")
    wait_for(lambda: sidebands(upstream, call.call_id) == 1, what="the worker to reconnect")


def test_a_three_item_gap_is_filled_exactly_from_hints_and_in_order(
    worker: Worker, upstream: EmulatorServer
) -> None:
    session, call = sideband_lost_after_a_first_question(upstream)
    # The sideband misses a question, its answer and the next question.
    user_text(upstream, call, "second question")
    answered_upstream(upstream, call, items=4)
    user_text(upstream, call, "third question", respond=False)
    hints_reported(session, call, seen_by_the_page(upstream, call))
    sideband_back(upstream, call)

    user_text(upstream, call, "back again")

    assert wait_for(turns_settled(session, 7), timeout=15) == [
        ("user", "first question", "completed"),
        ("assistant", reply("first question"), "completed"),
        ("user", "second question", "completed"),
        ("assistant", reply("second question"), "completed"),
        ("user", "third question", "completed"),
        ("user", "back again", "completed"),
        ("assistant", reply("back again"), "completed"),
    ]


def test_a_hint_naming_another_conversations_item_writes_nothing(
    workers: Workers, worker: Worker, upstream: EmulatorServer
) -> None:
    session, call = sideband_lost_after_a_first_question(upstream)
    missed = user_text(upstream, call, "missed question", respond=False)
    # The page claims an item of another conversation came before the missed one.
    other = synthetic_call(upstream)
    foreign = upstream.control(
        "POST", f"/_emulator/calls/{other['call_id']}/user-text", {"text": "not yours"}
    )["item_id"]
    hints_reported(session, call, [{"id": missed, "previousItemId": foreign}])
    sideband_back(upstream, call)

    user_text(upstream, call, "back again")

    wait_for(
        lambda: any(
            f"Upstream does not know item {foreign}: dropped" in w.log_text()
            for w in workers.started
        ),
        what="the foreign item to be dropped",
    )
    assert wait_for(turns_settled(session, 5)) == [
        ("user", "first question", "completed"),
        ("assistant", reply("first question"), "completed"),
        ("user", "missed question", "completed"),
        ("user", "back again", "completed"),
        ("assistant", reply("back again"), "completed"),
    ]


def test_items_missed_at_the_end_of_a_gap_are_filled_from_hints(
    worker: Worker, upstream: EmulatorServer
) -> None:
    session, call = sideband_lost_after_a_first_question(upstream)
    # A question and its answer while the sideband is away, and then nothing more is said.
    user_text(upstream, call, "last question")
    answered_upstream(upstream, call, items=4)
    hints_reported(session, call, seen_by_the_page(upstream, call))

    sideband_back(upstream, call)

    assert wait_for(turns_settled(session, 4), timeout=15) == [
        ("user", "first question", "completed"),
        ("assistant", reply("first question"), "completed"),
        ("user", "last question", "completed"),
        ("assistant", reply("last question"), "completed"),
    ]
