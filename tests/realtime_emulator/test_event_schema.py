"""Every server event of a scripted session parses with the official SDK's types."""

from __future__ import annotations

from typing import Any

from realtime_emulator.testing import EmulatorServer

from .conftest import idle_call
from .sdk_check import validate_server_event


def _user_text(text: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
    }


async def test_every_event_of_a_scripted_session_matches_the_sdk_union(
    emulator: EmulatorServer, connect_sideband: Any
) -> None:
    # given a call with a sideband
    call = idle_call(emulator)
    call_id = call["call_id"]
    sideband = await connect_sideband(call_id)
    base = f"/_emulator/calls/{call_id}"

    # when the session runs text turns (audio and text output), spoken turns (transcript
    # completed, then failed), an interruption, a retrieve, errors, an out-of-band response,
    # item deletion, buffer clearing and finally the session's expiry
    await sideband.send(
        {"type": "session.update", "session": {"type": "realtime", "instructions": "Marker: v1"}}
    )
    await sideband.until("session.updated")
    await sideband.send(_user_text("hello"))
    await sideband.send({"type": "response.create"})
    await sideband.until("output_audio_buffer.stopped")
    await sideband.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
    await sideband.until("rate_limits.updated")

    emulator.control(
        "POST", f"{base}/user-audio", {"transcript": "My name is Bob and I live in Oslo."}
    )
    await sideband.until_all(
        {"output_audio_buffer.stopped", "conversation.item.input_audio_transcription.completed"}
    )
    emulator.control(
        "POST", f"{base}/user-audio", {"transcript": "Mumble.", "transcription": "failed"}
    )
    await sideband.until_all(
        {"output_audio_buffer.stopped", "conversation.item.input_audio_transcription.failed"}
    )

    emulator.control("POST", "/_emulator/settings", {"pace_s": 0.5})
    emulator.control("POST", f"{base}/user-text", {"text": "tell me a long story"})
    await sideband.until("output_audio_buffer.started")
    emulator.control("POST", "/_emulator/settings", {"pace_s": 0.005})
    assert emulator.control("POST", f"{base}/interrupt")["interrupted"] is True
    await sideband.until("conversation.item.truncated")

    items = emulator.control("GET", base)["items"]
    await sideband.send({"type": "conversation.item.retrieve", "item_id": items[0]["id"]})
    await sideband.until("conversation.item.retrieved")
    await sideband.send(
        {"type": "conversation.item.retrieve", "item_id": "item_missing", "event_id": "c1"}
    )
    await sideband.until("error")
    await sideband.send({"type": "response.cancel"})
    await sideband.until("error")
    await sideband.send({"type": "no.such.event"})
    await sideband.until("error")
    await sideband.send(
        {
            "type": "response.create",
            "response": {"conversation": "none", "metadata": {"kind": "oob"}},
        }
    )
    await sideband.until("response.done")
    await sideband.send({"type": "conversation.item.delete", "item_id": items[0]["id"]})
    await sideband.until("conversation.item.deleted")
    await sideband.send({"type": "input_audio_buffer.clear"})
    await sideband.until("input_audio_buffer.cleared")
    emulator.control("POST", f"{base}/expire-session")
    await sideband.until("error")
    assert await sideband.closed() == 1001

    # then every event validates against RealtimeServerEvent with nothing required missing
    types = set()
    for event in sideband.events:
        validate_server_event(event)
        types.add(event["type"])
    assert {
        "session.updated",
        "conversation.item.added",
        "conversation.item.done",
        "response.created",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_audio_transcript.delta",
        "response.output_audio_transcript.done",
        "response.output_audio.done",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.done",
        "rate_limits.updated",
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "output_audio_buffer.cleared",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "input_audio_buffer.cleared",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.input_audio_transcription.failed",
        "conversation.item.truncated",
        "conversation.item.retrieved",
        "conversation.item.deleted",
        "error",
    } <= types
    errors = [e["error"] for e in sideband.events if e["type"] == "error"]
    assert [e["code"] for e in errors] == [
        "item_retrieve_invalid_item_id",
        "response_cancel_not_active",
        "invalid_value",
        "session_expired",
    ]
    assert errors[0]["event_id"] == "c1"
