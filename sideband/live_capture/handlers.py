"""One handler per Live server event type: (state, event, ops) -> None.

The table at the end is the whole Live protocol as capture sees it. Only the transcript
fragments and `session.closed` make turns (exactly what the SDK's TranscriptGrouper consumes);
`session.started` starts a session's grouping. Delegated work (`session.delegation.created`,
`response.event` envelopes around a Responses stream) is not a turn of its own: what the
assistant said about it is in the output transcript.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from sideband.capture.ops import (
    ASSISTANT,
    COMPLETED,
    IN_PROGRESS,
    MESSAGE_MAX,
    SPOKEN,
    USER,
    CallEnded,
    Op,
    TurnDelta,
    TurnUpsert,
)
from sideband.end_reasons import live_closed_end
from sideband.live_capture.grouping import SegmentUpdate
from sideband.live_capture.state import LiveCaptureState

logger = logging.getLogger(__name__)


def apply_segments(state: LiveCaptureState, updates: list[SegmentUpdate], ops: list[Op]) -> None:
    """Turn segment updates into ops: a TurnDelta per growth, a TurnUpsert per changed record."""
    for update in updates:
        record = state.records.get(update.turn_id)
        if record is None:
            previous = state.last_turn_id
            state.last_turn_id = update.turn_id
        else:
            previous = record.previous_item_id
        role = USER if update.speaker == "user" else ASSISTANT
        state.spans[update.turn_id] = (update.start_ms, update.end_ms)
        if update.delta:
            ops.append(
                TurnDelta(item_id=update.turn_id, role=role, delta=update.delta, text=update.text)
            )
        upsert = TurnUpsert(
            item_id=update.turn_id,
            role=role,
            previous_item_id=previous,
            text=update.text,
            status=COMPLETED if update.closed else IN_PROGRESS,
            # A Live user turn is the transcript of what the caller said (typed text is
            # context for the model, never a turn): always spoken.
            input_mode=SPOKEN if role == USER else "",
        )
        if upsert != record:
            state.records[update.turn_id] = upsert
            ops.append(upsert)


def _fragment(state: LiveCaptureState, event: dict[str, Any], ops: list[Op], speaker: str) -> None:
    grouping = state.grouping_for(None)
    if grouping.closed:
        return  # a fragment after session.closed belongs to no turn
    updates = grouping.push_fragment(
        speaker=speaker,
        event_id=event["event_id"],
        delta=event["delta"],
        start_ms=event["start_ms"],
        end_ms=event["end_ms"],
    )
    apply_segments(state, updates, ops)


def _on_input_transcript(state: LiveCaptureState, event: dict[str, Any], ops: list[Op]) -> None:
    _fragment(state, event, ops, "user")


def _on_output_transcript(state: LiveCaptureState, event: dict[str, Any], ops: list[Op]) -> None:
    _fragment(state, event, ops, "assistant")


def _on_session_started(state: LiveCaptureState, event: dict[str, Any], ops: list[Op]) -> None:
    """A new session id (a fork) closes the previous session's turns; a re-attach to the same
    session keeps its grouping, so fragments replayed on attach are recognised by event id."""
    session_id = event["session"]["id"]
    if not isinstance(session_id, str) or not session_id:
        raise TypeError("session.id")
    previous = state.grouping
    if previous is not None and previous.session_id != session_id:
        apply_segments(state, previous.close(by_server=False), ops)
    state.grouping_for(session_id)
    state.closed_reason = None


def _on_session_closed(state: LiveCaptureState, event: dict[str, Any], ops: list[Op]) -> None:
    reason = event.get("reason")
    if not isinstance(reason, str):
        raise TypeError("reason")
    apply_segments(state, state.grouping_for(None).close(by_server=True), ops)
    state.closed_reason = reason
    end = live_closed_end(reason)
    ops.append(CallEnded(reason=end, message=f"live session closed: {reason}"[:MESSAGE_MAX]))


def _on_error(state: LiveCaptureState, event: dict[str, Any], ops: list[Op]) -> None:
    # Live ends a session with session.closed, never with an error; the message may quote
    # what the page sent, so only the type and code are logged.
    error = event.get("error") or {}
    logger.warning(
        "Upstream Live error on the sideband: type=%s code=%s", error.get("type"), error.get("code")
    )


def _ignore(state: LiveCaptureState, event: dict[str, Any], ops: list[Op]) -> None:
    return None


_Handler = Callable[[LiveCaptureState, dict[str, Any], list[Op]], None]

HANDLERS: Final[dict[str, _Handler]] = {
    "session.started": _on_session_started,
    "session.input_transcript.delta": _on_input_transcript,
    "session.output_transcript.delta": _on_output_transcript,
    "session.closed": _on_session_closed,
    "error": _on_error,
    # Known, and nothing for the transcript in them.
    "session.updated": _ignore,
    "session.paused": _ignore,  # sideband only
    "session.resumed": _ignore,  # sideband only
    "session.usage.updated": _ignore,
    "session.input_audio.append": _ignore,  # the caller's audio, reflected to the sideband
    "session.input_audio.muted": _ignore,
    "session.input_audio.unmuted": _ignore,
    "session.output_audio.delta": _ignore,
    "session.output_audio.fixture.playing": _ignore,
    "session.output_audio.fixture.played": _ignore,
    "session.commentary.appended": _ignore,  # context for the model, not a spoken turn
    "session.instructions.appended": _ignore,
    "session.thinking.appended": _ignore,
    "session.delegation.created": _ignore,  # what was said about it is in the transcripts
    "response.event": _ignore,  # a delegated Responses stream, wrapped
    "decision.event": _ignore,
    "decision.item.created": _ignore,
    "decision.item.deleted": _ignore,
    "info": _ignore,
    "transport.ringing": _ignore,  # SIP legs, sideband only
    "transport.answered": _ignore,
    "transport.failed": _ignore,
    "transport.dtmf.received": _ignore,
    "transport.dtmf.send": _ignore,
    "transport.dtmf.sent": _ignore,
}
