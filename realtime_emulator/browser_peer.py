"""A browser-like WebRTC peer (aiortc) for tests and benchmarks: the SDP exchange with an
ephemeral key, the `oai-events` data channel, and a microphone track that sends silence or, on
demand, a sine burst loud enough for the emulator's VAD. Imports aiortc: test-side only."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from .vad import rms_s16
from .webrtc import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    SILENCE,
    PacedAudioTrack,
    audio_frame,
    include_loopback_candidates,
    pcm_frame,
)

_SINE = pcm_frame(0.5, hz=440.0)
LOUD_RMS = 1000.0


class Microphone(PacedAudioTrack):
    """Real-time paced frames: silence, except while `loud_frames` remain (a sine burst)."""

    def __init__(self) -> None:
        super().__init__()
        self.loud_frames = 0

    def burst(self, seconds: float) -> None:
        self.loud_frames = round(seconds * SAMPLE_RATE / FRAME_SAMPLES)

    async def recv(self) -> AudioFrame:
        pts = await self.next_frame_pts()
        loud = self.loud_frames > 0
        if loud:
            self.loud_frames -= 1
        return audio_frame(_SINE if loud else SILENCE, pts)


class BrowserPeer:
    """One WebRTC call as a browser makes it; events of the data channel land in `events`."""

    def __init__(self) -> None:
        include_loopback_candidates()
        self.pc = RTCPeerConnection()
        self.mic = Microphone()
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.channel: Any = None
        self.call_id: str | None = None
        self.received_audio_frames = 0
        self.heard_tone = asyncio.Event()
        self.channel_closed = asyncio.Event()
        self._opened = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def offer(self) -> str:
        """The microphone and the `oai-events` channel set up: the SDP offer to send."""
        self.pc.addTrack(self.mic)
        self.channel = self.pc.createDataChannel("oai-events")

        @self.channel.on("open")
        def on_open() -> None:
            self._opened.set()

        @self.channel.on("close")
        def on_close() -> None:
            self.channel_closed.set()

        @self.channel.on("message")
        def on_message(message: str) -> None:
            self.events.put_nowait(json.loads(message))

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._tasks.append(asyncio.get_running_loop().create_task(self._drain(track)))

        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)
        return str(self.pc.localDescription.sdp)

    async def accept(self, answer_sdp: str) -> None:
        """Apply the answer and wait for the data channel to open."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
        await asyncio.wait_for(self._opened.wait(), timeout=15)

    async def connect(self, api_base: str, client_secret: str) -> aiohttp.ClientResponse:
        """A Realtime call: the offer to `/realtime/calls` with an ephemeral key."""
        sdp = await self.offer()
        async with aiohttp.ClientSession() as http:
            response = await http.post(
                f"{api_base}/realtime/calls",
                data=sdp,
                headers={
                    "Authorization": f"Bearer {client_secret}",
                    "Content-Type": "application/sdp",
                },
            )
            answer = await response.text()
        if response.status == 201:
            self.call_id = response.headers["Location"].rsplit("/", 1)[-1]
            await self.accept(answer)
        return response

    async def _drain(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self.received_audio_frames += 1
            if isinstance(frame, AudioFrame):
                pcm = memoryview(frame.planes[0])[: frame.samples * len(frame.layout.channels) * 2]
                if rms_s16(pcm) > LOUD_RMS:
                    self.heard_tone.set()

    def send(self, event: dict[str, Any]) -> None:
        self.channel.send(json.dumps(event))

    async def close(self) -> None:
        self.mic.stop()
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
