"""A newer call supersedes the older one: fenced out, its page told, hung up upstream.

A real worker process, the emulator, Postgres and Redis; the "pages" are the session's live
socket opened as the owner's browser opens it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from asgiref.sync import sync_to_async

from realtime_emulator.testing import EmulatorError
from sessions_app.models import Call
from sideband.tasks import call_hangup
from tests.sideband.helpers import (
    Worker,
    Workers,
    attached,
    call_start,
    emulator_call,
    page_socket,
    reply,
    session_new,
    synthetic_call,
    turns_settled,
    user_text,
    wait_for,
)

if TYPE_CHECKING:
    from channels.testing import WebsocketCommunicator

    from realtime_emulator.testing import EmulatorServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("orm_thread_closed")]


async def _until(communicator: WebsocketCommunicator, kind: str) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = await communicator.receive_json_from(timeout=10)
        if message["type"] == kind:
            return message


async def test_a_second_page_supersedes_the_first_which_is_hung_up_and_told(
    worker: Worker, upstream: EmulatorServer
) -> None:
    session = await sync_to_async(session_new)()
    first = await sync_to_async(call_start)(session, await sync_to_async(synthetic_call)(upstream))
    await sync_to_async(attached)(upstream, first)
    first_page = page_socket(session)
    try:
        assert (await first_page.connect())[0] is True
        await _until(first_page, "snapshot")
        await sync_to_async(user_text)(upstream, first, "said in the first window")
        await sync_to_async(wait_for)(turns_settled(session, 2))

        # The second window resumes the session and registers its own call.
        second = await sync_to_async(call_start)(
            session, await sync_to_async(synthetic_call)(upstream), kind="renew"
        )
        told = await _until(first_page, "call.ended")
    finally:
        await first_page.disconnect()

    assert {k: told[k] for k in ("callId", "reason", "generation")} == {
        "callId": first.call_id,
        "reason": "superseded",
        "generation": 1,
    }
    await sync_to_async(wait_for)(
        lambda: emulator_call(upstream, first.call_id)["status"] == "ended",
        what="the first call to be hung up upstream",
    )
    detail = await sync_to_async(emulator_call)(upstream, first.call_id)
    assert (detail["end_reason"], detail["sidebands"]) == ("hangup", 0)
    # The first window's call takes no more words; the second records them.
    with pytest.raises(EmulatorError):
        await sync_to_async(user_text)(upstream, first, "lost words")
    await sync_to_async(attached)(upstream, second)
    await sync_to_async(user_text)(upstream, second, "said in the second window")
    assert await sync_to_async(wait_for)(turns_settled(session, 4)) == [
        ("user", "said in the first window", "completed"),
        ("assistant", reply("said in the first window"), "completed"),
        ("user", "said in the second window", "completed"),
        ("assistant", reply("said in the second window"), "completed"),
    ]
    ends = await sync_to_async(
        lambda: list(Call.objects.order_by("generation").values_list("end_reason", flat=True))
    )()
    assert ends == [Call.EndReason.SUPERSEDED, ""]


def test_hanging_up_twice_is_harmless(upstream: EmulatorServer) -> None:
    call_id = synthetic_call(upstream)["call_id"]

    first = call_hangup.run(call_id)
    call_hangup.run(call_id)  # an ended call: done already, nothing raised

    assert first is True
    assert emulator_call(upstream, call_id)["status"] == "ended"


def test_a_failed_hangup_is_retried_until_the_upstream_answers(
    workers: Workers, worker: Worker, upstream: EmulatorServer
) -> None:
    call_id = synthetic_call(upstream)["call_id"]
    upstream.control("POST", "/_emulator/faults", {"endpoint": "hangup", "status": 503, "times": 2})

    call_hangup.delay(call_id)

    wait_for(
        lambda: emulator_call(upstream, call_id)["status"] == "ended",
        timeout=20,
        what="the hangup to succeed on its third try",
    )
    logs = "".join(w.log_text() for w in workers.started)
    assert logs.count(f"call_hangup: call={call_id} hung up") == 1
