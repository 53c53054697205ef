"""Turn boundaries for Live transcripts: the openai SDK's own grouping policy, clock frozen.

Live sends text as timed fragments (`session.input_transcript.delta` /
`session.output_transcript.delta`, each `{delta, start_ms, end_ms}`) and never says where a
turn ends. The SDK's `TranscriptGrouper` (openai >= 3.12, `openai/lib/live/`) draws those
boundaries for apps built on it; a transcript must read the same here, so this module runs
the SDK's policy itself instead of a re-implementation that could drift: `TranscriptState`,
the clock-independent core that both of the SDK's groupers (threaded and asyncio) wrap.

Why not the public `TranscriptGrouper`: it reads the local monotonic clock and fires
inactivity timers on a thread, so the same events could split differently under load or on
replay. Here the clock is frozen (`now` is constant and the timer path, `tick()`, is never
taken), so boundaries depend only on the events' `start_ms`/`end_ms`: a live worker, a
reconnect and `replay_transcript` draw identical turns. An open assistant turn therefore
closes when the next fragment shows the silence (or at `session.closed`), not 2 s after its
last word; its text is stored as it grows (`in_progress`) so nothing waits on that close.
This is exactly how ../shared/live-corpus/EXPECTED.json was produced ("clock frozen").

The SDK's segment ids (`segment_<process counter>_<n>`) are neither stable nor unique across
processes; each segment gets a stable id from the session's timeline instead:
`<live session id>/<u|a><start_ms>`, which is the same on every replay and reconnect.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Final

from openai import OpenAIError
from openai.lib.live._transcript_state import TranscriptState
from openai.lib.live._types import (
    TranscriptGrouperOptions,
    TranscriptSegment,
    TranscriptSegmentClosedEvent,
)
from openai.types.live import (
    InputTranscriptDeltaEvent,
    OutputTranscriptDeltaEvent,
    SessionClosedEvent,
)

from sideband.capture.ops import ID_MAX

__all__ = ["GroupingError", "SegmentUpdate", "SessionGrouping", "segment_turn_id"]

# The SDK's defaults (min_turn_separation 500 ms, assistant_silence 2000 ms, backchannel max
# duration 1000 ms, backchannel isolation 2000 ms, no extra acknowledgments).
DEFAULT_OPTIONS: Final = TranscriptGrouperOptions()

GroupingError = OpenAIError  # an invalid transcript delta (no event id, bad interval)


def _frozen_clock() -> float:
    return 0.0


def segment_turn_id(session_id: str, speaker: str, start_ms: int, epoch: int = 0) -> str:
    """The stable turn id of the segment of `speaker` that starts at `start_ms`.

    `epoch` counts the timestamp resets within one session (start_ms going backwards), which
    would otherwise let two segments share a start. An id that would not fit the column uses
    a digest of the session id instead (still stable).
    """
    suffix = f"/{speaker[0]}{start_ms}" + (f"~{epoch}" if epoch else "")
    if len(session_id) + len(suffix) > ID_MAX:
        session_id = hashlib.sha256(session_id.encode()).hexdigest()[: ID_MAX - len(suffix)]
    return session_id + suffix


@dataclass(frozen=True, slots=True)
class SegmentUpdate:
    """A segment's current text under its stable id; `closed` once it can no longer grow."""

    turn_id: str
    speaker: str
    text: str
    start_ms: int
    end_ms: int
    closed: bool
    delta: str


@dataclass(slots=True)
class SessionGrouping:
    """The grouping of one Live session (one `session.started` id)."""

    session_id: str
    _state: TranscriptState = field(init=False)
    # SDK segment id -> stable turn id.
    _ids: dict[str, str] = field(default_factory=dict)
    _used: set[str] = field(default_factory=set)
    _epoch: int = 0
    _text: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._state = TranscriptState(DEFAULT_OPTIONS, _frozen_clock)

    @property
    def closed(self) -> bool:
        return self._state.closed

    def push_fragment(
        self, *, speaker: str, event_id: str, delta: str, start_ms: int, end_ms: int
    ) -> list[SegmentUpdate]:
        """Fold one transcript fragment in; raises GroupingError on an invalid one."""
        model = InputTranscriptDeltaEvent if speaker == "user" else OutputTranscriptDeltaEvent
        event = model.model_construct(
            type=_event_type(speaker),
            event_id=event_id,
            delta=delta,
            start_ms=start_ms,
            end_ms=end_ms,
        )
        return self._updates(self._state.push(event) or [])

    def close(self, *, by_server: bool) -> list[SegmentUpdate]:
        """End the session's grouping: flush held fragments and close every open segment."""
        if self._state.closed:
            return []
        if by_server:
            event = SessionClosedEvent.model_construct(type="session.closed")
            return self._updates(self._state.push(event) or [])
        return self._updates(self._state.finish("manual"))

    def _updates(
        self, updates: list[TranscriptSegment | TranscriptSegmentClosedEvent]
    ) -> list[SegmentUpdate]:
        out: list[SegmentUpdate] = []
        # Segments first seen after a timestamp reset (start_ms went backwards) may start at
        # the same ms as earlier ones: they get the next epoch in their ids.
        resets = [
            i
            for i, update in enumerate(updates)
            if isinstance(update, TranscriptSegmentClosedEvent)
            and update.reason == "timestamp_reset"
        ]
        for i, update in enumerate(updates):
            if resets and i == resets[-1] + 1:
                self._epoch += 1
            closed = isinstance(update, TranscriptSegmentClosedEvent)
            segment = update.segment if isinstance(update, TranscriptSegmentClosedEvent) else update
            turn_id = self._turn_id(segment)
            before = self._text.get(turn_id, "")
            self._text[turn_id] = segment.text
            delta = segment.text[len(before) :] if segment.text.startswith(before) else ""
            out.append(
                SegmentUpdate(
                    turn_id=turn_id,
                    speaker=segment.speaker,
                    text=segment.text,
                    start_ms=segment.start_ms,
                    end_ms=segment.end_ms,
                    closed=closed,
                    delta=delta,
                )
            )
        return out

    def _turn_id(self, segment: TranscriptSegment) -> str:
        turn_id = self._ids.get(segment.id)
        if turn_id is None:
            base = segment_turn_id(self.session_id, segment.speaker, segment.start_ms, self._epoch)
            turn_id, n = base, 1
            while turn_id in self._used:  # two segments of one speaker starting at one ms
                n += 1
                turn_id = f"{base[: ID_MAX - 3]}.{n}"
            self._ids[segment.id] = turn_id
            self._used.add(turn_id)
        return turn_id


def _event_type(speaker: str) -> str:
    return (
        "session.input_transcript.delta" if speaker == "user" else "session.output_transcript.delta"
    )
