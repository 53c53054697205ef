"""Reads of the sideband worker: what a call's connection needs, the capture state it starts
from, and whether a call is being captured."""

from __future__ import annotations

import datetime as dt
import logging
import time

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from extraction.seeding import seed_events
from sessions_app import upstream, upstream_live
from sessions_app.crypto import secret_decrypt
from sessions_app.models import Call, Session, TranscriptTurn
from sessions_app.seed_items import is_seed_item
from sideband.capture import CaptureState, TurnUpsert, capture_frame, record_fields
from sideband.live_capture import LiveCaptureState, live_capture_frame
from sideband.owner.spec import CallSpec
from sideband.services import DISPATCH_PREFIX, call_session_cap

logger = logging.getLogger(__name__)


def seed_events_for(*, call: Call) -> list[dict]:
    """Rehydration of a renewed call (extraction.seeding); none for a session's first call."""
    if call.generation <= 1:
        return []
    return seed_events(call=call)


def state_load(*, call: Call) -> CaptureState:
    """The capture state of `call`, seeded from the session's stored turns (takeover, reconnect)."""
    transcription = (
        Session.objects.filter(pk=call.session_id)
        .values_list("transcription_enabled", flat=True)
        .first()
    )
    turns = TranscriptTurn.objects.filter(session_id=call.session_id).order_by("position")
    return CaptureState.seeded(
        (turn_record(turn) for turn in turns), transcription_expected=transcription is not False
    )


def turn_record(turn: TranscriptTurn) -> TurnUpsert:
    """A stored turn as the capture's record of it."""
    return TurnUpsert(
        item_id=turn.item_id,
        role=turn.role,
        previous_item_id=turn.previous_item_id or None,
        **record_fields(turn),
    )


def _seed_items_hide(state: CaptureState, seed: list[dict]) -> None:
    """The seed's items come back as `conversation.item.added`: they are copies of stored
    turns, so the capture treats them as hidden items (no turn), and an item that follows one
    is placed after the newest stored turn."""
    anchor = state.order[-1] if state.order else None
    for event in seed:
        item_id = (event.get("item") or {}).get("id")
        if is_seed_item(item_id):
            state.hidden[item_id] = anchor


def _headers(lines: list[str]) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in lines)


def call_spec_load(*, call_id: str) -> CallSpec | None:
    """Everything the call's connection needs, read once; the wire is the session's API's."""
    call = Call.objects.select_related("session", "secret").filter(call_id=call_id).first()
    if call is None:
        return None
    if call.session.api == Session.Api.LIVE:
        return _live_spec(call)
    secret = secret_decrypt(call.secret.value_encrypted) if call.secret is not None else ""
    state = state_load(call=call)
    seed = seed_events_for(call=call)
    _seed_items_hide(state, seed)
    return CallSpec(
        call_id=call.call_id,
        generation=call.generation,
        call=call,
        session_public_id=str(call.session.public_id),
        secret=secret,
        state=state,
        seed_events=seed,
        deadline=_deadline(call),
        url=upstream.sideband_url(call.call_id),
        headers=_headers(upstream.sideband_headers(client_secret=secret)),
        capture=capture_frame,
    )


def _live_spec(call: Call) -> CallSpec:
    """A Live session's sideband: the project key, no seed (a renewed session got its
    history as `input`), a fresh capture whose turns follow the session's stored ones."""
    return CallSpec(
        call_id=call.call_id,
        generation=call.generation,
        call=call,
        session_public_id=str(call.session.public_id),
        secret="",
        state=LiveCaptureState(session_id=call.call_id),
        seed_events=[],
        deadline=_deadline(call),
        url=upstream_live.live_sideband_url(call.call_id),
        headers=_headers(upstream_live.live_sideband_headers()),
        capture=live_capture_frame,
    )


def _deadline(call: Call) -> float:
    """Monotonic: the call's session cap (services.call_session_cap) from its registration."""
    remaining = call_session_cap(call) - (timezone.now() - call.registered_at)
    return time.monotonic() + remaining.total_seconds()


def _unowned() -> Q:
    """No process holds the call's socket: never claimed, reserved by the reconciler for a
    dispatch not yet taken, or the owner's lease expired."""
    return (
        Q(lease_owner="")
        | Q(lease_owner__startswith=DISPATCH_PREFIX)
        | Q(lease_expires_at__lt=timezone.now())
    )


def _grace_ended_before() -> dt.datetime:
    """A call registered before this is past its grace: someone should hold it by now."""
    return timezone.now() - dt.timedelta(seconds=settings.SIDEBAND_LEASE_S)


def call_capture(*, call: Call) -> str:
    """What the session read API says of the call's capture: "active" (a worker holds its
    socket), "starting" (registered, not claimed yet, within its grace period), "pending"
    (no worker holds it past its grace: the transcript is not being captured) or "ended"."""
    if call.ended_at is not None:
        return "ended"
    unowned = (
        not call.lease_owner
        or call.lease_owner.startswith(DISPATCH_PREFIX)
        or call.lease_expires_at is None
        or call.lease_expires_at < timezone.now()
    )
    if not unowned:
        return "active"
    return "pending" if call.registered_at < _grace_ended_before() else "starting"


def calls_unclaimed_count() -> int:
    """Live calls no process holds past their grace period (the `pending` of call_capture)."""
    return (
        Call.objects.filter(ended_at__isnull=True, registered_at__lt=_grace_ended_before())
        .filter(_unowned())
        .count()
    )
