"""Reads of sessions, calls and transcripts, and their public JSON shapes (camelCase, as the seed).

`turn_json` is the one serialiser of a transcript turn: the HTTP API and the live push
(sideband) both use it, so the page sees the same shape on both paths.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet

from sessions_app import hooks
from sessions_app.models import Call, ClientSecret, Session, TranscriptTurn
from sessions_app.push import push_position_json, push_seq_current

_TOOL_ROLES = (TranscriptTurn.Role.TOOL_CALL, TranscriptTurn.Role.TOOL_OUTPUT)
# The turns of the conversation itself (not tools): what recaps, memory and Live's history read.
CONVERSATION_ROLES = (TranscriptTurn.Role.USER, TranscriptTurn.Role.ASSISTANT)
# Turns with words in them: completed, or interrupted (what was said before the cut stays).
SPOKEN_STATUSES = (TranscriptTurn.Status.COMPLETED, TranscriptTurn.Status.INCOMPLETE)


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def turn_json(turn: TranscriptTurn) -> dict[str, Any]:
    """One turn as the API and the live push show it; load `call` with the turn (select_related)."""
    data: dict[str, Any] = {
        "itemId": turn.item_id,
        "role": turn.role,
        "text": turn.text,
        "status": turn.status,
        "statusReason": turn.status_reason,
        "position": turn.position,
        "callId": turn.call.call_id if turn.call is not None else None,
        # A user turn: "text" (typed) or "audio" (spoken); null for the assistant and tools.
        "inputMode": turn.input_mode or None,
        "createdAt": iso(turn.created_at),
        "updatedAt": iso(turn.updated_at),
    }
    if turn.role in _TOOL_ROLES:
        data.update(
            name=turn.name,
            arguments=turn.arguments,
            toolCallId=turn.tool_call_id,
            output=turn.output,
        )
    return data


def turn_list(*, session: Session, after: int | None = None) -> QuerySet[TranscriptTurn]:
    """The session's turns in conversation order; only those past `after` when given."""
    turns = TranscriptTurn.objects.filter(session=session).select_related("call")
    if after is not None:
        turns = turns.filter(position__gt=after)
    return turns.order_by("position")


def transcript_json(*, session: Session, after: int | None = None) -> dict[str, Any]:
    return {
        "sessionId": str(session.public_id),
        # The live push's sequence number (and epoch) at read time: a page that sees a later
        # push knows this snapshot is older, one that missed pushes re-reads from its last
        # position. Null while Redis is away: the transcript itself is Postgres'.
        **push_position_json(push_seq_current(session_public_id=str(session.public_id))),
        "turns": [turn_json(turn) for turn in turn_list(session=session, after=after)],
    }


def secret_newest(*, session: Session) -> ClientSecret | None:
    return ClientSecret.objects.filter(session=session).order_by("-created_at", "-id").first()


def call_current(*, session: Session) -> Call | None:
    """The call holding the session's current generation (the newest registered), if any."""
    if session.current_generation == 0:
        return None
    return Call.objects.filter(session=session, generation=session.current_generation).first()


def call_json(call: Call) -> dict[str, Any]:
    return {
        "callId": call.call_id,
        "generation": call.generation,
        "registeredAt": iso(call.registered_at),
        "attachedAt": iso(call.attached_at),
        "endedAt": iso(call.ended_at),
        "endReason": call.end_reason or None,
        "capture": hooks.call_capture(call=call),
    }


def session_json(*, session: Session) -> dict[str, Any]:
    """GET /session/{id}: state, calls (oldest first) and when the browser's access ends: the
    newest secret's expiry (Realtime) or the current Live session's (120 minutes upstream)."""
    secret = secret_newest(session=session)
    calls = list(Call.objects.filter(session=session).order_by("generation"))
    current = next((c for c in calls if c.generation == session.current_generation), None)
    expires_at = secret.expires_at if secret is not None else None
    if session.api == Session.Api.LIVE and current is not None:
        expires_at = current.registered_at + dt.timedelta(seconds=settings.LIVE_SESSION_MAX_S)
    replaced_by = Session.objects.filter(replaces=session).values_list("public_id", flat=True)
    replaced_by_id = replaced_by.first()
    replaces_id = (
        Session.objects.filter(pk=session.replaces_id).values_list("public_id", flat=True).first()
        if session.replaces_id is not None
        else None
    )
    state: dict[str, Any] = {
        "sessionId": str(session.public_id),
        "status": session.status,
        "model": session.model,
        "voice": session.voice,
        "enableTranscription": session.transcription_enabled,
        "createdAt": iso(session.created_at),
        "closedAt": iso(session.closed_at),
        "closeReason": session.close_reason or None,
        "replaces": str(replaces_id) if replaces_id is not None else None,
        "replacedBy": str(replaced_by_id) if replaced_by_id is not None else None,
        "generation": session.current_generation,
        "callId": current.call_id if current is not None else None,
        "expiresAt": iso(expires_at),
        "capture": hooks.call_capture(call=current) if current is not None else None,
        "calls": [call_json(call) for call in calls],
        "turnCount": TranscriptTurn.objects.filter(session=session).count(),
        # The profile in force (its instructions are applied on renew): a reloaded page shows it.
        "profile": hooks.session_profile_json(session=session),
    }
    if session.api == Session.Api.LIVE:
        state["api"] = session.api  # Realtime sessions keep the seed's shape exactly
    return state


def session_open_count(*, owner_hash: str) -> int:
    return Session.objects.filter(owner_hash=owner_hash, status=Session.Status.ACTIVE).count()


def session_newest_open(*, owner_hash: str) -> Session | None:
    return (
        Session.objects.filter(owner_hash=owner_hash, status=Session.Status.ACTIVE)
        .order_by("-created_at", "-id")
        .first()
    )


# A conservative token estimate for Live's `input` limit: about 3 characters a token (English
# averages 4) plus a few tokens of message framing, so a history that fits here fits upstream.
LIVE_CHARS_PER_TOKEN = 3
LIVE_TOKENS_PER_MESSAGE = 4


def live_input_tokens(text: str) -> int:
    return -(-len(text) // LIVE_CHARS_PER_TOKEN) + LIVE_TOKENS_PER_MESSAGE


def live_history(*, session: Session, max_messages: int, max_tokens: int) -> list[tuple[str, str]]:
    """The newest user and assistant turns of `session` that fit Live's `input` limits, oldest
    first, as (role, text): what a renewed Live session starts with.

    A Live turn's text is stored as it grows, so a turn still `in_progress` (its call was
    superseded before the segment closed) counts too; failed and empty turns do not. Whole
    turns only: the newest turn that does not fit ends the history.
    """
    history: list[tuple[str, str]] = []
    budget = max_tokens
    rows = (
        TranscriptTurn.objects.filter(session=session, role__in=CONVERSATION_ROLES)
        .exclude(status=TranscriptTurn.Status.FAILED)
        .exclude(Q(text__isnull=True) | Q(text=""))
        .order_by("-position")
        .values_list("role", "text")
    )
    for role, raw in rows.iterator(chunk_size=64):
        text = (raw or "").strip()
        if len(history) >= max_messages:
            break
        cost = live_input_tokens(text)
        if cost > budget:
            break
        budget -= cost
        history.append((role, text))
    history.reverse()
    return history
