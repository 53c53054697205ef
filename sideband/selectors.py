"""Reads of the sideband worker."""

from __future__ import annotations

import datetime as dt
import logging
import time

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from sessions_app.crypto import secret_decrypt
from sessions_app.models import Call
from sideband.owner.spec import CallSpec
from sideband.services import DISPATCH_PREFIX
from sideband.transcript import state_load

logger = logging.getLogger(__name__)


def seed_events_for(*, call: Call) -> list[dict]:
    """Rehydration of a renewed call (extraction.seeding), when installed and enabled."""
    if call.generation <= 1 or settings.SIDEBAND_SEED_TURNS <= 0:
        return []
    try:
        from extraction.seeding import seed_events  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return []
    return list(seed_events(call=call))


def call_spec_load(*, call_id: str) -> CallSpec | None:
    """Everything the call's connection needs, read once."""
    call = Call.objects.select_related("session", "secret").filter(call_id=call_id).first()
    if call is None:
        return None
    secret = secret_decrypt(call.secret.value_encrypted) if call.secret is not None else ""
    cap_s = settings.REALTIME_SESSION_MAX_S + settings.SIDEBAND_LEASE_S
    remaining = cap_s - (timezone.now() - call.registered_at).total_seconds()
    state = state_load(call=call)
    seed = seed_events_for(call=call)
    # The seed's items come back as `conversation.item.added`: they are copies of stored turns,
    # so the capture treats them as hidden items (no turn), and an item that follows one is
    # placed after the newest stored turn.
    anchor = state.order[-1] if state.order else None
    for event in seed:
        item_id = (event.get("item") or {}).get("id")
        if isinstance(item_id, str):
            state.hidden[item_id] = anchor
    return CallSpec(
        call_id=call.call_id,
        generation=call.generation,
        call=call,
        session_public_id=str(call.session.public_id),
        secret=secret,
        state=state,
        seed_events=seed,
        deadline=time.monotonic() + remaining,
    )


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
