"""Folding item objects into records, and placing records in conversation order."""

from __future__ import annotations

from typing import Any

from sideband.capture.hints import item_ask
from sideband.capture.ops import (
    ASSISTANT,
    COMPLETED,
    FAILED,
    FINAL_STATUSES,
    ID_MAX,
    IN_PROGRESS,
    INCOMPLETE,
    NAME_MAX,
    SPOKEN,
    STATUS_REASON_MAX,
    TOOL_CALL,
    TOOL_OUTPUT,
    TYPED,
    UNTRANSCRIBED,
    USER,
    CaptureState,
    ItemRecord,
    Op,
)


def emit(rec: ItemRecord, ops: list[Op]) -> None:
    snap = rec.snapshot()
    if snap != rec.last:
        rec.last = snap
        ops.append(snap)


def set_status(rec: ItemRecord, status: str, reason: str = "") -> None:
    """Statuses only move forward: in_progress -> completed -> incomplete/failed."""
    current = rec.status
    if current == status:
        if reason and not rec.status_reason:
            rec.status_reason = reason[:STATUS_REASON_MAX]
        return
    if current in (INCOMPLETE, FAILED) or (current == COMPLETED and status == IN_PROGRESS):
        return
    if rec.truncated and status != INCOMPLETE:
        return
    rec.status = status
    rec.status_reason = reason[:STATUS_REASON_MAX]


def transcript_close_out(state: CaptureState, item_id: str, reason: str) -> list[Op]:
    """A spoken turn whose transcript never came: mark it not transcribed (a transcript that
    still arrives later completes it after all)."""
    rec = state.items.get(item_id)
    if rec is None or not rec.awaiting_transcript:
        return []
    rec.awaiting_transcript = False
    set_status(rec, UNTRANSCRIBED, reason)
    ops: list[Op] = []
    emit(rec, ops)
    return ops


def last(state: CaptureState) -> str | None:
    return state.order[-1] if state.order else None


def insert(state: CaptureState, item_id: str, prev: str | None, nxt: str | None) -> None:
    """Put `item_id` in `state.order` right after `prev` (else right before `nxt`, else last)."""
    order = state.order
    if prev is not None:
        if order and order[-1] == prev:
            order.append(item_id)
            return
        if prev in state.items:
            order.insert(order.index(prev) + 1, item_id)
            return
    if nxt is not None and nxt in state.items:
        order.insert(order.index(nxt), item_id)
        return
    order.append(item_id)


def resolve_prev(
    state: CaptureState, prev: Any, item_id: str, ops: list[Op], *, told: bool
) -> str | None:
    """The visible turn an item referencing `prev` goes after.

    `told` is False when a null predecessor means "not said" (`.done`) rather than "first".
    An unknown predecessor is reported (ItemMissing) and the item goes after the newest turn
    known before the gap; the missing one will be put between the two when it arrives.
    """
    if prev is None or prev == "root":
        return None if told else last(state)
    if not isinstance(prev, str):
        raise TypeError("previous_item_id")
    if prev in state.items:
        return prev
    if prev in state.hidden:
        return state.hidden[prev]
    anchor = last(state)
    item_ask(state, prev, anchor, item_id, ops)
    return anchor


def new_item(
    state: CaptureState, item_id: str, role: str, prev: str | None, nxt: str | None = None
) -> ItemRecord:
    if len(item_id) > ID_MAX:
        raise ValueError("item id too long")
    rec = ItemRecord(item_id=item_id, role=role, previous_item_id=prev, next_item_id=nxt)
    state.items[item_id] = rec
    insert(state, item_id, prev, nxt)
    state.missing.pop(item_id, None)
    pending = state.pending_transcripts.pop(item_id, None)
    if pending is not None:
        rec.text, status, reason = pending
        set_status(rec, status, reason)
    return rec


def input_mode_of(content: Any) -> str:
    """How a user message was given: typed (`input_text`) or spoken (`input_audio`); "" if
    its content says neither."""
    kinds = {part.get("type") for part in content or () if isinstance(part, dict)}
    if "input_audio" in kinds:
        return SPOKEN
    if "input_text" in kinds:
        return TYPED
    return ""


def content_text(content: Any) -> tuple[str | None, bool]:
    """The text of a message's content parts, and whether an audio part lacks a transcript."""
    texts: list[str] = []
    audio_without_transcript = False
    for part in content or ():
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            value = part.get("text")
        elif kind in ("input_audio", "output_audio", "audio"):
            value = part.get("transcript")
            if value is None:
                audio_without_transcript = True
        else:
            continue
        if isinstance(value, str):
            texts.append(value)
    if not texts:
        return None, audio_without_transcript
    return (texts[0] if len(texts) == 1 else "\n".join(texts)), audio_without_transcript


def role_of(item: dict[str, Any]) -> str | None:
    """The turn role of a conversation item, or None when it is not a turn."""
    kind = item.get("type")
    if kind == "message":
        role = item.get("role")
        return role if role in (USER, ASSISTANT) else None
    if kind == "function_call":
        return TOOL_CALL
    if kind == "function_call_output":
        return TOOL_OUTPUT
    return None


def merge_item(state: CaptureState, rec: ItemRecord, item: dict[str, Any]) -> None:
    """Fold an item object (from .added/.done/.retrieved/response.*) into its record."""
    item_status = item.get("status")
    if rec.role == TOOL_CALL:
        rec.name = (item.get("name") or rec.name)[:NAME_MAX]
        rec.tool_call_id = (item.get("call_id") or rec.tool_call_id)[:ID_MAX]
        arguments = item.get("arguments")
        if arguments:
            rec.arguments = arguments
        set_status(rec, item_status if item_status in FINAL_STATUSES else IN_PROGRESS)
        return
    if rec.role == TOOL_OUTPUT:
        rec.tool_call_id = (item.get("call_id") or rec.tool_call_id)[:ID_MAX]
        output = item.get("output")
        if isinstance(output, str):
            rec.output = output
        set_status(rec, COMPLETED)
        return
    text, audio_without_transcript = content_text(item.get("content"))
    if rec.role == USER:
        rec.input_mode = input_mode_of(item.get("content")) or rec.input_mode
        if text is not None:
            rec.text = text
            rec.awaiting_transcript = False
        elif audio_without_transcript and rec.text is None and rec.status == IN_PROGRESS:
            rec.awaiting_transcript = state.transcription_expected
        if rec.awaiting_transcript:
            return
        set_status(rec, COMPLETED)
        return
    # Assistant: an empty or shortened text never replaces generated text (truncation
    # removes the server-side transcript; the transcript keeps what was said).
    if text and not (rec.truncated and rec.text):
        rec.text = text
    if item_status in FINAL_STATUSES:
        set_status(rec, item_status)


def place_item(
    state: CaptureState, event: dict[str, Any], ops: list[Op], *, told: bool
) -> ItemRecord | None:
    """Record the item of an item event at its place; None when it is not a turn."""
    item = event["item"]
    item_id = item["id"]
    if not isinstance(item_id, str):
        raise TypeError("item.id")
    rec = state.items.get(item_id)
    if rec is not None:
        return rec
    if item_id in state.hidden:
        return None
    prev = resolve_prev(state, event.get("previous_item_id"), item_id, ops, told=told)
    role = role_of(item)
    if role is None:
        state.hidden[item_id] = prev
        return None
    return new_item(state, item_id, role, prev)
