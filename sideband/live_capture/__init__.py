"""Live server events -> transcript operations. Pure: no I/O, no Django.

The Live counterpart of `sideband.capture` (Realtime), emitting the same operations so the
same fenced writer, live push and extraction serve both APIs:

- `TurnUpsert`: the full current record of one turn (a grouped segment of one speaker's
  fragments), `in_progress` while it can grow and `completed` once closed;
- `TurnDelta`: the text a fragment added, for the live page;
- `CallEnded`: `session.closed`, its reason mapped by `sideband.end_reasons.live_closed_end`.

Rules (../shared/live-corpus/README.md shows each in recorded traffic):

- Turn boundaries are the openai SDK's `TranscriptGrouper` policy with its defaults, run on
  the events' own `start_ms`/`end_ms` (see `grouping`), so a transcript reads here as it does
  in an app built on the SDK, and replays draw the same turns as the live worker did.
- Fragments carry their own spaces and are joined as they are (the SDK's texts, verbatim).
- Overlapping speakers (an interruption; fragments of both in one window) keep both speakers'
  words; the grouper orders them. Brief overlapping acknowledgments ("mhm") may be dropped as
  backchannel, as the SDK does.
- Turn ids come from the session's timeline (`<session id>/<u|a><start_ms>`), so a replay or
  a reconnect never duplicates a turn; a fragment seen twice (same event id) counts once.
- One grouping per Live session: a fork's `session.started` (a new id) closes the previous
  session's turns; a re-attach's `session.started` (same id) continues them.
- The `input` history of `session.started` is not captured: it is what this server seeded.
- A recording or a socket that ends without `session.closed` is closed with `capture_finish`.
- Unknown event types are counted; malformed frames are logged (type and length only, never
  their content), counted and skipped.
"""

from __future__ import annotations

from typing import Any

from sideband.capture import (
    FIELD_ERRORS,
    event_dispatch,
    event_storable,
    frame_event,
    malformed_skip,
)
from sideband.capture.ops import Op
from sideband.live_capture.grouping import GroupingError
from sideband.live_capture.handlers import HANDLERS, apply_segments
from sideband.live_capture.state import LiveCaptureState

__all__ = [
    "LiveCaptureState",
    "live_capture_event",
    "live_capture_finish",
    "live_capture_frame",
]


def live_capture_frame(state: LiveCaptureState, raw: str | bytes) -> list[Op]:
    """Parse one WebSocket text frame and capture it; a malformed frame is skipped."""
    event = frame_event(raw)
    if isinstance(event, str):
        return malformed_skip(state, raw, event)
    return _live_dispatch(state, event)


def live_capture_event(state: LiveCaptureState, event: dict[str, Any]) -> list[Op]:
    """Fold one Live server event into `state`; return the operations it implies.

    Its strings pass the same storable rule as Realtime's (sessions_app.storable). A
    fragment without an id or a valid interval is skipped like a field of the wrong shape:
    the grouper validates before it changes any state.
    """
    storable = event_storable(event)
    if isinstance(storable, str):
        return malformed_skip(state, event, storable)
    return _live_dispatch(state, storable)


def _live_dispatch(state: LiveCaptureState, event: dict[str, Any]) -> list[Op]:
    return event_dispatch(state, event, HANDLERS, errors=(*FIELD_ERRORS, GroupingError))


def live_capture_finish(state: LiveCaptureState) -> list[Op]:
    """The events ended without `session.closed`: close the open turns (completed)."""
    if state.grouping is None:
        return []
    ops: list[Op] = []
    apply_segments(state, state.grouping.close(by_server=False), ops)
    return ops
