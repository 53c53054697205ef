"""One Live session: its timeline, its speakers, its subscribers (data channel and sidebands).

Live sends what was said as timed fragments (`session.input_transcript.delta` /
`session.output_transcript.delta`, `{delta, start_ms, end_ms}` on the session's timeline) and
never marks a turn's end. Here the timeline advances in 200 ms windows, one word per speaker
per window, on a single clock task per session:

- a user turn (VAD on the WebRTC track, or `/_emulator/live/...`) queues the user's words;
  once they are all out, the assistant's reply is queued two windows later (400 ms of silence);
- speech that starts while the assistant is speaking interrupts it: the assistant says one more
  word, in the same window as the user's first (both speakers overlap), and stops;
- `session.commentary.append` queues an answer at once (typed context, no user transcript);
- when nothing is queued the clock idles, and resumes at the wall-clock time (never earlier).

Sidebands get `session.started` (with the resolved config and its `input`) when they attach,
then every event from that moment, plus what only sidebands see: the reflected caller audio
(`session.input_audio.append`) and the assistant's audio with its timings
(`session.output_audio.delta`). A data channel honours `client.data_channel` allow-lists.
The session ends with `session.closed` and its `reason`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Final, Literal

from .assistant import estimate_tokens, reply_text, split_deltas
from .config import Settings
from .engine import Subscriber
from .errors import ApiError, invalid_type
from .ids import new_id
from .live_config import APPEND_MAX_TOKENS, resolved_session

log = logging.getLogger(__name__)

WINDOW_MS: Final = 200
REPLY_GAP_WINDOWS: Final = 2
CloseReason = Literal["close_requested", "expired", "content", "remote_hangup", "connection_lost"]
CLOSE_NORMAL: Final = 1000

# 200 ms of mono PCM16LE at 24 kHz (what sidebands receive): silence, and the speaking tone.
_PCM_SAMPLES: Final = 24_000 * WINDOW_MS // 1000
_SILENCE_24K: Final = base64.b64encode(bytes(_PCM_SAMPLES * 2)).decode()
_TONE_24K: Final = base64.b64encode(
    b"".join(
        int(8000 * math.sin(2 * math.pi * 600 * n / 24_000)).to_bytes(2, "little", signed=True)
        for n in range(_PCM_SAMPLES)
    )
).decode()

RECALL_WORDS: Final = ("remember", "remind")
# Audio events carry no event id (in the SDK's types and the recordings alike).
_WITHOUT_EVENT_ID: Final = frozenset({"session.input_audio.append", "session.output_audio.delta"})


def live_reply(text: str, history: list[tuple[str, str]], instructions: str | None) -> str:
    """What the Live assistant answers to `text` (said or typed), given what was said before.

    Asked to remember or remind, it quotes the newest earlier user message (seeded `input`
    included): `You told me: "<message>".`; otherwise the Realtime rule, `You said: "<text>".`
    (with the instructions' `Marker:` line appended, as there).
    """
    if any(word in text.lower() for word in RECALL_WORDS):
        earlier = [said for role, said in history if role == "user"]
        if earlier:
            return f'You told me: "{earlier[-1]}".'
    return reply_text(text, heard_audio=True, instructions=instructions)


class LiveSession:
    def __init__(
        self,
        *,
        session_id: str,
        config: dict[str, Any],
        settings: Settings,
        history: list[tuple[str, str]] | None = None,
        forked_from: str | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.id = session_id
        self.config = config
        self.settings = settings
        self.forked_from = forked_from
        self.created = loop.time()
        self.max_session_s = settings.live_max_session_s
        self.expires_at = int(time.time() + self.max_session_s)
        self.instructions: str = resolved_session(
            config, session_id=session_id, expires_at=self.expires_at
        )["instructions"]
        # (role, text) of everything said or seeded, in order: what the assistant can quote.
        self.history: list[tuple[str, str]] = list(history or [])
        for item in config.get("input", []):
            self.history.append((item["role"], item["content"][0]["text"]))
        self.subscribers: list[Subscriber] = []
        self.status: Literal["active", "ended"] = "active"
        self.close_reason: CloseReason | None = None
        self.sidebands_blocked = False
        self.on_end: list[Callable[[], None]] = []
        self.user_turns = 0
        self.timeline_ms = 0
        self._user_words: deque[str] = deque()
        self._user_text = ""
        self._assistant_words: deque[str] = deque()
        self._assistant_said = ""
        self._gap_windows = 0
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.spawn(self._clock())
        self._expiry = loop.call_later(self.max_session_s, self.close, "expired")

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def store(self) -> bool:
        return bool(self.config.get("store"))

    @property
    def speaking(self) -> bool:
        return bool(self._assistant_words)

    @property
    def sideband_count(self) -> int:
        return sum(1 for s in self.subscribers if s.kind == "sideband")

    def resource(self) -> dict[str, Any]:
        return resolved_session(self.config, session_id=self.id, expires_at=self.expires_at) | {
            "instructions": self.instructions
        }

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _payload(self, type_: str, fields: dict[str, Any]) -> str:
        if type_ in _WITHOUT_EVENT_ID:
            return json.dumps({"type": type_, **fields})
        return json.dumps({"type": type_, "event_id": new_id("event"), **fields})

    def emit(self, type_: str, *, sideband_only: bool = False, **fields: Any) -> None:
        """Send a server event to every subscriber allowed to see it (serialised once)."""
        if not self.subscribers:
            return
        payload = self._payload(type_, fields)
        for subscriber in tuple(self.subscribers):
            if subscriber.kind == "sideband" or (
                not sideband_only and self._data_channel_allows(type_)
            ):
                subscriber.deliver(payload)

    def send_to(self, subscriber: Subscriber, type_: str, **fields: Any) -> None:
        subscriber.deliver(self._payload(type_, fields))

    def _allow_list(self, key: str) -> list[Any] | None:
        channel = (self.config.get("client") or {}).get("data_channel") or {}
        allowed = channel.get(key)
        return allowed if isinstance(allowed, list) else None

    def _data_channel_allows(self, type_: str) -> bool:
        allowed = self._allow_list("allowed_server_events")
        if allowed is None:
            return True
        names = {a if isinstance(a, str) else a.get("type") for a in allowed}
        return type_ in names

    def attach(self, subscriber: Subscriber) -> None:
        """A new data channel or sideband: `session.started` first, then live events."""
        if subscriber.kind == "sideband" or self._data_channel_allows("session.started"):
            self.send_to(subscriber, "session.started", session=self.resource())
        self.subscribers.append(subscriber)

    def detach(self, subscriber: Subscriber) -> None:
        if subscriber in self.subscribers:
            self.subscribers.remove(subscriber)

    def now_ms(self) -> int:
        """The session timeline now: never behind what was already said."""
        elapsed = int((asyncio.get_running_loop().time() - self.created) * 1000)
        aligned = -(-elapsed // WINDOW_MS) * WINDOW_MS
        return max(self.timeline_ms, aligned)

    # -- speakers ------------------------------------------------------------------------------

    def user_said(self, text: str) -> None:
        """The caller spoke `text` (its transcript): queue its words, interrupting a reply."""
        if self.status == "ended" or not text.strip():
            return
        self.user_interrupts()
        continuing = bool(self._user_words)
        if not continuing:
            self._user_text = ""
        self._user_words.extend(split_deltas((" " if continuing else "") + text.strip(), 1))
        self.user_turns += 1
        self._wake.set()

    def user_interrupts(self) -> None:
        """Speech started: a reply not yet begun is dropped; one being spoken says one more
        word, in the window of the user's first (the speakers overlap), and stops."""
        if not self._assistant_said:
            self._assistant_words.clear()
        elif len(self._assistant_words) > 1:
            last = self._assistant_words.popleft()
            self._assistant_words.clear()
            self._assistant_words.append(last)
        self._gap_windows = 0

    def commentary(self, content: str) -> None:
        """Typed context: the assistant answers it at once; no user transcript (as recorded)."""
        start = self.now_ms()
        self.timeline_ms = start
        self.emit("session.commentary.appended", start_ms=start, end_ms=start)
        self.history.append(("developer", content))
        self._queue_reply(live_reply(content, self.history[:-1], self.instructions), gap=0)

    def _queue_reply(self, reply: str, *, gap: int) -> None:
        self._assistant_words.extend(split_deltas(reply, 1))
        self._assistant_said = ""
        self._gap_windows = gap
        self._wake.set()

    async def _clock(self) -> None:
        """One 200 ms window per step while anyone has words to say."""
        while self.status == "active":
            if not self._user_words and not self._assistant_words:
                self._wake.clear()
                await self._wake.wait()
                self.timeline_ms = self.now_ms()
                continue
            start = self.timeline_ms
            end = start + WINDOW_MS
            self.timeline_ms = end
            if self._user_words:
                word = self._user_words.popleft()
                self._user_text += word
                self.emit("session.input_transcript.delta", delta=word, start_ms=start, end_ms=end)
                if self._assistant_words:
                    self._assistant_window(start, end)  # interrupted: both speak in this window
                if not self._user_words:
                    self._user_finished()
            elif self._gap_windows > 0:
                self._gap_windows -= 1
            else:
                self._assistant_window(start, end)
            await asyncio.sleep(self.settings.pace_s)

    def _assistant_window(self, start: int, end: int) -> None:
        word = self._assistant_words.popleft()
        self._assistant_said += word
        self.emit("session.output_transcript.delta", delta=word, start_ms=start, end_ms=end)
        self.emit(
            "session.output_audio.delta",
            sideband_only=True,
            delta=_TONE_24K,
            start_ms=start,
            end_ms=end,
        )
        if not self._assistant_words:
            self.history.append(("assistant", self._assistant_said))
            self.emit("session.usage.updated", usage={"seconds": end / 1000})

    def _user_finished(self) -> None:
        said = self._user_text
        self.history.append(("user", said))
        self._queue_reply(
            live_reply(said, self.history[:-1], self.instructions), gap=REPLY_GAP_WINDOWS
        )

    def reflect_input_audio(self, pcm24k: bytes) -> None:
        """The caller's audio as the sideband sees it: mono PCM16LE at 24 kHz, base64."""
        self.emit(
            "session.input_audio.append",
            sideband_only=True,
            audio=base64.b64encode(pcm24k).decode(),
        )

    # -- client events -------------------------------------------------------------------------

    def handle_client_message(self, raw: str | bytes, source: Subscriber) -> None:
        event_id: str | None = None
        try:
            event = json.loads(raw)
            if not isinstance(event, dict):
                raise invalid_type("event", "an object", event)
            event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
            self._dispatch(event, source)
        except ValueError:
            self._error(source, ApiError("The event is not valid JSON.", code="invalid_json"))
        except ApiError as error:
            self._error(source, error, event_id)

    def _error(
        self, source: Subscriber, error: ApiError, client_event_id: str | None = None
    ) -> None:
        payload: dict[str, Any] = {
            "type": error.type,
            "code": error.code or "invalid_request_error",
            "message": error.message,
        }
        if error.param is not None:
            payload["param"] = error.param
        if client_event_id is not None:
            payload["client_event_id"] = client_event_id
        self.send_to(source, "error", error=payload)

    def _dispatch(self, event: dict[str, Any], source: Subscriber) -> None:
        type_ = event.get("type")
        if source.kind == "datachannel":
            allowed = self._allow_list("allowed_client_events")
            if allowed is not None and type_ not in allowed:
                raise ApiError(
                    f"Client event '{type_}' is not allowed on this data channel.",
                    param="type",
                    code="client_event_not_allowed",
                )
        reply = {"client_event_id": event["event_id"]} if event.get("event_id") else {}
        if type_ == "session.close":
            self.close("close_requested")
        elif type_ == "session.commentary.append":
            self.commentary(self._appended_text(event, "content"))
        elif type_ in ("session.instructions.append", "session.thinking.append"):
            key = "instructions" if type_ == "session.instructions.append" else "content"
            text = self._appended_text(event, key)
            start = self.now_ms()
            if type_ == "session.instructions.append":
                self.instructions += "\n" + text
            self.emit(type_.replace(".append", ".appended"), start_ms=start, end_ms=start, **reply)
        elif type_ in ("session.input_audio.mute", "session.input_audio.unmute"):
            self.emit(type_ + "d", **reply)
        elif type_ == "session.start":
            raise ApiError(
                "The session has already started.", param="type", code="session_already_started"
            )
        else:
            raise ApiError(
                f"Unsupported client event type: '{type_}'.",
                param="type",
                code="unknown_event_type",
            )

    @staticmethod
    def _appended_text(event: dict[str, Any], key: str) -> str:
        text = event.get(key)
        if not isinstance(text, str) or not text.strip():
            raise invalid_type(key, "a non-empty string", text)
        if estimate_tokens(text) > APPEND_MAX_TOKENS:
            raise ApiError(
                f"Invalid '{key}': above the limit of {APPEND_MAX_TOKENS} tokens.",
                param=key,
                code="string_above_max_length",
            )
        return text

    # -- the end -------------------------------------------------------------------------------

    def close(self, reason: CloseReason) -> None:
        """`session.closed` with `reason` and usage, then every socket closes."""
        if self.status == "ended":
            return
        self.emit(
            "session.closed",
            reason=reason,
            session=self.resource(),
            usage={"seconds": self.now_ms() / 1000},
        )
        self.status = "ended"
        self.close_reason = reason
        self._expiry.cancel()
        for subscriber in tuple(self.subscribers):
            subscriber.close(CLOSE_NORMAL, reason)
        self.subscribers.clear()
        for task in tuple(self._tasks):
            task.cancel()
        for hook in self.on_end:
            try:
                hook()
            except Exception:
                log.exception("live session %s: end hook failed", self.id)
