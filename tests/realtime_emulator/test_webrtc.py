"""A browser-like aiortc peer on a real WebRTC call, with a sideband watching the same call."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import aiohttp
import pytest
from openai import OpenAI

from realtime_emulator.browser_peer import BrowserPeer
from realtime_emulator.testing import EmulatorServer
from tests.processes import wait_for

from .conftest import corpus_events
from .order import (
    FLOATING,
    NOT_ON_WEBRTC,
    SPOKEN_TURN,
    TEXT_TURN_ON_WEBRTC,
    TRANSCRIPTION,
    assert_same_order,
    slice_between,
    types_of,
)
from .sdk_check import validate_server_event


def _secret(emulator: EmulatorServer, **session: Any) -> str:
    client = OpenAI(base_url=emulator.api_base, api_key=emulator.api_key, max_retries=0)
    secret = client.realtime.client_secrets.create(session={"type": "realtime", **session})  # type: ignore[arg-type]
    return secret.value


async def _events_until(peer: BrowserPeer, type_: str) -> list[dict[str, Any]]:
    seen = []
    async with asyncio.timeout(15):
        while True:
            event = await peer.events.get()
            seen.append(event)
            if event["type"] == type_:
                return seen


def _reference_text_turn() -> list[str]:
    recorded = corpus_events("ga_sideband_pyd_webrtc_audio_turn.jsonl")
    if recorded is None:
        return TEXT_TURN_ON_WEBRTC
    return [t for t in types_of(recorded) if t != "session.updated"]


def _reference_spoken_turn() -> list[str]:
    recorded = corpus_events("ga_ws_pyd_three_audio_turns_late_transcripts.jsonl")
    if recorded is None:
        return SPOKEN_TURN
    return types_of(
        slice_between(recorded, "input_audio_buffer.speech_started", "rate_limits.updated")
    )


async def test_a_webrtc_call_runs_text_and_spoken_turns_seen_alike_by_a_sideband(
    emulator: EmulatorServer, connect_sideband: Any
) -> None:
    # given a browser-like peer that negotiated a call with an ephemeral key
    emulator.control("POST", "/_emulator/settings", {"pace_s": 0.04})
    secret = _secret(
        emulator,
        instructions="Marker: webrtc",
        audio={"input": {"transcription": {"model": "whisper-1"}}},
    )
    peer = BrowserPeer()
    try:
        response = await peer.connect(emulator.api_base, secret)
        assert response.status == 201
        assert response.content_type == "application/sdp"
        assert response.headers["Location"] == f"/v1/realtime/calls/{peer.call_id}"
        assert peer.call_id is not None
        assert peer.call_id.startswith("rtc_")
        first = await peer.events.get()
        assert first["type"] == "session.created"
        validate_server_event(first)
        sideband = await connect_sideband(peer.call_id, secret)
        await asyncio.sleep(0)  # the join is synchronous server-side; see the `sidebands` count
        assert emulator.control("GET", f"/_emulator/calls/{peer.call_id}")["sidebands"] == 1

        # when the browser types a message on the data channel
        peer.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "hi"}],
                },
            }
        )
        peer.send({"type": "response.create"})
        text_turn = await _events_until(peer, "output_audio_buffer.stopped")
        await asyncio.wait_for(peer.heard_tone.wait(), 10)

        # then both subscribers see the same events, in the recorded order, with the reply rule
        assert [e["event_id"] for e in await sideband.until("output_audio_buffer.stopped")] == [
            e["event_id"] for e in text_turn
        ]
        ours = types_of(text_turn)
        assert_same_order(ours, _reference_text_turn(), ignore=FLOATING)
        assert ours.index("response.output_audio_transcript.delta") < ours.index(
            "output_audio_buffer.started"
        )
        done = next(e for e in text_turn if e["type"] == "response.done")
        assert (
            done["response"]["output"][0]["content"][0]["transcript"]
            == 'You said: "hi". (Marker: webrtc)'
        )

        # when the microphone carries one second of tone between silences
        peer.mic.burst(1.0)
        spoken = await _events_until(peer, "rate_limits.updated")
        while not any(
            e["type"] == "conversation.item.input_audio_transcription.completed" for e in spoken
        ):
            spoken += await _events_until(
                peer, "conversation.item.input_audio_transcription.completed"
            )

        # then the VAD turn follows the recorded spoken turn, transcript completing late
        ours = types_of(spoken)
        assert_same_order(
            ours, _reference_spoken_turn(), ignore=TRANSCRIPTION | NOT_ON_WEBRTC | FLOATING
        )
        assert ours.index("conversation.item.input_audio_transcription.delta") < ours.index(
            "input_audio_buffer.speech_stopped"
        )
        assert ours.index("response.created") < ours.index(
            "conversation.item.input_audio_transcription.completed"
        )
        completed = next(e for e in spoken if e["type"].endswith("transcription.completed"))
        assert completed["transcript"] == "Spoken turn 1, about 1 second."
        user_item = next(e for e in spoken if e["type"] == "conversation.item.added")["item"]
        assert user_item["content"] == [{"type": "input_audio", "transcript": None}]
        assert completed["item_id"] == user_item["id"]
        reply = next(e for e in spoken if e["type"] == "response.output_audio_transcript.done")
        assert reply["transcript"] == 'You said: "Spoken turn 1, about 1 second.". (Marker: webrtc)'
        mirrored: list[dict[str, Any]] = []
        while not mirrored or mirrored[-1]["event_id"] != spoken[-1]["event_id"]:
            event = await sideband.next()
            assert event is not None
            mirrored.append(event)
        assert [e["event_id"] for e in mirrored] == [e["event_id"] for e in spoken]
        for event in text_turn + spoken:
            validate_server_event(event)

        # when the call is hung up, the data channel and the sideband close
        async with aiohttp.ClientSession() as http:
            hangup = await http.post(
                f"{emulator.api_base}/realtime/calls/{peer.call_id}/hangup",
                headers={"Authorization": f"Bearer {emulator.api_key}"},
            )
            assert hangup.status == 200
        await asyncio.wait_for(peer.channel_closed.wait(), 10)
        assert await sideband.closed() == 1000
        detail = emulator.control("GET", f"/_emulator/calls/{peer.call_id}")
        assert (detail["status"], detail["end_reason"], detail["sidebands"]) == (
            "ended",
            "hangup",
            0,
        )
    finally:
        await peer.close()


async def test_calls_accept_multipart_sdp_and_session_with_the_api_key(
    emulator: EmulatorServer,
) -> None:
    peer = BrowserPeer()
    try:
        peer.pc.addTrack(peer.mic)
        peer.pc.createDataChannel("oai-events")
        await peer.pc.setLocalDescription(await peer.pc.createOffer())
        client = OpenAI(base_url=emulator.api_base, api_key=emulator.api_key, max_retries=0)
        raw = client.realtime.calls.with_raw_response.create(
            sdp=peer.pc.localDescription.sdp,
            session={"type": "realtime", "instructions": "Marker: multipart"},
        )
        assert raw.status_code == 201
        assert raw.headers["content-type"].startswith("application/sdp")
        assert raw.content.decode().startswith("v=0")
        call_id = raw.headers["location"].rsplit("/", 1)[-1]
        detail = emulator.control("GET", f"/_emulator/calls/{call_id}")
        assert detail["instructions"] == "Marker: multipart"
    finally:
        await peer.close()


async def test_a_browser_that_vanishes_goes_unnoticed_by_the_sideband(
    emulator: EmulatorServer, connect_sideband: Any
) -> None:
    # given a browser's call with a sideband on it
    secret = _secret(emulator)
    peer = BrowserPeer()
    response = await peer.connect(emulator.api_base, secret)
    assert response.status == 201
    assert (await peer.events.get())["type"] == "session.created"
    sideband = await connect_sideband(peer.call_id, secret)

    # when the browser goes away without hanging up
    await peer.close()

    # then the call goes on upstream and its sideband is told nothing (OpenAI, per public
    # reports: openai-agents-js #684); it still answers, e.g. an item retrieval
    await asyncio.to_thread(
        wait_for,
        lambda: emulator.control("GET", f"/_emulator/calls/{peer.call_id}")["datachannels"] == 0,
        what="the emulator to notice the browser's data channel close",
    )
    await sideband.ws.send_json({"type": "conversation.item.retrieve", "item_id": "item_none"})
    error = (await sideband.until("error"))[-1]
    assert error["error"]["code"] == "item_retrieve_invalid_item_id"
    detail = emulator.control("GET", f"/_emulator/calls/{peer.call_id}")
    assert (detail["status"], detail["sidebands"]) == ("active", 1)
    assert not [e for e in sideband.events if e["type"] != "error"]


async def test_a_vanished_browser_can_end_its_call_instead(
    emulator: EmulatorServer, connect_sideband: Any
) -> None:
    emulator.control("POST", "/_emulator/settings", {"browser_gone": "ends_call"})
    secret = _secret(emulator)
    peer = BrowserPeer()
    await peer.connect(emulator.api_base, secret)
    sideband = await connect_sideband(peer.call_id, secret)

    await peer.close()

    assert await sideband.closed() == 1000
    detail = emulator.control("GET", f"/_emulator/calls/{peer.call_id}")
    assert (detail["status"], detail["end_reason"]) == ("ended", "webrtc_disconnected")


# --- A browser gone without hanging up --------------------------------------------------


async def _unretrieved(coro: Any) -> None:
    """Run `coro` as a task nobody awaits, and let it be collected: asyncio then reports its
    exception ("Task exception was never retrieved") through the loop's handler."""
    task = asyncio.get_running_loop().create_task(coro)
    await asyncio.wait([task])
    del task
    gc.collect()


async def test_aiortc_tasks_failing_because_the_peer_is_gone_print_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport

    from realtime_emulator.webrtc import quiet_peer_gone_errors

    async def ours() -> None:
        raise ConnectionError("a real bug")

    loop = asyncio.get_running_loop()
    quiet_peer_gone_errors(loop)
    transport = RTCDtlsTransport(
        RTCIceTransport(RTCIceGatherer()), [RTCCertificate.generateCertificate()]
    )
    # Earlier tests' garbage (a task of a loop long gone) is collected now, not inside the
    # capture below: only this test's own errors are counted.
    gc.collect()
    try:
        with caplog.at_level(logging.DEBUG):
            # What aiortc's SCTP does once a browser vanished: send over a DTLS that is gone.
            await _unretrieved(transport._send_data(b"reconfig"))
            await _unretrieved(ours())
    finally:
        loop.set_exception_handler(None)

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    # Only our own coroutine's error is reported, as asyncio always does.
    assert [r.getMessage().split("\n")[0] for r in errors] == ["Task exception was never retrieved"]
    assert "ConnectionError('a real bug')" in errors[0].getMessage()
    assert any(r.getMessage().startswith("peer gone:") for r in caplog.records)
