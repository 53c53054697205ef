"""The conversation engine: one per call, shared by its data channel and every sideband.

Subscribers (the WebRTC data channel, sideband sockets) receive every server event the call
emits from the moment they subscribe; client events from any of them go through
`handle_client_message`. All state changes happen on the event loop, synchronously, so the
order of emitted events is the order of state changes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal, Protocol

from .assistant import estimate_tokens, reply_text
from .audio_input import AudioInput
from .config import Settings, TranscriptionMode
from .conversation import Conversation, message_text, normalise_item
from .errors import ApiError, invalid_type, invalid_value
from .ids import new_id
from .responder import ResponseRun
from .session import apply_session_patch

log = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001


class Subscriber(Protocol):
    kind: str  # "datachannel" | "sideband"

    def deliver(self, payload: str) -> None: ...

    def close(self, code: int, reason: str) -> None: ...


class Call:
    def __init__(
        self,
        *,
        call_id: str,
        session: dict[str, Any],
        settings: Settings,
        secret: str | None,
        kind: Literal["webrtc", "synthetic"],
        max_session_s: float,
    ) -> None:
        self.id = call_id
        self.session = session
        self.settings = settings
        self.secret = secret
        self.kind = kind
        self.conversation_id = new_id("conv")
        self.conversation = Conversation()
        self.subscribers: list[Subscriber] = []
        self.status: Literal["active", "ended"] = "active"
        self.end_reason: str | None = None
        self.sidebands_blocked = False
        self.pace_override: float | None = None
        self.max_session_s = max_session_s
        self.tokens_used = 0
        self.active_response: ResponseRun | None = None
        self.last_response_id: str | None = None
        self.out_of_band: set[ResponseRun] = set()
        self.on_end: list[Callable[[], None]] = []
        self.on_sideband_join: Callable[[Call], object] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        loop = asyncio.get_running_loop()
        self.started = loop.time()
        self.audio = AudioInput(self)
        self._expiry = loop.call_later(max_session_s, self.expire)

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def pace_s(self) -> float:
        return self.settings.pace_s if self.pace_override is None else self.pace_override

    @property
    def items(self) -> list[dict[str, Any]]:
        return self.conversation.items

    @property
    def sideband_count(self) -> int:
        return sum(1 for s in self.subscribers if s.kind == "sideband")

    @property
    def speaking(self) -> bool:
        run = self.active_response
        return run is not None and run.speaking

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s: task failed", self.id, exc_info=task.exception())

    def emit(self, type_: str, **fields: Any) -> None:
        """Send a server event to every subscriber (serialised once)."""
        if not self.subscribers:
            return
        payload = json.dumps({"type": type_, "event_id": new_id("event"), **fields})
        for subscriber in tuple(self.subscribers):
            subscriber.deliver(payload)

    def send_to(self, subscriber: Subscriber, type_: str, **fields: Any) -> None:
        subscriber.deliver(json.dumps({"type": type_, "event_id": new_id("event"), **fields}))

    def subscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.append(subscriber)
        if subscriber.kind == "sideband" and self.on_sideband_join is not None:
            hook, self.on_sideband_join = self.on_sideband_join, None
            hook(self)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self.subscribers:
            self.subscribers.remove(subscriber)

    def consume_tokens(self, tokens: int) -> None:
        self.tokens_used += tokens

    async def wait_idle(self) -> None:
        await self._idle.wait()

    def update_idle(self) -> None:
        if self.active_response is None and self.audio.busy == 0:
            self._idle.set()
        else:
            self._idle.clear()

    # -- ending --------------------------------------------------------------------------------

    def expire(self) -> None:
        """The session hits its maximum duration: `session_expired`, then close (1001)."""
        if self.status == "ended":
            return
        minutes = f"{self.max_session_s / 60:g}"
        error = ApiError(
            f"Your session hit the maximum duration of {minutes} minutes.", code="session_expired"
        )
        self.emit("error", error=error.event_payload())
        self.end("session_expired", code=CLOSE_GOING_AWAY)

    def end(self, reason: str, *, code: int = CLOSE_NORMAL) -> None:
        if self.status == "ended":
            return
        self.status = "ended"
        self.end_reason = reason
        self._expiry.cancel()
        self.active_response = None
        self.out_of_band.clear()
        for task in tuple(self._tasks):
            task.cancel()
        subscribers, self.subscribers = self.subscribers, []
        for subscriber in subscribers:
            subscriber.close(code, reason)
        hooks, self.on_end = self.on_end, []
        for hook in hooks:
            hook()
        self._idle.set()

    # -- client events -------------------------------------------------------------------------

    def handle_client_message(self, raw: str | bytes, source: Subscriber) -> None:
        if self.status == "ended":
            return
        client_event_id: str | None = None
        try:
            try:
                event = json.loads(raw)
            except ValueError as exc:
                raise ApiError(f"Invalid JSON in client event: {exc}", code="invalid_json") from exc
            if not isinstance(event, dict):
                raise invalid_type("event", "an object", event)
            if isinstance(event.get("event_id"), str):
                client_event_id = event["event_id"]
            kind = event.get("type")
            handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
            if handler is None:
                raise invalid_value("type", kind, sorted(_HANDLERS))
            handler(self, event, source)
        except ApiError as error:
            self.send_to(source, "error", error=error.event_payload(client_event_id))

    def _on_session_update(self, event: dict[str, Any], source: Subscriber) -> None:
        patch = event.get("session")
        updated = apply_session_patch(self.session, patch, prefix="session")
        if updated["model"] != self.session["model"]:
            raise ApiError(
                "Cannot update a session's model.", param="session.model", code="invalid_value"
            )
        voice = updated["audio"]["output"]["voice"]
        if voice != self.session["audio"]["output"]["voice"] and self.tokens_used:
            raise ApiError(
                "Cannot update a conversation's voice if assistant audio is present.",
                param="session.audio.output.voice",
                code="cannot_update_voice",
            )
        self.session = updated
        self.emit("session.updated", session=self.session)

    def _on_item_create(self, event: dict[str, Any], source: Subscriber) -> None:
        item = normalise_item(event.get("item"))
        previous = event.get("previous_item_id")
        if previous is not None and not isinstance(previous, str):
            raise invalid_type("previous_item_id", "a string", previous)
        self.add_item(item, previous_item_id=previous)

    def _on_item_retrieve(self, event: dict[str, Any], source: Subscriber) -> None:
        item_id = event.get("item_id")
        item = self.conversation.by_id.get(item_id) if isinstance(item_id, str) else None
        if item is None:
            raise ApiError(
                f"Item with item_id not found: {item_id}",
                param="item_id",
                code="item_retrieve_invalid_item_id",
            )
        self.send_to(source, "conversation.item.retrieved", item=item)

    def _on_item_delete(self, event: dict[str, Any], source: Subscriber) -> None:
        item_id = event.get("item_id")
        if not isinstance(item_id, str) or not self.conversation.delete(item_id):
            raise ApiError(
                f"Item with item_id not found: {item_id}",
                param="item_id",
                code="item_delete_invalid_item_id",
            )
        self.emit("conversation.item.deleted", item_id=item_id)

    def _on_item_truncate(self, event: dict[str, Any], source: Subscriber) -> None:
        item_id = event.get("item_id")
        item = self.conversation.by_id.get(item_id) if isinstance(item_id, str) else None
        if item is None or item.get("role") != "assistant":
            raise ApiError(
                f"Item with item_id not found: {item_id}",
                param="item_id",
                code="item_truncate_invalid_item_id",
            )
        audio_end_ms = event.get("audio_end_ms", 0)
        if isinstance(audio_end_ms, bool) or not isinstance(audio_end_ms, int) or audio_end_ms < 0:
            raise invalid_value("audio_end_ms", audio_end_ms)
        content_index = event.get("content_index", 0)
        self.emit(
            "conversation.item.truncated",
            item_id=item_id,
            content_index=content_index,
            audio_end_ms=audio_end_ms,
        )

    def _on_response_create(self, event: dict[str, Any], source: Subscriber) -> None:
        params = event.get("response")
        if params is not None and not isinstance(params, dict):
            raise invalid_type("response", "an object", params)
        self.create_response(params or {})

    def _on_response_cancel(self, event: dict[str, Any], source: Subscriber) -> None:
        response_id = event.get("response_id")
        runs = [r for r in (self.active_response, *self.out_of_band) if r is not None]
        if response_id is not None:
            runs = [r for r in runs if r.id == response_id]
        elif self.active_response is not None:
            runs = [self.active_response]
        if not runs:
            raise ApiError(
                "Cancellation failed: no active response found",
                code="response_cancel_not_active",
            )
        runs[0].finish("cancelled", "client_cancelled")

    def _on_output_audio_clear(self, event: dict[str, Any], source: Subscriber) -> None:
        run = self.active_response
        if run is not None and run.audio:
            started = run.audio_started_at is not None
            run.finish("cancelled", "client_cancelled")
            if not started:
                self.emit("output_audio_buffer.cleared", response_id=run.id)
        elif self.last_response_id is not None:
            self.emit("output_audio_buffer.cleared", response_id=self.last_response_id)

    def _on_input_audio_clear(self, event: dict[str, Any], source: Subscriber) -> None:
        self.audio.manual_speech_ms = 0
        self.emit("input_audio_buffer.cleared")

    def _on_input_audio_commit(self, event: dict[str, Any], source: Subscriber) -> None:
        self.audio.commit_manual()

    def _on_input_audio_append(self, event: dict[str, Any], source: Subscriber) -> None:
        raise ApiError(
            "input_audio_buffer.append is not available on a WebRTC call: audio travels on the "
            "call's media track.",
            code="invalid_value",
            param="type",
        )

    # -- conversation actions ------------------------------------------------------------------

    def add_item(self, item: dict[str, Any], *, previous_item_id: str | None = None) -> None:
        previous = self.conversation.insert(item, previous_item_id, at_end=previous_item_id is None)
        self.emit("conversation.item.added", previous_item_id=previous, item=item)
        self.emit("conversation.item.done", previous_item_id=previous, item=item)

    def user_text(self, text: str, *, respond: bool = True) -> str:
        """A typed user turn plus `response.create` (unless not `respond`), as a browser sends
        them."""
        if respond and self.active_response is not None:
            self.active_response.finish("cancelled", "client_cancelled")
        item = normalise_item(
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        )
        self.add_item(item)
        if respond:
            self.create_response({})
        return str(item["id"])

    def user_audio(self, transcript: str, mode: TranscriptionMode | None = None) -> str:
        """A simulated spoken turn; see `AudioInput.simulate`."""
        return self.audio.simulate(transcript, mode)

    def _reply_basis(self, params: dict[str, Any]) -> tuple[str | None, bool]:
        """The user text the reply quotes, and whether the user spoke (audio) instead."""
        user_item: dict[str, Any] | None = None
        if "input" in params:
            raw_input = params["input"]
            if not isinstance(raw_input, list):
                raise invalid_type("response.input", "an array", raw_input)
            for index, raw in enumerate(raw_input):
                if isinstance(raw, dict) and raw.get("type") == "item_reference":
                    ref = self.conversation.by_id.get(raw.get("id", ""))
                    if ref is None:
                        raise invalid_value(f"response.input[{index}].id", raw.get("id"))
                    candidate = ref
                else:
                    candidate = normalise_item(raw, f"response.input[{index}]")
                if candidate.get("type") == "message" and candidate.get("role") == "user":
                    user_item = candidate
        else:
            user_item = self.conversation.last_user_message()
        if user_item is None:
            return None, False
        spoken = self.audio.spoken.get(user_item["id"])
        if spoken is not None:
            return spoken.heard_text, True
        text = message_text(user_item)
        audio = any(p["type"] == "input_audio" for p in user_item.get("content", []))
        return text, audio

    def create_response(self, params: dict[str, Any]) -> ResponseRun:
        conversation = params.get("conversation", "auto")
        if conversation not in ("auto", "none"):
            raise invalid_value("response.conversation", conversation, ["auto", "none"])
        in_band = conversation == "auto"
        if in_band and self.active_response is not None:
            raise ApiError(
                "Conversation already has an active response in progress: "
                f"{self.active_response.id}. Wait until the response is finished before "
                "creating a new one.",
                code="conversation_already_has_active_response",
            )
        modalities = params.get("output_modalities", self.session["output_modalities"])
        if modalities not in (["audio"], ["text"]):
            raise invalid_value("response.output_modalities", modalities, ["audio", "text"])
        instructions = params.get("instructions", self.session["instructions"])
        if not isinstance(instructions, str):
            raise invalid_type("response.instructions", "a string", instructions)
        metadata = params.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise invalid_type("response.metadata", "an object", metadata)
        output = dict(self.session["audio"]["output"])
        requested = (params.get("audio") or {}).get("output") or {}
        voice = requested.get("voice", output["voice"])
        audio_output = {"format": requested.get("format", output["format"]), "voice": voice}
        user_text, heard = self._reply_basis(params)
        reply = reply_text(user_text, heard_audio=heard, instructions=instructions)
        input_tokens = estimate_tokens(instructions) + sum(
            estimate_tokens(message_text(i) or "") for i in self.conversation.items
        )
        run = ResponseRun(
            self,
            reply=reply,
            in_band=in_band,
            modalities=list(modalities),
            audio_output=audio_output,
            metadata=metadata,
            input_tokens=input_tokens,
            pace_s=self.pace_s,
        )
        self.last_response_id = run.id
        if in_band:
            self.active_response = run
            self.update_idle()
        else:
            self.out_of_band.add(run)
        run.begin()
        return run

    def response_finished(self, run: ResponseRun) -> None:
        if self.active_response is run:
            self.active_response = None
            self.update_idle()
        self.out_of_band.discard(run)

    def interrupt(self, reason: str = "turn_detected") -> str | None:
        """Cut the in-progress response short (as user speech would); its id, if any."""
        run = self.active_response
        if run is None:
            return None
        run.finish("cancelled", reason)
        return run.id


_Handler = Callable[[Call, dict[str, Any], Subscriber], None]
_HANDLERS: dict[str, _Handler] = {
    "session.update": Call._on_session_update,
    "conversation.item.create": Call._on_item_create,
    "conversation.item.retrieve": Call._on_item_retrieve,
    "conversation.item.delete": Call._on_item_delete,
    "conversation.item.truncate": Call._on_item_truncate,
    "response.create": Call._on_response_create,
    "response.cancel": Call._on_response_cancel,
    "output_audio_buffer.clear": Call._on_output_audio_clear,
    "input_audio_buffer.clear": Call._on_input_audio_clear,
    "input_audio_buffer.commit": Call._on_input_audio_commit,
    "input_audio_buffer.append": Call._on_input_audio_append,
}
