"""A Live session's WebRTC side: the same negotiation and voice track as a Realtime call
(`webrtc.negotiate`), with Live's own data channel greeting and listener.

The caller's audio goes through the energy VAD: speech starting interrupts a speaking
assistant, speech stopping is a user turn whose transcript is `Spoken turn <n>, about <s>
second(s).` (the Realtime rule). Attached sidebands also get the audio itself, reflected as
`session.input_audio.append` (mono PCM16LE at 24 kHz, one event per 200 ms).
"""

from __future__ import annotations

from typing import Any

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from .assistant import spoken_transcript
from .live_session import WINDOW_MS, LiveSession
from .vad import EnergyVad
from .webrtc import DataChannelSubscriber, negotiate

REFLECT_RATE = 24_000
_REFLECT_BYTES = REFLECT_RATE * WINDOW_MS // 1000 * 2


def _mono_24k(frame: AudioFrame) -> bytes:
    """The first channel of a PCM16 frame, decimated to 24 kHz (48 kHz in every browser)."""
    channels = len(frame.layout.channels)
    rate = frame.sample_rate or REFLECT_RATE
    step = channels * max(1, rate // REFLECT_RATE)
    samples = memoryview(frame.planes[0]).cast("B")[: frame.samples * channels * 2].cast("h")
    return samples[::step].tobytes()


async def _listen(session: LiveSession, track: MediaStreamTrack) -> None:
    vad = EnergyVad()
    reflected = bytearray()
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if not isinstance(frame, AudioFrame) or frame.sample_rate is None:
            continue
        if session.sideband_count:
            reflected += _mono_24k(frame)
            if len(reflected) >= _REFLECT_BYTES:
                session.reflect_input_audio(bytes(reflected[:_REFLECT_BYTES]))
                del reflected[:_REFLECT_BYTES]
        channels = len(frame.layout.channels)
        pcm = memoryview(frame.planes[0])[: frame.samples * channels * 2]
        event = vad.feed(pcm, duration_ms=frame.samples * 1000 / frame.sample_rate)
        if event is None or session.status == "ended":
            continue
        if event.kind == "started":
            session.user_interrupts()
        else:
            session.user_said(spoken_transcript(session.user_turns + 1, event.speech_ms))


async def answer_live_offer(session: LiveSession, offer_sdp: str) -> str:
    """Negotiate the browser's offer; the session lives until hangup, close or expiry."""

    def on_channel(channel: Any) -> None:
        subscriber = DataChannelSubscriber(channel)
        session.attach(subscriber)  # session.started first, as on a sideband

        @channel.on("message")
        def on_message(message: str | bytes) -> None:
            session.handle_client_message(message, subscriber)

        @channel.on("close")
        def on_close() -> None:
            session.detach(subscriber)

    def on_state(state: str) -> None:
        if state == "failed":
            session.close("connection_lost")
        elif state == "closed":
            session.close("remote_hangup")

    answer, close = await negotiate(
        offer_sdp,
        speaker=session,
        on_channel=on_channel,
        on_audio=lambda track: session.spawn(_listen(session, track)),
        on_state=on_state,
    )
    session.on_end.append(close)
    return answer
