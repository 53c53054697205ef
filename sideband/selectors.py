"""Reads of the sideband worker."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.utils import timezone

from sessions_app import upstream, upstream_live
from sessions_app.crypto import secret_decrypt
from sessions_app.models import Call, Session
from sideband.capture import capture_frame
from sideband.live_capture import LiveCaptureState, live_capture_frame
from sideband.owner import CallSpec
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
        deadline=_deadline(call, settings.REALTIME_SESSION_MAX_S),
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
        deadline=_deadline(call, settings.LIVE_SESSION_MAX_S),
        url=upstream_live.live_sideband_url(call.call_id),
        headers=_headers(upstream_live.live_sideband_headers()),
        capture=live_capture_frame,
    )


def _deadline(call: Call, session_max_s: int) -> float:
    """Monotonic: the upstream session cap (plus a lease of margin) from the registration."""
    cap_s = session_max_s + settings.SIDEBAND_LEASE_S
    remaining = cap_s - (timezone.now() - call.registered_at).total_seconds()
    return time.monotonic() + remaining
