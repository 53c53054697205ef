"""One model response: the GA event sequence, paced, cancellable at any await.

Event order follows the recorded sessions (`realtime-corpus/`): `response.created`,
`response.output_item.added`, `conversation.item.added`, `response.content_part.added`, deltas
(with `output_audio_buffer.started` after the first one), `response.output_audio.done`,
`response.output_audio_transcript.done`, `response.content_part.done`, `conversation.item.done`,
`response.output_item.done`, `response.done`, `rate_limits.updated`, `output_audio_buffer.stopped`.
Audio itself travels on the WebRTC track, so no `response.output_audio.delta` is sent (as on a
WebRTC call's data channel and sideband).
"""

from __future__ import annotations

import asyncio
import secrets
from typing import TYPE_CHECKING, Any

from .assistant import estimate_tokens, split_deltas
from .ids import new_id

if TYPE_CHECKING:
    from .engine import Call

_RATE_LIMIT_TOKENS = 15_000_000
_AUDIO_TOKENS_PER_WORD = 7


def _obfuscation(delta: str) -> str:
    """Padding OpenAI adds to deltas so their sizes leak nothing; length varies inversely."""
    return secrets.token_urlsafe(12)[: max(4, 16 - len(delta))]


class ResponseRun:
    def __init__(
        self,
        call: Call,
        *,
        reply: str,
        in_band: bool,
        modalities: list[str],
        audio_output: dict[str, Any],
        metadata: dict[str, str] | None,
        input_tokens: int,
        pace_s: float,
    ) -> None:
        self.call = call
        self.id = new_id("resp")
        self.reply = reply
        self.in_band = in_band
        self.audio = modalities == ["audio"]
        self.modalities = modalities
        self.audio_output = audio_output
        self.metadata = metadata
        self.input_tokens = input_tokens
        self.pace_s = pace_s
        self.deltas = split_deltas(reply)
        self.generated = ""
        self.item: dict[str, Any] | None = None
        self.finished = False
        self.audio_started_at: float | None = None
        self.task: asyncio.Task[None] | None = None

    # -- shapes --------------------------------------------------------------------------------

    def _response(self, status: str, details: dict[str, Any] | None, usage: Any) -> dict[str, Any]:
        return {
            "object": "realtime.response",
            "id": self.id,
            "status": status,
            "status_details": details,
            "output": [self.item] if self.item is not None and status != "in_progress" else [],
            "conversation_id": self.call.conversation_id if self.in_band else None,
            "output_modalities": self.modalities,
            "max_output_tokens": "inf",
            "audio": {"output": self.audio_output},
            "usage": usage,
            "metadata": self.metadata,
        }

    def _part(self) -> dict[str, Any]:
        if self.audio:
            return {"type": "audio", "transcript": self.generated}
        return {"type": "text", "text": self.generated}

    def _content(self) -> dict[str, Any]:
        if self.audio:
            return {"type": "output_audio", "transcript": self.generated}
        return {"type": "output_text", "text": self.generated}

    def _ids(self) -> dict[str, Any]:
        if self.item is None:
            raise RuntimeError("the response has no output item yet")
        return {
            "response_id": self.id,
            "item_id": self.item["id"],
            "output_index": 0,
            "content_index": 0,
        }

    def _usage(self) -> dict[str, Any]:
        text_tokens = estimate_tokens(self.generated)
        audio_tokens = len(self.generated.split()) * _AUDIO_TOKENS_PER_WORD if self.audio else 0
        output = text_tokens + audio_tokens
        return {
            "total_tokens": self.input_tokens + output,
            "input_tokens": self.input_tokens,
            "output_tokens": output,
            "input_token_details": {
                "text_tokens": self.input_tokens,
                "audio_tokens": 0,
                "image_tokens": 0,
                "cached_tokens": 0,
                "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
            },
            "output_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens},
        }

    # -- lifecycle -----------------------------------------------------------------------------

    def begin(self) -> None:
        self.call.emit("response.created", response=self._response("in_progress", None, None))
        self.task = self.call.spawn(self._stream())

    async def _stream(self) -> None:
        loop = asyncio.get_running_loop()
        base = loop.time()
        step = 1
        await asyncio.sleep(max(0.0, base + step * self.pace_s - loop.time()))
        self._open_item()
        for delta in self.deltas:
            step += 1
            await asyncio.sleep(max(0.0, base + step * self.pace_s - loop.time()))
            self._emit_delta(delta)
        step += 1
        await asyncio.sleep(max(0.0, base + step * self.pace_s - loop.time()))
        self.finish("completed")

    def _open_item(self) -> None:
        self.item = {
            "id": new_id("item"),
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        self.call.emit(
            "response.output_item.added", response_id=self.id, output_index=0, item=self.item
        )
        if self.in_band:
            previous = self.call.conversation.insert(self.item)
            self.call.emit("conversation.item.added", previous_item_id=previous, item=self.item)
        self.call.emit("response.content_part.added", **self._ids(), part=self._part())
        self.item["content"] = [self._content()]

    def _emit_delta(self, delta: str) -> None:
        self.generated += delta
        ids = self._ids()
        if self.item is not None:
            self.item["content"] = [self._content()]
        kind = (
            "response.output_audio_transcript.delta" if self.audio else "response.output_text.delta"
        )
        self.call.emit(kind, **ids, delta=delta, obfuscation=_obfuscation(delta))
        if self.audio and self.audio_started_at is None:
            self.audio_started_at = asyncio.get_running_loop().time()
            self.call.emit("output_audio_buffer.started", response_id=self.id)

    def finish(self, status: str, reason: str | None = None) -> None:
        """Close the response: `completed`, or `cancelled` with `reason` (interruption)."""
        if self.finished:
            return
        self.finished = True
        if self.task is not None and asyncio.current_task() is not self.task:
            self.task.cancel()
        call = self.call
        if self.item is not None:
            ids = self._ids()
            if self.audio:
                call.emit("response.output_audio.done", **ids)
                call.emit("response.output_audio_transcript.done", **ids, transcript=self.generated)
            else:
                call.emit("response.output_text.done", **ids, text=self.generated)
            call.emit("response.content_part.done", **ids, part=self._part())
            self.item["status"] = "completed" if status == "completed" else "incomplete"
            self.item["content"] = [self._content()]
            if self.in_band:
                previous = call.conversation.previous_id(self.item["id"])
                call.emit("conversation.item.done", previous_item_id=previous, item=self.item)
            call.emit(
                "response.output_item.done", response_id=self.id, output_index=0, item=self.item
            )
        details = None if status == "completed" else {"type": status, "reason": reason}
        call.emit("response.done", response=self._response(status, details, self._usage()))
        call.consume_tokens(self.input_tokens + estimate_tokens(self.generated))
        call.emit(
            "rate_limits.updated",
            rate_limits=[
                {
                    "name": "tokens",
                    "limit": _RATE_LIMIT_TOKENS,
                    "remaining": max(0, _RATE_LIMIT_TOKENS - call.tokens_used),
                    "reset_seconds": 0.002,
                }
            ],
        )
        if self.audio_started_at is not None:
            if status == "completed":
                call.emit("output_audio_buffer.stopped", response_id=self.id)
            else:
                call.emit("output_audio_buffer.cleared", response_id=self.id)
        if status != "completed" and self.audio and self.item is not None and self.in_band:
            played = 0.0
            if self.audio_started_at is not None:
                played = asyncio.get_running_loop().time() - self.audio_started_at
            call.emit(
                "conversation.item.truncated",
                item_id=self.item["id"],
                content_index=0,
                audio_end_ms=round(played * 1000),
            )
        call.response_finished(self)

    @property
    def speaking(self) -> bool:
        return self.audio_started_at is not None and not self.finished
