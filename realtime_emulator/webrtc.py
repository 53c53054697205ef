"""WebRTC calls through aiortc: the SDP answer, the `oai-events` data channel, the received
audio track (fed to the VAD) and the assistant's audio track (silence, a tone while it speaks).
"""

from __future__ import annotations

import array
import asyncio
import fractions
import logging
import math
import time
from collections.abc import Callable
from typing import Any, Protocol

import aioice.ice
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.codecs.opus import OpusEncoder
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, Packet

from .audio_input import SpeechTurn
from .engine import Call
from .vad import EnergyVad

log = logging.getLogger(__name__)

EVENTS_CHANNEL = "oai-events"
SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms
TONE_HZ = 600  # 12 whole periods per frame: frames join without clicks
TONE_AMPLITUDE = 0.25
SEMANTIC_VADSILENCE_MS = 500


def _peer_gone_error(context: dict[str, Any]) -> bool:
    """aiortc's fire-and-forget SCTP tasks (e.g. `_transmit_reconfig`, closing a data channel)
    fail with ConnectionError once the peer's DTLS is gone: a browser that closed or crashed
    without hanging up. Expected, and nothing awaits them, so asyncio would print a traceback."""
    error = context.get("exception")
    task = context.get("future")
    coro = getattr(task, "get_coro", lambda: None)()
    module = getattr(getattr(coro, "cr_code", None), "co_filename", "")
    return isinstance(error, ConnectionError) and "aiortc" in module


def quiet_peer_gone_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Log aiortc's unretrieved peer-gone errors at DEBUG; anything else as asyncio would."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if _peer_gone_error(context):
            log.debug("peer gone: %s", context.get("exception"))
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handle)


def include_loopback_candidates() -> None:
    """Offer 127.0.0.1 as an ICE host candidate too (aioice skips loopback by default), so
    calls connect on a machine whose only interface is loopback. Idempotent."""
    original = aioice.ice.get_host_addresses
    if getattr(original, "_emulator_loopback", False):
        return

    def with_loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = original(use_ipv4, use_ipv6)
        if use_ipv4 and "127.0.0.1" not in addresses:
            addresses.append("127.0.0.1")
        return addresses

    with_loopback._emulator_loopback = True  # type: ignore[attr-defined]
    aioice.ice.get_host_addresses = with_loopback


_closing: set[asyncio.Task[None]] = set()


async def drain_closing() -> None:
    """Wait for peer connections still closing (server shutdown)."""
    if _closing:
        await asyncio.gather(*_closing, return_exceptions=True)


def pcm_frame(amplitude: float, hz: float = TONE_HZ) -> bytes:
    """One frame of a sine (16-bit mono PCM)."""
    samples = array.array(
        "h",
        (
            round(amplitude * 32767 * math.sin(2 * math.pi * hz * n / SAMPLE_RATE))
            for n in range(FRAME_SAMPLES)
        ),
    )
    return samples.tobytes()


SILENCE = bytes(FRAME_SAMPLES * 2)
_TONE = pcm_frame(TONE_AMPLITUDE)


def audio_frame(pcm: bytes, pts: int) -> AudioFrame:
    frame = AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
    frame.planes[0].update(pcm)
    frame.pts = pts
    frame.sample_rate = SAMPLE_RATE
    frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
    return frame


class PacedAudioTrack(MediaStreamTrack):
    """An audio track handing out one frame per frame of real time (20 ms)."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._start: float | None = None
        self._timestamp = 0

    async def next_frame_pts(self) -> int:
        """Wait until the next frame is due; its timestamp, in samples."""
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._timestamp += FRAME_SAMPLES
            wait = self._start + self._timestamp / SAMPLE_RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        return self._timestamp


_OPUS: dict[bytes, bytes] = {}


def _opus_packet(pcm: bytes) -> bytes:
    """One 20 ms Opus packet of `pcm` repeated, encoded once per process (the encoder's
    steady state: the last of a few frames)."""
    packet = _OPUS.get(pcm)
    if packet is None:
        encoder = OpusEncoder()
        packet = b""
        for index in range(8):
            payloads, _ = encoder.encode(audio_frame(pcm, index * FRAME_SAMPLES))
            if payloads:
                packet = payloads[-1]
        _OPUS[pcm] = packet
    return packet


class Speaker(Protocol):
    """What the voice track asks of a call (Realtime) or a Live session."""

    @property
    def speaking(self) -> bool: ...


class AssistantVoiceTrack(PacedAudioTrack):
    """The audio the call sends back: a tone while the assistant speaks, else silence.

    With Opus negotiated (every browser offers it), the track hands aiortc pre-encoded packets:
    no resampling or encoding per frame, which is most of a call's CPU otherwise.
    """

    def __init__(self, call: Speaker, *, pre_encoded: bool) -> None:
        super().__init__()
        self.call = call
        self.pre_encoded = pre_encoded

    async def recv(self) -> AudioFrame | Packet:
        pts = await self.next_frame_pts()
        pcm = _TONE if self.call.speaking else SILENCE
        if not self.pre_encoded:
            return audio_frame(pcm, pts)
        packet = Packet(_opus_packet(pcm))
        packet.pts = pts
        packet.time_base = fractions.Fraction(1, SAMPLE_RATE)
        return packet


class DataChannelSubscriber:
    kind = "datachannel"

    def __init__(self, channel: Any) -> None:
        self.channel = channel

    def deliver(self, payload: str) -> None:
        if self.channel.readyState == "open":
            self.channel.send(payload)

    def close(self, code: int, reason: str) -> None:
        self.channel.close()


def _configure_vad(vad: EnergyVad, call: Call) -> None:
    detection = call.session["audio"]["input"]["turn_detection"]
    if detection is None:
        return
    if detection["type"] == "server_vad":
        vad.silence_ms = detection["silence_duration_ms"]
        vad.prefix_padding_ms = detection["prefix_padding_ms"]
    else:
        vad.silence_ms = SEMANTIC_VADSILENCE_MS


async def _listen(call: Call, track: MediaStreamTrack) -> None:
    """Run the user's audio through the VAD; detected turns go to the call's audio input."""
    vad = EnergyVad()
    turn: SpeechTurn | None = None
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if not isinstance(frame, AudioFrame) or frame.sample_rate is None:
            continue
        _configure_vad(vad, call)
        channels = len(frame.layout.channels)
        pcm = memoryview(frame.planes[0])[: frame.samples * channels * 2]
        event = vad.feed(pcm, duration_ms=frame.samples * 1000 / frame.sample_rate)
        if event is None or call.status == "ended":
            continue
        if event.kind == "started":
            turn = call.audio.vad_started(event.audio_ms)
        else:
            call.audio.vad_stopped(turn, event.audio_ms, event.speech_ms)
            turn = None


async def negotiate(
    offer_sdp: str,
    *,
    speaker: Speaker,
    on_channel: Callable[[Any], None],
    on_audio: Callable[[MediaStreamTrack], object],
    on_state: Callable[[str], None],
) -> tuple[str, Callable[[], None]]:
    """Answer a browser's offer with the assistant's voice track: (answer SDP, close).

    `on_channel` gets the `oai-events` data channel, `on_audio` the caller's audio track,
    `on_state` the connection's state on each change; `close` stops the track and closes the
    peer connection in the background (drained at shutdown).
    """
    pc = RTCPeerConnection()
    opus = "opus/48000" in offer_sdp.lower()
    voice = AssistantVoiceTrack(speaker, pre_encoded=opus)

    @pc.on("datachannel")
    def on_datachannel(channel: Any) -> None:
        if channel.label == EVENTS_CHANNEL:
            on_channel(channel)

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            on_audio(track)

    @pc.on("connectionstatechange")
    async def on_connection_state() -> None:
        on_state(pc.connectionState)

    def close() -> None:
        voice.stop()
        task = asyncio.get_running_loop().create_task(pc.close())
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        sender = pc.addTrack(voice)
        if opus:
            # Pre-encoded packets need Opus to be the codec the answer picks.
            preferred = [
                c
                for c in RTCRtpSender.getCapabilities("audio").codecs
                if c.mimeType == "audio/opus"
            ]
            for transceiver in pc.getTransceivers():
                if transceiver.sender is sender:
                    transceiver.setCodecPreferences(preferred)
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
    except Exception:
        close()
        raise
    return str(pc.localDescription.sdp), close


async def answer_offer(call: Call, offer_sdp: str) -> str:
    """Negotiate the browser's offer; the call lives until hangup, expiry or disconnect."""

    def on_channel(channel: Any) -> None:
        subscriber = DataChannelSubscriber(channel)
        # A WebRTC client's first event is session.created.
        call.send_to(subscriber, "session.created", session=call.session)
        call.subscribe(subscriber)

        @channel.on("message")
        def on_message(message: str | bytes) -> None:
            call.handle_client_message(message, subscriber)

        @channel.on("close")
        def on_close() -> None:
            call.unsubscribe(subscriber)

    def on_state(state: str) -> None:
        if state not in ("failed", "closed"):
            return
        if call.settings.browser_gone == "ends_call":
            call.end("webrtc_disconnected")
        else:
            # As OpenAI (public reports): the call goes on without its browser, and nothing
            # tells a sideband; only the media stops.
            close()

    answer, close = await negotiate(
        offer_sdp,
        speaker=call,
        on_channel=on_channel,
        on_audio=lambda track: call.spawn(_listen(call, track)),
        on_state=on_state,
    )
    call.on_end.append(close)
    return answer
