"""Calls through the sideband and the control API: fan-out, limits, interruptions, knobs."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from realtime_emulator.testing import EmulatorError, EmulatorServer

from .conftest import idle_call


def _user_item(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
        **extra,
    }


async def test_every_sideband_of_a_call_gets_every_event(
    emulator: EmulatorServer, connect_sideband: Any
) -> None:
    call_id = idle_call(emulator)["call_id"]
    first = await connect_sideband(call_id)
    second = await connect_sideband(call_id)
    assert emulator.control("GET", f"/_emulator/calls/{call_id}")["sidebands"] == 2

    await first.send(_user_item("from the first"))
    await first.send({"type": "response.create"})

    one = await first.until("output_audio_buffer.stopped")
    two = await second.until("output_audio_buffer.stopped")
    assert [e["event_id"] for e in one] == [e["event_id"] for e in two]
    assert one[0]["type"] == "conversation.item.added"  # no replay, no session.created


async def test_session_update_applies_to_later_responses_and_previous_item_id_is_honoured(
    emulator: EmulatorServer, connect_sideband: Any
) -> None:
    call_id = idle_call(emulator, instructions="Plain.")
    sideband = await connect_sideband(call_id["call_id"])
    await sideband.send(_user_item("first"))
    added = (await sideband.until("conversation.item.done"))[0]
    await sideband.send(_user_item("second"))
    second = (await sideband.until("conversation.item.done"))[0]
    # an item inserted at the root and one after the first item
    await sideband.send(_user_item("zeroth", previous_item_id="root"))
    zeroth = (await sideband.until("conversation.item.done"))[0]
    await sideband.send(_user_item("between", previous_item_id=added["item"]["id"]))
    between = (await sideband.until("conversation.item.done"))[0]
    assert zeroth["previous_item_id"] is None
    assert between["previous_item_id"] == added["item"]["id"]
    order = [
        i["content"][0]["text"]
        for i in emulator.control("GET", f"/_emulator/calls/{call_id['call_id']}")["items"]
    ]
    assert order == ["zeroth", "first", "between", "second"]
    assert second["previous_item_id"] == added["item"]["id"]

    await sideband.send(
        {
            "type": "session.update",
            "session": {"type": "realtime", "instructions": "x\nMarker: v2 \n"},
        }
    )
    await sideband.until("session.updated")
    await sideband.send({"type": "response.create"})
    done = (await sideband.until("response.done"))[-1]
    assert (
        done["response"]["output"][0]["content"][0]["transcript"]
        == 'You said: "second". (Marker: v2)'
    )
    assert (
        emulator.control("GET", f"/_emulator/calls/{call_id['call_id']}")["instructions"]
        == "x\nMarker: v2 \n"
    )


async def test_out_of_band_response_stays_out_of_the_conversation(
    emulator: EmulatorServer, connect_sideband: Any
) -> None:
    call_id = idle_call(emulator)["call_id"]
    sideband = await connect_sideband(call_id)
    emulator.control("POST", f"/_emulator/calls/{call_id}/user-text", {"text": "hello"})
    await sideband.until("output_audio_buffer.stopped")
    before = emulator.control("GET", f"/_emulator/calls/{call_id}")["items"]

    await sideband.send(
        {
            "type": "response.create",
            "response": {
                "conversation": "none",
                "output_modalities": ["text"],
                "metadata": {"purpose": "summary"},
                "input": [
                    {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": "Summarise"}],
                    }
                ],
            },
        }
    )
    events = await sideband.until("response.done")
    done = events[-1]["response"]
    assert done["conversation_id"] is None
    assert done["metadata"] == {"purpose": "summary"}
    assert done["output"][0]["content"] == [
        {"type": "output_text", "text": 'You said: "Summarise".'}
    ]
    assert not [e for e in events if e["type"].startswith("conversation.item.")]
    assert emulator.control("GET", f"/_emulator/calls/{call_id}")["items"] == before


async def test_interruption_leaves_an_incomplete_item_and_a_cancelled_response(
    emulator: EmulatorServer, connect_sideband: Any
) -> None:
    # a slow response (pace 0.5 s is read when it starts) that the user talks over
    call_id = idle_call(emulator)["call_id"]
    sideband = await connect_sideband(call_id)
    emulator.control("POST", "/_emulator/settings", {"pace_s": 0.5})
    emulator.control(
        "POST", f"/_emulator/calls/{call_id}/user-text", {"text": "one two three four five six"}
    )
    await sideband.until("output_audio_buffer.started")
    emulator.control("POST", "/_emulator/settings", {"pace_s": 0.005})

    # speech starts while the assistant talks (simulated spoken turn)
    emulator.control(
        "POST", f"/_emulator/calls/{call_id}/user-audio", {"transcript": "Stop please."}
    )
    events = await sideband.until("conversation.item.truncated")

    types = [e["type"] for e in events]
    assert types[0] == "input_audio_buffer.speech_started"
    done = next(e for e in events if e["type"] == "response.done")["response"]
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    item = done["output"][0]
    assert item["status"] == "incomplete"
    partial = item["content"][0]["transcript"]
    full = 'You said: "one two three four five six".'
    assert partial.startswith("You said:")
    assert full.startswith(partial)
    assert partial != full
    assert types.index("output_audio_buffer.cleared") < types.index("conversation.item.truncated")
    truncated = events[-1]
    assert truncated["item_id"] == item["id"]
    assert truncated["audio_end_ms"] >= 0
    # the spoken turn then gets its own response
    later = await sideband.until("response.done")
    assert later[-1]["response"]["status"] == "completed"

    # response.cancel from a client is `client_cancelled`
    emulator.control("POST", "/_emulator/settings", {"pace_s": 0.5})
    emulator.control("POST", f"/_emulator/calls/{call_id}/user-text", {"text": "again"})
    await sideband.until("response.created")
    await sideband.send({"type": "response.cancel"})
    done = (await sideband.until("response.done"))[-1]["response"]
    assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}


async def test_failed_transcription_mode(emulator: EmulatorServer, connect_sideband: Any) -> None:
    emulator.control("POST", "/_emulator/settings", {"transcription": "failed"})
    call_id = idle_call(emulator)["call_id"]
    sideband = await connect_sideband(call_id)
    emulator.control(
        "POST", f"/_emulator/calls/{call_id}/user-audio", {"transcript": "Hello there."}
    )
    events = await sideband.until_all(
        {"response.done", "conversation.item.input_audio_transcription.failed"}
    )
    types = [e["type"] for e in events]
    assert "conversation.item.input_audio_transcription.delta" not in types
    assert types.index("response.created") < types.index(
        "conversation.item.input_audio_transcription.failed"
    )
    done = next(e for e in events if e["type"] == "response.done")
    assert done["response"]["output"][0]["content"][0]["transcript"] == "I heard you."
    item = emulator.control("GET", f"/_emulator/calls/{call_id}")["items"][0]
    assert item["content"] == [{"type": "input_audio", "transcript": None}]


async def test_session_expires_at_its_maximum_duration(
    emulator: EmulatorServer, connect_sideband: Any
) -> None:
    emulator.control("POST", "/_emulator/settings", {"max_session_s": 3.0})
    call = idle_call(emulator)
    sideband = await connect_sideband(call["call_id"])
    event = await sideband.next()
    assert event is not None
    assert event["type"] == "error"
    assert event["error"]["code"] == "session_expired"
    assert event["error"]["message"] == "Your session hit the maximum duration of 0.05 minutes."
    assert await sideband.closed() == 1001
    detail = emulator.control("GET", f"/_emulator/calls/{call['call_id']}")
    assert (detail["status"], detail["end_reason"]) == ("ended", "session_expired")


async def test_expire_session_knob_uses_the_configured_figure(
    emulator: EmulatorServer, connect_sideband: Any
) -> None:
    call = idle_call(emulator)
    sideband = await connect_sideband(call["call_id"])
    emulator.control("POST", f"/_emulator/calls/{call['call_id']}/expire-session")
    event = await sideband.next()
    assert event is not None
    assert event["error"]["message"] == "Your session hit the maximum duration of 60 minutes."
    assert await sideband.closed() == 1001


async def test_an_expired_secret_cannot_join_but_the_started_call_goes_on(
    emulator: EmulatorServer, connect_sideband: Any
) -> None:
    call = idle_call(emulator)
    joined = await connect_sideband(call["call_id"], call["client_secret"])
    emulator.control("POST", "/_emulator/secrets/expire", {})
    refused = await connect_sideband(call["call_id"], call["client_secret"])
    assert (await refused.next())["error"]["code"] == "invalid_api_key"
    assert await refused.closed() == 3000
    emulator.control(
        "POST", f"/_emulator/calls/{call['call_id']}/user-text", {"text": "still here"}
    )
    assert (await joined.until("response.done"))[-1]["response"]["status"] == "completed"


async def test_hangup_closes_sidebands(emulator: EmulatorServer, connect_sideband: Any) -> None:
    call = idle_call(emulator)
    sideband = await connect_sideband(call["call_id"])
    assert (
        emulator.control("POST", f"/_emulator/calls/{call['call_id']}/hangup")["status"] == "ended"
    )
    assert await sideband.closed() == 1000
    with pytest.raises(EmulatorError) as refused:
        emulator.control("POST", f"/_emulator/calls/{call['call_id']}/user-text", {"text": "x"})
    assert refused.value.status == 409


async def test_drop_sidebands_aborts_and_blocks_until_unblocked(
    emulator: EmulatorServer, connect_sideband: Any, http: aiohttp.ClientSession
) -> None:
    call_id = idle_call(emulator)["call_id"]
    sideband = await connect_sideband(call_id)
    dropped = emulator.control(
        "POST", f"/_emulator/calls/{call_id}/drop-sidebands", {"block": True}
    )
    assert dropped == {"dropped": 1, "blocked": True}
    assert await sideband.closed() == 1006  # abnormal closure: no close frame was sent
    assert emulator.control("GET", f"/_emulator/calls/{call_id}")["sidebands"] == 0

    headers = {"Authorization": f"Bearer {emulator.api_key}"}
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(f"{emulator.ws_base}/realtime?call_id={call_id}", headers=headers)
    assert refused.value.status == 503

    emulator.control("POST", f"/_emulator/calls/{call_id}/unblock-sidebands")
    again = await connect_sideband(call_id)
    emulator.control("POST", f"/_emulator/calls/{call_id}/user-text", {"text": "back"})
    assert (await again.next())["type"] == "conversation.item.added"


async def test_synthetic_calls_play_their_script_when_a_sideband_joins(
    emulator: EmulatorServer, connect_sideband: Any
) -> None:
    created = emulator.control(
        "POST",
        "/_emulator/synthetic-calls",
        {
            "count": 2,
            "turns": 2,
            "turn_interval_s": 0.2,
            "delta_interval_s": 0.005,
            "mode": "mixed",
        },
    )["calls"]
    assert len(created) == 2
    assert all(c["client_secret"].startswith("ek_") for c in created)
    call_id = created[0]["call_id"]
    sideband = await connect_sideband(call_id, created[0]["client_secret"])
    events = await sideband.until_all({"conversation.item.input_audio_transcription.completed"})
    while sum(e["type"] == "response.done" for e in events) < 2:
        events += await sideband.until("response.done")
    replies = [
        e["response"]["output"][0]["content"][0]["transcript"]
        for e in events
        if e["type"] == "response.done"
    ]
    assert replies == [
        f'You said: "Synthetic turn 1 of call {call_id}".',
        f'You said: "Synthetic turn 2 of call {call_id}".',
    ]
    assert "input_audio_buffer.speech_started" in [e["type"] for e in events]  # turn 2 is spoken
    # the other call has not started: nobody joined it
    assert emulator.control("GET", f"/_emulator/calls/{created[1]['call_id']}")["items"] == []
    emulator.control("POST", f"/_emulator/calls/{created[1]['call_id']}/start")
    other = await connect_sideband(created[1]["call_id"])
    assert (await other.until("response.done"))[-1]["response"]["status"] == "completed"
