"""One handler per Realtime server event type: (state, event, ops) -> None."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from sideband.capture.hints import item_ask, item_unknown, recovered_predecessor
from sideband.capture.items import (
    emit,
    last,
    merge_item,
    new_item,
    place_item,
    resolve_prev,
    role_of,
    set_status,
)
from sideband.capture.ops import (
    ASSISTANT,
    COMPLETED,
    FAILED,
    FINAL_STATUSES,
    ID_MAX,
    IN_PROGRESS,
    INCOMPLETE,
    MESSAGE_MAX,
    NAME_MAX,
    SPOKEN,
    TOOL_CALL,
    USER,
    CallEnded,
    CaptureState,
    Op,
    TurnDelta,
)
from sideband.end_reasons import realtime_error_end

logger = logging.getLogger(__name__)

# Upstream error codes that are part of normal operation: a sideband (re)joining a call that
# the page has just replaced (renew, reload) hears `call_not_found`.
EXPECTED_ERROR_CODES: Final = frozenset({"call_not_found"})


def _on_item_added(state: CaptureState, event: dict[str, Any], ops: list[Op]) -> None:
    rec = place_item(state, event, ops, told=True)
    if rec is not None:
        merge_item(state, rec, event["item"])
        emit(rec, ops)


def _on_item_done(state: CaptureState, event: dict[str, Any], ops: list[Op]) -> None:
    rec = place_item(state, event, ops, told=False)
    if rec is not None:
        merge_item(state, rec, event["item"])
        if rec.status in FINAL_STATUSES:
            state.partial.pop(rec.item_id, None)
        emit(rec, ops)


def _on_item_retrieved(state: CaptureState, event: dict[str, Any], ops: list[Op]) -> None:
    """The answer to `conversation.item.retrieve`: place a recovered item in the gap.

    The GA event carries no previous_item_id, so a recovered item goes after the newest turn
    known before the gap and before the turn that referenced it. Its predecessor is what the
    event says, else what the page's hints say (sideband.capture.hints); when that one is not
    known either, the walk back continues (ItemMissing) until a known item is reached.
    """
    item = event["item"]
    item_id = item["id"]
    if not isinstance(item_id, str):
        raise TypeError("item.id")
    rec = state.items.get(item_id)
    if rec is None and item_id not in state.hidden:
        anchor, nxt = state.missing.pop(item_id, (last(state), None))
        prev = recovered_predecessor(state, item_id, event.get("previous_item_id"))
        if prev is not None:
            if prev in state.items:
                anchor, nxt = prev, None
            elif prev in state.hidden:
                anchor, nxt = state.hidden[prev], None
            else:
                item_ask(state, prev, anchor, item_id, ops)
        role = role_of(item)
        state.recovered_items += 1
        if role is None:
            state.hidden[item_id] = anchor
            return
        rec = new_item(state, item_id, role, anchor, nxt)
    if rec is not None:
        merge_item(state, rec, item)
        emit(rec, ops)


def _on_audio_committed(state: CaptureState, event: dict[str, Any], ops: list[Op]) -> None:
    item_id = event["item_id"]
    if not isinstance(item_id, str):
        raise TypeError("item_id")
    if item_id in state.items or item_id in state.hidden:
        return
    prev = resolve_prev(state, event.get("previous_item_id"), item_id, ops, told=True)
    rec = new_item(state, item_id, USER, prev)
    rec.input_mode = SPOKEN
    if rec.text is None and rec.status == IN_PROGRESS:
        rec.awaiting_transcript = state.transcription_expected
        if not rec.awaiting_transcript:
            set_status(rec, COMPLETED)
    emit(rec, ops)


def _transcript_result(
    state: CaptureState, item_id: Any, text: str | None, status: str, reason: str, ops: list[Op]
) -> None:
    if not isinstance(item_id, str):
        raise TypeError("item_id")
    state.partial.pop(item_id, None)
    rec = state.items.get(item_id)
    if rec is None:
        if item_id not in state.hidden:
            state.pending_transcripts[item_id] = (text, status, reason)
        return
    if text is not None:
        rec.text = text
    rec.awaiting_transcript = False
    set_status(rec, status, reason)
    emit(rec, ops)


def _on_transcription_completed(state: CaptureState, event: dict[str, Any], ops: list[Op]) -> None:
    transcript = event.get("transcript")
    if transcript is not None and not isinstance(transcript, str):
        raise TypeError("transcript")
    _transcript_result(state, event["item_id"], transcript, COMPLETED, "", ops)


def _on_transcription_failed(state: CaptureState, event: dict[str, Any], ops: list[Op]) -> None:
    error = event.get("error")
    code = error.get("code") or error.get("type") if isinstance(error, dict) else None
    reason = f"transcription failed: {code}" if code else "transcription failed"
    _transcript_result(state, event["item_id"], None, FAILED, reason, ops)


def _delta(state: CaptureState, event: dict[str, Any], ops: list[Op], role: str) -> None:
    if event.get("response_id") in state.out_of_band_responses:
        return
    item_id = event["item_id"]
    delta = event.get("delta") or ""
    if not isinstance(item_id, str) or not isinstance(delta, str):
        raise TypeError("delta")
    if item_id in state.hidden:
        return
    text = state.partial.get(item_id, "") + delta
    state.partial[item_id] = text
    ops.append(TurnDelta(item_id=item_id, role=role, delta=delta, text=text))


def _on_user_delta(state: CaptureState, event: dict[str, Any], ops: list[Op]) -> None:
    _delta(state, event, ops, USER)


def _on_assistant_delta(state: CaptureState, event: dict[str, Any], ops: list[Op]) -> None:
    _delta(state, event, ops, ASSISTANT)


def _output_text_done(state: CaptureState, event: dict[str, Any], ops: list[Op], key: str) -> None:
    if event.get("response_id") in state.out_of_band_responses:
        return
    item_id = event["item_id"]
    rec = state.items.get(item_id)
    if rec is None or rec.role != ASSISTANT:
        # Not a turn, or an item whose .added was missed: its conversation.item.done
        # (which carries the text) places it.
        return
    text = event.get(key)
    if not isinstance(text, str):
        raise TypeError(key)
    state.partial.pop(item_id, None)
    index = event.get("content_index") or 0
    if index or rec.parts:
        parts = rec.parts if rec.parts is not None else {}
        parts[index] = text
        rec.parts = parts
        text = "".join(parts[i] for i in sorted(parts))
    if text and not (rec.truncated and rec.text):
        rec.text = text
    emit(rec, ops)


def _on_audio_transcript_done(state: CaptureState, event: dict[str, Any], ops: list[Op]) -> None:
    _output_text_done(state, event, ops, "transcript")


def _on_text_done(state: CaptureState, event: dict[str, Any], ops: list[Op]) -> None:
    _output_text_done(state, event, ops, "text")


def _on_function_arguments_done(state: CaptureState, event: dict[str, Any], ops: list[Op]) -> None:
    rec = state.items.get(event["item_id"])
    if rec is None or rec.role != TOOL_CALL:
        return
    arguments = event.get("arguments")
    if isinstance(arguments, str):
        rec.arguments = arguments
    rec.name = (event.get("name") or rec.name)[:NAME_MAX]
    rec.tool_call_id = (event.get("call_id") or rec.tool_call_id)[:ID_MAX]
    emit(rec, ops)


def _on_response_created(state: CaptureState, event: dict[str, Any], ops: list[Op]) -> None:
    response = event["response"]
    if "conversation_id" in response and response["conversation_id"] is None:
        state.out_of_band_responses.add(response["id"])


def _on_output_item(state: CaptureState, event: dict[str, Any], ops: list[Op]) -> None:
    """response.output_item.added/.done: hide out-of-band items; merge in-band ones."""
    item = event["item"]
    item_id = item["id"]
    if event.get("response_id") in state.out_of_band_responses:
        state.hidden.setdefault(item_id, None)
        return
    rec = state.items.get(item_id)
    if rec is not None and event["type"] == "response.output_item.done":
        # The beta API has no conversation.item.done: this carries the final item.
        merge_item(state, rec, item)
        emit(rec, ops)


def _on_response_done(state: CaptureState, event: dict[str, Any], ops: list[Op]) -> None:
    response = event["response"]
    response_id = response.get("id")
    if response_id in state.out_of_band_responses:
        state.out_of_band_responses.discard(response_id)
        return
    status = response.get("status")
    reason = ""
    if status in ("cancelled", "incomplete", "failed"):
        details = response.get("status_details") or {}
        why = details.get("reason") or (details.get("error") or {}).get("code")
        reason = f"response {status}: {why}" if why else f"response {status}"
    for item in response.get("output") or ():
        rec = state.items.get(item.get("id"))
        if rec is None:
            continue
        merge_item(state, rec, item)
        if reason and rec.status != COMPLETED:
            set_status(rec, INCOMPLETE, reason)
        emit(rec, ops)


def _on_truncated(state: CaptureState, event: dict[str, Any], ops: list[Op]) -> None:
    rec = state.items.get(event["item_id"])
    if rec is None:
        return
    audio_end_ms = event.get("audio_end_ms")
    set_status(rec, INCOMPLETE, f"truncated at {audio_end_ms} ms")
    rec.truncated = True
    if rec.text is None:
        rec.text = state.partial.get(rec.item_id)
    emit(rec, ops)


def _on_session(state: CaptureState, event: dict[str, Any], ops: list[Op]) -> None:
    session = event["session"]
    audio = session.get("audio")
    if isinstance(audio, dict) and isinstance(audio.get("input"), dict):
        state.transcription_expected = audio["input"].get("transcription") is not None
    elif "input_audio_transcription" in session:  # beta shape
        state.transcription_expected = session["input_audio_transcription"] is not None


def _on_error(state: CaptureState, event: dict[str, Any], ops: list[Op]) -> None:
    error = event.get("error") or {}
    code = error.get("code")
    reason = realtime_error_end(code)
    if reason is not None:
        message = error.get("message")
        ops.append(CallEnded(reason=reason, message=str(message or code)[:MESSAGE_MAX]))
        return
    if code == "item_retrieve_invalid_item_id":
        item_unknown(state, error.get("event_id"))
        return
    # Not terminal (e.g. a retrieve of an item upstream no longer has); the message may
    # quote what the page sent, so only the type and code are logged. An expected answer
    # (the call already ended: every renew and reload ends one) is not a warning.
    level = logging.INFO if code in EXPECTED_ERROR_CODES else logging.WARNING
    logger.log(level, "Upstream error on the sideband: type=%s code=%s", error.get("type"), code)


def _ignore(state: CaptureState, event: dict[str, Any], ops: list[Op]) -> None:
    return None


_Handler = Callable[[CaptureState, dict[str, Any], list[Op]], None]

HANDLERS: Final[dict[str, _Handler]] = {
    "conversation.item.added": _on_item_added,
    "conversation.item.created": _on_item_added,  # beta
    "conversation.item.done": _on_item_done,
    "conversation.item.retrieved": _on_item_retrieved,
    "conversation.item.truncated": _on_truncated,
    "conversation.item.input_audio_transcription.completed": _on_transcription_completed,
    "conversation.item.input_audio_transcription.failed": _on_transcription_failed,
    "conversation.item.input_audio_transcription.delta": _on_user_delta,
    "input_audio_buffer.committed": _on_audio_committed,
    "response.created": _on_response_created,
    "response.done": _on_response_done,
    "response.output_item.added": _on_output_item,
    "response.output_item.done": _on_output_item,
    "response.output_audio_transcript.delta": _on_assistant_delta,
    "response.output_text.delta": _on_assistant_delta,
    "response.audio_transcript.delta": _on_assistant_delta,  # beta
    "response.text.delta": _on_assistant_delta,  # beta
    "response.output_audio_transcript.done": _on_audio_transcript_done,
    "response.output_text.done": _on_text_done,
    "response.audio_transcript.done": _on_audio_transcript_done,  # beta
    "response.text.done": _on_text_done,  # beta
    "response.function_call_arguments.done": _on_function_arguments_done,
    "session.created": _on_session,
    "session.updated": _on_session,
    "error": _on_error,
    # Known, and nothing for the transcript in them.
    "conversation.created": _ignore,  # beta
    "conversation.item.deleted": _ignore,  # the transcript keeps what was said
    "conversation.item.input_audio_transcription.segment": _ignore,
    "input_audio_buffer.speech_started": _ignore,
    "input_audio_buffer.speech_stopped": _ignore,
    "input_audio_buffer.cleared": _ignore,
    "input_audio_buffer.timeout_triggered": _ignore,
    "output_audio_buffer.started": _ignore,
    "output_audio_buffer.stopped": _ignore,
    "output_audio_buffer.cleared": _ignore,
    "rate_limits.updated": _ignore,
    "response.content_part.added": _ignore,
    "response.content_part.done": _ignore,
    "response.output_audio.delta": _ignore,
    "response.output_audio.done": _ignore,
    "response.audio.delta": _ignore,  # beta
    "response.audio.done": _ignore,  # beta
    "response.function_call_arguments.delta": _ignore,
    "transcription_session.updated": _ignore,
}
