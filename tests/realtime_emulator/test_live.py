"""The emulator speaks Live: the official SDK's `client.live` drives it by base URL alone.

Every event a sideband or a data channel receives is validated against the SDK's own
`ConnectServerEvent` types (no missing required field, no undeclared field); the transcript
fragments are fed to the SDK's own `AsyncTranscriptGrouper` to check the turns they make.
The WebRTC side is a real aiortc peer (the browser's role).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI
from openai.lib.live import AsyncTranscriptGrouper, TranscriptSegmentClosedEvent
from openai.types.live import ConnectServerEvent

from realtime_emulator.browser_peer import BrowserPeer
from realtime_emulator.testing import EmulatorServer

from .sdk_check import validate_live_event

HISTORY = [
    {"role": "user", "content": [{"type": "input_text", "text": "My name is Ada."}]},
    {"role": "assistant", "content": [{"type": "output_text", "text": "Nice to meet you, Ada."}]},
]


class LiveSideband:
    """The SDK's sideband connection; every raw event is validated, kept and queued."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.events: list[dict[str, Any]] = []
        self.models: list[ConnectServerEvent] = []

    async def next(self, within: float = 15) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.connection.recv_bytes(), within)
        event: dict[str, Any] = json.loads(raw)
        self.models.append(validate_live_event(event))
        self.events.append(event)
        return event

    async def until(self, type_: str, within: float = 15) -> list[dict[str, Any]]:
        seen = []
        async with asyncio.timeout(within):
            while True:
                event = await self.next()
                seen.append(event)
                if event["type"] == type_:
                    return seen

    async def until_reply(self, fragment: str, within: float = 15) -> list[dict[str, Any]]:
        """Events until the assistant's output ends with `fragment` (and its usage update)."""
        seen: list[dict[str, Any]] = []
        said = ""
        async with asyncio.timeout(within):
            while not said.endswith(fragment):
                event = await self.next()
                seen.append(event)
                if event["type"] == "session.output_transcript.delta":
                    said += event["delta"]
            seen += await self.until("session.usage.updated")
        return seen


@pytest.fixture
async def client(emulator: EmulatorServer) -> AsyncIterator[AsyncOpenAI]:
    # Closed on the test's own loop: left to the garbage collector, its connections would be
    # closed later on a loop that is gone (an asyncio error in whichever test runs then).
    api = AsyncOpenAI(base_url=emulator.api_base, api_key=emulator.api_key, max_retries=0)
    yield api
    await api.close()


@pytest.fixture
async def peers() -> AsyncIterator[list[BrowserPeer]]:
    opened: list[BrowserPeer] = []
    yield opened
    for peer in opened:
        await peer.close()


async def start(
    api: AsyncOpenAI, peers: list[BrowserPeer], /, **session: Any
) -> tuple[str, BrowserPeer]:
    peer = BrowserPeer()
    peers.append(peer)
    created = await api.live.create(
        session={"model": "gpt-live-1", **session},  # type: ignore[typeddict-item]
        transport={"type": "webrtc", "sdp": await peer.offer()},
    )
    await peer.accept(created.transport.sdp)
    return created.session.id, peer


def speak(emulator: EmulatorServer, session_id: str, text: str) -> dict[str, Any]:
    path = f"/_emulator/live/sessions/{session_id}/user-speech"
    answer: dict[str, Any] = emulator.control("POST", path, {"text": text})
    return answer


def fragments(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == f"session.{kind}_transcript.delta"]


async def grouped_turns(models: list[ConnectServerEvent]) -> list[tuple[str, str]]:
    """The turns the SDK's own grouper draws from these events."""
    closed: list[tuple[str, str]] = []
    grouper = AsyncTranscriptGrouper()

    @grouper.on("segment.closed")
    def on_closed(event: TranscriptSegmentClosedEvent) -> None:
        closed.append((event.segment.speaker, event.segment.text))

    for model in models:
        await grouper.push(model)  # type: ignore[arg-type]
    await grouper.close()
    return closed


async def test_create_and_attach_with_the_sdk_seeded_input_is_quoted_back(
    emulator: EmulatorServer, client: AsyncOpenAI, peers: list[BrowserPeer]
) -> None:
    session_id, peer = await start(client, peers, instructions="Be brief.", input=HISTORY)
    greeting = await asyncio.wait_for(peer.events.get(), 15)

    async with client.live.sideband.connect(session_id=session_id) as connection:
        sideband = LiveSideband(connection)
        started = await sideband.next()
        speak(emulator, session_id, "Can you remind me what my name is?")
        events = await sideband.until_reply('"My name is Ada.".')

    assert session_id.startswith("live_u1_")
    assert greeting["type"] == "session.started"
    assert started["type"] == "session.started"
    assert started["session"]["id"] == session_id
    assert started["session"]["input"] == HISTORY
    assert started["session"]["instructions"] == "Be brief."
    user = fragments(events, "input")
    assistant = fragments(events, "output")
    assert "".join(e["delta"] for e in user) == "Can you remind me what my name is?"
    assert "".join(e["delta"] for e in assistant) == 'You told me: "My name is Ada.".'
    assert all(e["end_ms"] - e["start_ms"] == 200 for e in user + assistant)
    assert all(e["start_ms"] % 200 == 0 for e in user + assistant)
    assert assistant[0]["start_ms"] == user[-1]["end_ms"] + 400
    assert await grouped_turns(sideband.models) == [
        ("user", "Can you remind me what my name is?"),
        ("assistant", 'You told me: "My name is Ada.".'),
    ]


async def test_data_channel_events_validate_and_follow_the_allow_list(
    emulator: EmulatorServer, client: AsyncOpenAI, peers: list[BrowserPeer]
) -> None:
    open_id, open_peer = await start(client, peers)
    closed_id, closed_peer = await start(
        client,
        peers,
        client={"data_channel": {"allowed_client_events": [], "allowed_server_events": []}},
    )

    speak(emulator, open_id, "Hello there")
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(15):
        while not (seen and seen[-1]["type"] == "session.usage.updated"):
            seen.append(await open_peer.events.get())
    closed_peer.send({"type": "session.close"})
    error = await asyncio.wait_for(closed_peer.events.get(), 15)

    for event in seen:
        validate_live_event(event)
    assert seen[0]["type"] == "session.started"
    assert {"session.input_audio.append", "session.output_audio.delta"}.isdisjoint(
        e["type"] for e in seen
    )
    assert "".join(e["delta"] for e in fragments(seen, "output")) == 'You said: "Hello there".'
    # The closed channel saw nothing, not even session.started; its command was refused.
    assert error["type"] == "error"
    assert error["error"]["code"] == "client_event_not_allowed"
    detail = emulator.control("GET", f"/_emulator/live/sessions/{closed_id}")
    assert detail["status"] == "active"


async def test_interruption_overlaps_both_speakers_and_keeps_both_in_order(
    emulator: EmulatorServer, client: AsyncOpenAI, peers: list[BrowserPeer]
) -> None:
    session_id, _ = await start(client, peers)
    emulator.control("POST", "/_emulator/settings", {"pace_s": 0.05})

    async with client.live.sideband.connect(session_id=session_id) as connection:
        sideband = LiveSideband(connection)
        await sideband.next()
        speak(emulator, session_id, "Tell me a long story about the sea and the ships")
        for _ in range(3):
            await sideband.until("session.output_transcript.delta")
        interrupted = speak(emulator, session_id, "Stop please")
        await sideband.until_reply('"Stop please".')

    assert interrupted == {"interrupted": True}
    user = fragments(sideband.events, "input")
    assistant = fragments(sideband.events, "output")
    stop = user[-2]  # "Stop"
    overlap = [e for e in assistant if e["start_ms"] == stop["start_ms"]]
    assert len(overlap) == 1  # one more word, in the window of the user's first
    first_reply = "".join(e["delta"] for e in assistant if e["start_ms"] <= stop["start_ms"])
    full_reply = 'You said: "Tell me a long story about the sea and the ships".'
    assert full_reply.startswith(first_reply)
    assert first_reply.endswith(overlap[0]["delta"])
    assert len(first_reply) < len(full_reply)  # cut short
    turns = await grouped_turns(sideband.models)
    # Both speakers' words are all kept, each speaker's in order (the SDK's grouper decides
    # where the overlapping word goes).
    assert "".join(t for speaker, t in turns if speaker == "user") == "".join(
        e["delta"] for e in user
    )
    assert "".join(t for speaker, t in turns if speaker == "assistant") == "".join(
        e["delta"] for e in assistant
    )
    assert turns[0] == ("user", "Tell me a long story about the sea and the ships")
    assert ("user", "Stop please") in turns


async def test_commentary_gets_an_answer_without_a_user_transcript(
    emulator: EmulatorServer, client: AsyncOpenAI, peers: list[BrowserPeer]
) -> None:
    session_id, _ = await start(client, peers)

    async with client.live.sideband.connect(session_id=session_id) as connection:
        sideband = LiveSideband(connection)
        await sideband.next()
        await connection.send(
            {
                "type": "session.commentary.append",
                "delegation_id": None,
                "content": "The package arrives on Friday.",
            }
        )
        events = await sideband.until_reply('"The package arrives on Friday.".')

    assert events[0]["type"] == "session.commentary.appended"
    assert events[0]["start_ms"] == events[0]["end_ms"]
    assert fragments(events, "input") == []
    assert sum(e["type"] == "session.output_audio.delta" for e in events) == len(
        fragments(events, "output")
    )


async def test_hangup_closes_with_a_reason_then_404s(
    client: AsyncOpenAI, peers: list[BrowserPeer]
) -> None:
    session_id, peer = await start(client, peers)

    async with client.live.sideband.connect(session_id=session_id) as connection:
        sideband = LiveSideband(connection)
        await sideband.next()
        await client.live.sessions.hangup(session_id)
        closed = (await sideband.until("session.closed"))[-1]
    with pytest.raises(openai.NotFoundError) as second:
        await client.live.sessions.hangup(session_id)
    await asyncio.wait_for(peer.channel_closed.wait(), 15)

    assert closed["reason"] == "close_requested"
    assert closed["session"]["id"] == session_id
    assert set(closed["usage"]) == {"seconds"}
    assert second.value.status_code == 404
    assert second.value.code == "session_id_not_found"


@pytest.mark.parametrize("reason", ["expired", "content", "remote_hangup", "connection_lost"])
async def test_session_closed_carries_each_reason(
    emulator: EmulatorServer, client: AsyncOpenAI, peers: list[BrowserPeer], reason: str
) -> None:
    session_id, _ = await start(client, peers)

    async with client.live.sideband.connect(session_id=session_id) as connection:
        sideband = LiveSideband(connection)
        await sideband.next()
        path = f"/_emulator/live/sessions/{session_id}/close"
        emulator.control("POST", path, {"reason": reason})
        closed = (await sideband.until("session.closed"))[-1]

    assert closed["reason"] == reason


async def test_a_session_expires_at_its_deadline(
    emulator: EmulatorServer, client: AsyncOpenAI, peers: list[BrowserPeer]
) -> None:
    emulator.control("POST", "/_emulator/settings", {"live_max_session_s": 1.5})
    session_id, _ = await start(client, peers)

    async with client.live.sideband.connect(session_id=session_id) as connection:
        sideband = LiveSideband(connection)
        started = await sideband.next()
        closed = (await sideband.until("session.closed", within=10))[-1]

    assert closed["reason"] == "expired"
    assert started["session"]["expires_at"] == closed["session"]["expires_at"]


async def test_a_stored_session_forks_with_its_conversation(
    emulator: EmulatorServer, client: AsyncOpenAI, peers: list[BrowserPeer]
) -> None:
    session_id, _ = await start(client, peers, store=True, input=HISTORY)
    await client.live.sessions.hangup(session_id)
    peer = BrowserPeer()
    peers.append(peer)

    forked = await client.live.sessions.fork(
        session_id, transport={"type": "webrtc", "sdp": await peer.offer()}
    )
    await peer.accept(forked.transport.sdp)
    async with client.live.sideband.connect(session_id=forked.session.id) as connection:
        sideband = LiveSideband(connection)
        started = await sideband.next()
        speak(emulator, forked.session.id, "Do you remember my name?")
        events = await sideband.until_reply('"My name is Ada.".')

    assert forked.session.id != session_id
    assert started["session"]["input"] == []
    assert started["session"]["store"] is True
    said = "".join(e["delta"] for e in fragments(events, "output"))
    assert said == 'You told me: "My name is Ada.".'


async def test_an_unstored_session_cannot_be_forked(
    client: AsyncOpenAI, peers: list[BrowserPeer]
) -> None:
    session_id, _ = await start(client, peers)
    peer = BrowserPeer()
    peers.append(peer)

    with pytest.raises(openai.BadRequestError) as refused:
        await client.live.sessions.fork(
            session_id, transport={"type": "webrtc", "sdp": await peer.offer()}
        )

    assert refused.value.code == "session_not_stored"


@pytest.mark.parametrize(
    ("session", "param", "code"),
    [
        ({"model": "gpt-live-1", "voice": "marin"}, "session.voice", "unknown_parameter"),
        ({"instructions": "Hi"}, "session.model", "missing_required_parameter"),
        ({"model": "gpt-realtime"}, "session.model", "invalid_value"),
        (
            {"model": "gpt-live-1", "input": [HISTORY[0]] * 129},
            "session.input",
            "array_above_max_length",
        ),
        (
            {
                "model": "gpt-live-1",
                "input": [
                    {"role": "user", "content": [{"type": "input_text", "text": "x" * 40_000}]}
                ],
            },
            "session.input",
            "input_too_long",
        ),
        (
            {"model": "gpt-live-1", "input": [{"role": "tool", "content": []}]},
            "session.input[0].role",
            "invalid_value",
        ),
    ],
)
async def test_create_refuses_a_bad_session_naming_the_field(
    emulator: EmulatorServer,
    client: AsyncOpenAI,
    peers: list[BrowserPeer],
    session: dict[str, Any],
    param: str,
    code: str,
) -> None:
    peer = BrowserPeer()
    peers.append(peer)
    before = emulator.control("GET", "/_emulator/live/sessions")["sessions"]

    with pytest.raises(openai.BadRequestError) as refused:
        await client.live.create(
            session=session,  # type: ignore[arg-type]
            transport={"type": "webrtc", "sdp": await peer.offer()},
        )

    assert (refused.value.body["param"], refused.value.code) == (param, code)  # type: ignore[index]
    assert emulator.control("GET", "/_emulator/live/sessions")["sessions"] == before


async def test_attach_needs_the_api_key_and_a_live_session(
    emulator: EmulatorServer, client: AsyncOpenAI
) -> None:
    wrong_key = AsyncOpenAI(base_url=emulator.api_base, api_key="sk-wrong", max_retries=0)

    with pytest.raises(Exception, match="401"):
        async with wrong_key.live.sideband.connect(session_id="live_u1_nope"):
            pass
    with pytest.raises(Exception, match="404"):
        async with client.live.sideband.connect(session_id="live_u1_nope"):
            pass


async def test_fault_knobs_fail_create_and_block_sidebands(
    emulator: EmulatorServer, client: AsyncOpenAI, peers: list[BrowserPeer]
) -> None:
    emulator.control("POST", "/_emulator/faults", {"endpoint": "live_sessions", "status": 503})
    peer = BrowserPeer()
    peers.append(peer)
    with pytest.raises(openai.APIStatusError) as failed:
        await client.live.create(
            session={"model": "gpt-live-1"},
            transport={"type": "webrtc", "sdp": await peer.offer()},
        )
    session_id, _ = await start(client, peers)

    async with client.live.sideband.connect(session_id=session_id) as connection:
        sideband = LiveSideband(connection)
        await sideband.next()
        path = f"/_emulator/live/sessions/{session_id}/drop-sidebands"
        dropped = emulator.control("POST", path, {"block": True})
        with pytest.raises(Exception):  # noqa: B017,PT011 - the SDK surfaces the drop as-is
            await sideband.next()
    with pytest.raises(Exception, match="503"):
        async with client.live.sideband.connect(session_id=session_id):
            pass
    emulator.control("POST", f"/_emulator/live/sessions/{session_id}/unblock-sidebands")
    async with client.live.sideband.connect(session_id=session_id) as connection:
        again = await LiveSideband(connection).next()

    assert failed.value.status_code == 503
    assert dropped == {"dropped": 1, "blocked": True}
    assert again["type"] == "session.started"


async def test_spoken_audio_on_webrtc_is_transcribed_and_reflected_to_the_sideband(
    client: AsyncOpenAI, peers: list[BrowserPeer]
) -> None:
    session_id, peer = await start(client, peers)

    async with client.live.sideband.connect(session_id=session_id) as connection:
        sideband = LiveSideband(connection)
        await sideband.next()
        peer.mic.burst(1.0)
        events = await sideband.until_reply('about 1 second.".', within=30)
    await asyncio.wait_for(peer.heard_tone.wait(), 15)

    said = "".join(e["delta"] for e in fragments(events, "input"))
    assert said == "Spoken turn 1, about 1 second."
    reflected = [e for e in events if e["type"] == "session.input_audio.append"]
    assert reflected
    assert all(len(e["audio"]) == 12_800 for e in reflected)  # 200 ms, 24 kHz PCM16, base64
