"""A call's user audio: VAD-detected and simulated spoken turns, and their late transcripts.

Order, as the recorded sessions show: `input_audio_buffer.speech_started`, (streaming
transcription deltas), `speech_stopped`, `committed`, the user item (`input_audio`, transcript
null) added/done, the automatic `response.created`, then — after the response has started —
the remaining `conversation.item.input_audio_transcription.delta`s and `.completed` (or
`.failed`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .assistant import speech_ms_for, split_deltas, spoken_transcript
from .config import TranscriptionMode
from .errors import ApiError
from .ids import new_id
from .session import transcription_enabled, turn_detection

if TYPE_CHECKING:
    from .engine import Call


class SpokenTurn:
    """What the emulated speaker said, known before its transcript is sent."""

    __slots__ = ("mode", "speech_ms", "transcript")

    def __init__(self, transcript: str, mode: TranscriptionMode | None, speech_ms: int) -> None:
        self.transcript = transcript
        self.mode = mode  # None: transcription off
        self.speech_ms = speech_ms

    @property
    def heard_text(self) -> str | None:
        """The text the assistant quotes: only a turn whose transcript will arrive."""
        return self.transcript if self.mode == "completed" else None


class SpeechTurn:
    """A spoken turn between speech_started and speech_stopped."""

    __slots__ = ("item_id", "mode", "sent", "streamer")

    def __init__(self, item_id: str, mode: TranscriptionMode | None) -> None:
        self.item_id = item_id
        self.mode = mode
        self.sent = 0  # transcription deltas already streamed
        self.streamer: asyncio.Task[None] | None = None


def _obfuscation(delta: str) -> str:
    return "x" * max(4, 16 - len(delta))


class AudioInput:
    def __init__(self, call: Call) -> None:
        self.call = call
        self.spoken: dict[str, SpokenTurn] = {}
        self.detected_turns = 0  # turns found by the VAD (or committed manually)
        self.busy = 0  # simulated turns in progress
        self.manual_speech_ms = 0
        self.position_ms = 0

    def now_ms(self) -> int:
        elapsed = round((asyncio.get_running_loop().time() - self.call.started) * 1000)
        return max(elapsed, self.position_ms)

    def _mode(self, requested: TranscriptionMode | None) -> TranscriptionMode | None:
        if not transcription_enabled(self.call.session):
            return None
        return requested or self.call.settings.transcription

    def speech_started(self, item_id: str, audio_start_ms: int) -> None:
        self.position_ms = max(self.position_ms, audio_start_ms)
        self.call.emit(
            "input_audio_buffer.speech_started", audio_start_ms=audio_start_ms, item_id=item_id
        )
        detection = turn_detection(self.call.session)
        if detection is not None and detection.get("interrupt_response", True):
            self.call.interrupt("turn_detected")

    def commit(
        self,
        item_id: str,
        *,
        transcript: str,
        speech_ms: int,
        audio_end_ms: int | None = None,
        mode: TranscriptionMode | None = None,
        pending_deltas: list[str] | None = None,
        auto_response: bool = True,
    ) -> None:
        call = self.call
        if audio_end_ms is not None:
            self.position_ms = max(self.position_ms, audio_end_ms)
            call.emit(
                "input_audio_buffer.speech_stopped", audio_end_ms=audio_end_ms, item_id=item_id
            )
        effective = mode  # already resolved: None = transcription off
        call.emit(
            "input_audio_buffer.committed",
            previous_item_id=call.conversation.last_id(),
            item_id=item_id,
        )
        item = {
            "id": item_id,
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        self.spoken[item_id] = SpokenTurn(transcript, effective, speech_ms)
        call.add_item(item)
        detection = turn_detection(call.session)
        if (
            auto_response
            and detection is not None
            and detection.get("create_response", True)
            and call.active_response is None
        ):
            call.create_response({})
        if effective is not None:
            deltas = split_deltas(transcript, 1) if pending_deltas is None else pending_deltas
            call.spawn(self._transcribe(item, transcript, effective, deltas, speech_ms))

    async def _transcribe(
        self,
        item: dict[str, Any],
        transcript: str,
        mode: TranscriptionMode,
        deltas: list[str],
        speech_ms: int,
    ) -> None:
        # The response (if any) was created synchronously in `commit`: this lands after it.
        await asyncio.sleep(self.call.settings.transcription_delay_s)
        item_id = item["id"]
        if mode == "never":
            return
        if mode == "failed":
            self.call.emit(
                "conversation.item.input_audio_transcription.failed",
                item_id=item_id,
                content_index=0,
                error={
                    "type": "server_error",
                    "code": "transcription_failed",
                    "message": f"Input transcription failed for item '{item_id}'.",
                    "param": None,
                },
            )
            return
        for delta in deltas:
            self._emit_delta(item_id, delta)
        item["content"][0]["transcript"] = transcript
        self.call.emit(
            "conversation.item.input_audio_transcription.completed",
            item_id=item_id,
            content_index=0,
            transcript=transcript,
            usage={"type": "duration", "seconds": max(1, round(speech_ms / 1000))},
        )

    # -- turns in progress: speech_started .. speech_stopped -----------------------------------

    def _begin(
        self, item_id: str, audio_start_ms: int, prefix: list[str], mode: TranscriptionMode | None
    ) -> SpeechTurn:
        """speech_started; while the user speaks, `prefix` streams as transcription deltas."""
        turn = SpeechTurn(item_id, self._mode(mode))
        self.speech_started(item_id, audio_start_ms)
        if turn.mode == "completed" and prefix:
            turn.streamer = self.call.spawn(self._stream_prefix(turn, prefix))
        return turn

    async def _stream_prefix(self, turn: SpeechTurn, prefix: list[str]) -> None:
        for word in prefix:
            await asyncio.sleep(self.call.pace_s)
            self._emit_delta(turn.item_id, word)
            turn.sent += 1

    def _emit_delta(self, item_id: str, delta: str) -> None:
        self.call.emit(
            "conversation.item.input_audio_transcription.delta",
            item_id=item_id,
            content_index=0,
            delta=delta,
            obfuscation=_obfuscation(delta),
        )

    def _end(self, turn: SpeechTurn, transcript: str, speech_ms: int, audio_end_ms: int) -> None:
        """speech_stopped and the commit; the transcript's remaining words come later."""
        if turn.streamer is not None:
            turn.streamer.cancel()
        words = split_deltas(transcript, 1)
        pending = words[turn.sent :] if turn.mode == "completed" else words
        self.commit(
            turn.item_id,
            transcript=transcript,
            speech_ms=speech_ms,
            audio_end_ms=audio_end_ms,
            mode=turn.mode,
            pending_deltas=pending,
        )

    # -- simulated speech (control API, synthetic calls) ---------------------------------------

    def simulate(self, transcript: str, mode: TranscriptionMode | None = None) -> str:
        item_id = new_id("item")
        self.busy += 1
        self.call.update_idle()
        self.call.spawn(self._simulated_speech(item_id, transcript, mode))
        return item_id

    async def _simulated_speech(
        self, item_id: str, transcript: str, mode: TranscriptionMode | None
    ) -> None:
        try:
            start = self.now_ms()
            words = split_deltas(transcript, 1)
            # Streaming transcription: the first half of the words arrive while the user speaks.
            prefix = words[: len(words) // 2]
            turn = self._begin(item_id, start, prefix, mode)
            if turn.streamer is not None:
                await asyncio.wait({turn.streamer})
            await asyncio.sleep(self.call.pace_s)
            speech_ms = speech_ms_for(transcript)
            detection = turn_detection(self.call.session) or {}
            silence = int(detection.get("silence_duration_ms", 200))
            self._end(turn, transcript, speech_ms, start + speech_ms + silence)
        finally:
            self.busy -= 1
            self.call.update_idle()

    # -- real audio (WebRTC VAD) ---------------------------------------------------------------

    def vad_started(self, audio_start_ms: int) -> SpeechTurn | None:
        """Speech detected on the media track; None with turn detection off (manual commit)."""
        if turn_detection(self.call.session) is None:
            return None
        number = self.detected_turns + 1
        # The transcript's first words ("Spoken turn <n>,") are known before the speech ends.
        prefix = split_deltas(spoken_transcript(number, 1000), 1)[:3]
        return self._begin(new_id("item"), audio_start_ms, prefix, None)

    def vad_stopped(self, turn: SpeechTurn | None, audio_end_ms: int, speech_ms: int) -> None:
        if turn is None or turn_detection(self.call.session) is None:
            self.manual_speech_ms += speech_ms
            return
        self.detected_turns += 1
        self._end(turn, spoken_transcript(self.detected_turns, speech_ms), speech_ms, audio_end_ms)

    def commit_manual(self) -> None:
        """`input_audio_buffer.commit` with turn detection off: the speech heard since."""
        if self.manual_speech_ms <= 0:
            raise ApiError(
                "Error committing input audio buffer: buffer too small. Expected at least 100ms "
                "of audio, but buffer only has 0.00ms of audio.",
                code="input_audio_buffer_commit_empty",
            )
        speech_ms, self.manual_speech_ms = self.manual_speech_ms, 0
        self.detected_turns += 1
        self.commit(
            new_id("item"),
            transcript=spoken_transcript(self.detected_turns, speech_ms),
            speech_ms=speech_ms,
            mode=self._mode(None),
            auto_response=False,
        )
