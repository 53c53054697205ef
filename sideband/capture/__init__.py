"""Realtime server events -> transcript operations. Pure: no I/O, no Django.

`capture_frame(state, raw)` / `capture_event(state, event)` fold one server event into a
per-call `CaptureState` and return the operations it implies:

- `TurnUpsert`: the full current record of one conversation item (idempotent; only emitted
  when the record changed);
- `TurnDelta`: partial text for the live page, never persisted;
- `ItemMissing`: an event referenced an item this state has never seen (a gap while the
  socket was down); the worker asks upstream with `conversation.item.retrieve`, and the
  `conversation.item.retrieved` answer flows back through `capture_event`;
- `CallEnded`: a terminal upstream error (the session hit its maximum duration...).

Rules, all seen in recorded traffic (../shared/realtime-corpus/README.md):

- Conversation order comes from `previous_item_id` on `conversation.item.added` (beta:
  `.created`) and `input_audio_buffer.committed`, never from arrival order; on
  `conversation.item.done` it may be null even when `.added` carried it, so a known item
  keeps the place it got first.
- A user's audio transcript may arrive after the assistant answered; until it arrives (or
  fails) the user turn stays `in_progress`, when the session transcribes input at all.
- An interrupted answer keeps what was generated and is marked `incomplete`.
- Items of out-of-band responses (`response.created` with `conversation_id: null`) and items
  that are not turns (system messages, other item types) are not turns; an item that
  follows one is placed after the turn the hidden item followed.
- Unknown event types are counted; malformed frames are logged (type and length only, never
  their content), counted and skipped.
- Text Postgres cannot store (NUL, lone surrogates) is replaced by U+FFFD in every string of
  an event before anything reads it: the rule is `sessions_app.storable`'s.

Placement: `TurnUpsert.previous_item_id` is the turn this one follows, always one this state
already emitted or was seeded with, or None for "the start of this call's conversation"
(the writer appends it after the session's last turn). `next_item_id` is set only on a
recovered item: the turn it must precede when its predecessor is not known.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import orjson

from sessions_app.storable import frame_is_clean, json_storable
from sideband.capture.handlers import HANDLERS
from sideband.capture.hints import hints_apply, hints_trailing, retrieve_event_id
from sideband.capture.items import transcript_close_out
from sideband.capture.ops import (
    ASSISTANT,
    COMPLETED,
    FAILED,
    FINAL_STATUSES,
    IN_PROGRESS,
    INCOMPLETE,
    RECORD_FIELDS,
    TOOL_CALL,
    TOOL_OUTPUT,
    UNTRANSCRIBED,
    USER,
    CallEnded,
    CaptureState,
    ItemMissing,
    ItemRecord,
    Op,
    TurnDelta,
    TurnUpsert,
    record_fields,
)

__all__ = [
    "ASSISTANT",
    "COMPLETED",
    "FAILED",
    "FIELD_ERRORS",
    "FINAL_STATUSES",
    "INCOMPLETE",
    "IN_PROGRESS",
    "RECORD_FIELDS",
    "TOOL_CALL",
    "TOOL_OUTPUT",
    "UNTRANSCRIBED",
    "USER",
    "CallEnded",
    "CaptureState",
    "ItemMissing",
    "ItemRecord",
    "Op",
    "TurnDelta",
    "TurnUpsert",
    "capture_event",
    "capture_frame",
    "event_dispatch",
    "event_storable",
    "frame_event",
    "hints_apply",
    "hints_trailing",
    "malformed_log",
    "malformed_skip",
    "record_fields",
    "retrieve_event_id",
    "transcript_close_out",
]

logger = logging.getLogger(__name__)

# --- Entry points -----------------------------------------------------------------------


def capture_frame(state: CaptureState, raw: str | bytes) -> list[Op]:
    """Parse one WebSocket text frame and capture it; a malformed frame is skipped."""
    event = frame_event(raw)
    if isinstance(event, str):
        return malformed_skip(state, raw, event)
    return event_dispatch(state, event, HANDLERS)


def frame_event(raw: str | bytes) -> dict[str, Any] | str:
    """One frame's event object, or why it is not one (both APIs' frames are JSON events)."""
    try:
        # orjson: a frame parses several times faster than with json.loads (most frames are
        # small deltas, and a thousand calls send thousands a second).
        event = orjson.loads(raw)
        clean = frame_is_clean(raw)
    except (ValueError, TypeError):
        # What orjson refuses and json accepts (NaN, lone surrogates) is still read as before.
        try:
            event = json.loads(raw)
        except (ValueError, TypeError, RecursionError):
            return "not JSON"
        clean = False
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return "not an event object"
    return event if clean else event_storable(event)


def event_storable(event: object) -> dict[str, Any] | str:
    """The event with every string storable (sessions_app.storable's rule, the same for
    both APIs), or why it is not an event."""
    if not isinstance(event, dict):
        return "not an event object"
    try:
        return json_storable(event)
    except RecursionError:  # nested deeper than any event: not one
        return "nested too deep"


def capture_event(state: CaptureState, event: dict[str, Any]) -> list[Op]:
    """Fold one server event into `state`; return the operations it implies."""
    storable = event_storable(event)
    if isinstance(storable, str):
        return malformed_skip(state, event, storable)
    return event_dispatch(state, storable, HANDLERS)


class CaptureCounts(Protocol):
    """What every capture state counts (Realtime's and Live's)."""

    events: int
    malformed_frames: int
    unknown_event_counts: dict[str, int]


# A field of the wrong shape: the event is skipped, the call goes on.
FIELD_ERRORS: tuple[type[Exception], ...] = (
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    ValueError,
)


def event_dispatch(
    state: Any,
    event: dict[str, Any],
    handlers: Mapping[str, Callable[[Any, dict[str, Any], list[Op]], None]],
    *,
    errors: tuple[type[Exception], ...] = FIELD_ERRORS,
) -> list[Op]:
    """Run the handler of the event's type from `handlers` (a capture's table) on an event
    whose strings are storable already; unknown types are counted, an event a handler
    refuses (`errors`) is skipped as malformed."""
    counts: CaptureCounts = state
    event_type = event.get("type")
    if not isinstance(event_type, str):
        return malformed_skip(counts, event, "no type")
    counts.events += 1
    handler = handlers.get(event_type)
    if handler is None:
        unknown = counts.unknown_event_counts
        unknown[event_type] = unknown.get(event_type, 0) + 1
        return []
    ops: list[Op] = []
    try:
        handler(state, event, ops)
    except errors:
        return malformed_skip(counts, event, event_type)
    return ops


def malformed_skip(state: CaptureCounts, raw: object, why: str) -> list[Op]:
    """Count and log (never its content) a frame or event that is skipped; no operations."""
    state.malformed_frames += 1
    malformed_log(raw, why)
    return []


def malformed_log(raw: object, why: str) -> None:
    """Log a skipped frame by its type and length only, never its content."""
    size = len(raw) if isinstance(raw, str | bytes | dict) else 0
    logger.warning(
        "Skipped a malformed sideband frame (%s; %s, size %d)", why, type(raw).__name__, size
    )
