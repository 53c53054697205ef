"""Writes of the sideband worker: the lease (claim, heartbeat, release), call ends, reconciling.

Every race is settled by one conditional UPDATE on the call row (healthchecks' claims):

- a claim succeeds only while the call is live, its generation is the session's current one (the
  fencing number) and its lease is free, expired, ours, or reserved for us by the reconciler;
- the heartbeat extends only the leases this owner still holds on current calls, and tells the
  owner which of its calls it lost;
- the reconciler reserves a silent call with a compare-and-set on the lease it read, so two
  reconcilers never dispatch the same call twice.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from sessions_app.models import Call, Session, TranscriptTurn
from sideband import end_reasons

logger = logging.getLogger(__name__)

DISPATCH_PREFIX = "dispatch:"


def _current_call() -> Exists:
    """The call's generation is its session's current one and the session is active."""
    return Exists(
        Session.objects.filter(
            pk=OuterRef("session_id"),
            current_generation=OuterRef("generation"),
            status=Session.Status.ACTIVE,
        )
    )


def _lease_until(now: dt.datetime) -> dt.datetime:
    return now + dt.timedelta(seconds=settings.SIDEBAND_LEASE_S)


def lease_claim(*, call_id: str, generation: int, owner: str, dispatch: str = "") -> bool:
    """Take the call's lease for `owner`; False = someone else holds it, or the call is not live.

    A False answer means the task is a duplicate (or stale) and must do nothing.
    """
    now = timezone.now()
    free = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now) | Q(lease_owner=owner)
    if dispatch:
        free |= Q(lease_owner=dispatch)
    updated = (
        Call.objects.filter(call_id=call_id, generation=generation, ended_at__isnull=True)
        .filter(_current_call())
        .filter(free)
        .update(lease_owner=owner, lease_expires_at=_lease_until(now))
    )
    if updated:
        Call.objects.filter(call_id=call_id, attached_at__isnull=True).update(attached_at=now)
    return bool(updated)


def leases_heartbeat(*, owner: str, call_ids: Iterable[str], extend: bool = True) -> set[str]:
    """The call ids this owner still holds (live, current, lease ours); extends their leases.

    One SELECT (and with `extend` one UPDATE) for all of the process's calls, however many.
    """
    ids = list(call_ids)
    if not ids:
        return set()
    now = timezone.now()
    # By owner, not by an IN list of every call id: polled every second, with a thousand calls.
    held = Call.objects.filter(lease_owner=owner, ended_at__isnull=True).filter(_current_call())
    kept = set(held.values_list("call_id", flat=True)) & set(ids)
    if kept and extend:
        Call.objects.filter(call_id__in=kept, lease_owner=owner, ended_at__isnull=True).update(
            lease_expires_at=_lease_until(now)
        )
    return kept


def lease_release(*, owner: str, call_ids: Iterable[str]) -> list[tuple[str, int]]:
    """Hand calls back (graceful shutdown): their leases expire now, so anyone may claim them.

    Returns (call_id, generation) of the live calls released, for re-dispatch.
    """
    ids = list(call_ids)
    if not ids:
        return []
    with transaction.atomic():
        rows = list(
            Call.objects.select_for_update()
            .filter(call_id__in=ids, lease_owner=owner, ended_at__isnull=True)
            .values_list("call_id", "generation")
        )
        Call.objects.filter(call_id__in=[r[0] for r in rows], lease_owner=owner).update(
            lease_owner="", lease_expires_at=None
        )
    return rows


@dataclass(frozen=True)
class EndedCall:
    call_id: str
    session_public_id: str
    reason: str
    generation: int = 0


# Why a call ends is decided in sideband.end_reasons. What an end then does is decided here,
# once: the page is told (`call.ended`) after commit, and a call that WE end while it may
# still run upstream (end_reasons.ENDED_HERE) is hung up there too, so it stops running (and
# billing).


def calls_end(*, calls: QuerySet[Call], reason: str, message: str = "") -> list[EndedCall]:
    """End every live call of `calls` with `reason` (Call.EndReason); the calls ended now.

    Each end is a conditional UPDATE (ended_at IS NULL), so a call ended concurrently is not
    ended twice. After commit the page hears `call.ended`, and a reason in
    end_reasons.ENDED_HERE hangs the call up upstream (`sideband.tasks.call_hangup`:
    idempotent, retried).
    """
    if reason not in Call.EndReason.values:
        raise ValueError(f"unknown end reason {reason!r}")
    now = timezone.now()
    ended: list[EndedCall] = []
    with transaction.atomic():
        live = calls.filter(ended_at__isnull=True).select_related("session").order_by("pk")
        for call in live:
            updated = Call.objects.filter(pk=call.pk, ended_at__isnull=True).update(
                ended_at=now, end_reason=reason, lease_owner="", lease_expires_at=None
            )
            if updated:
                ended.append(
                    EndedCall(
                        call_id=call.call_id,
                        session_public_id=str(call.session.public_id),
                        reason=reason,
                        generation=call.generation,
                    )
                )
        if ended:
            transaction.on_commit(functools.partial(_calls_ended_announce, ended, message))
    for item in ended:
        logger.info("call %s ended: %s", item.call_id, reason)
    return ended


def call_end(*, call_id: str, reason: str, message: str = "") -> EndedCall | None:
    """Mark a live call ended with `reason` (Call.EndReason); None if it had already ended."""
    ended = calls_end(calls=Call.objects.filter(call_id=call_id), reason=reason, message=message)
    return ended[0] if ended else None


def _calls_ended_announce(ended: list[EndedCall], message: str) -> None:
    """After commit: tell each call's page, and hang up upstream what we ended ourselves."""
    from sessions_app.push import push_to_session_public_id
    from sideband.tasks import call_hangup

    for item in ended:
        payload = {
            "type": "call.ended",
            "callId": item.call_id,
            "reason": item.reason,
            "message": message,
            "generation": item.generation,
        }
        try:
            push_to_session_public_id(session_public_id=item.session_public_id, payload=payload)
        except Exception:
            # A lost notification costs the page a re-read, never the hangup below.
            logger.exception("push of call.ended failed call=%s", item.call_id)
        if item.reason in end_reasons.ENDED_HERE:
            try:
                call_hangup.delay(item.call_id)
            except Exception:
                # The call then runs until the upstream's own cap; nothing else is lost.
                logger.exception("dispatch of call_hangup failed call=%s", item.call_id)


def call_lost_reason(*, call_id: str, owner: str) -> str | None:
    """Why an owner lost a call: the end reason to record, or None (ended already/taken over).

    A call whose session moved to a newer generation ends `superseded`; a closed session ends
    its calls `session_closed`; a lease taken by another owner is theirs now, not an end.
    """
    call = Call.objects.select_related("session").filter(call_id=call_id).first()
    if call is None or call.ended_at is not None:
        return None
    return _call_gone_end(call)


def _call_gone_end(call: Call, *, past_cap: bool = False) -> str | None:
    """Why `call` (its session loaded) can no longer be held (end_reasons.call_gone_end)."""
    return end_reasons.call_gone_end(
        superseded=call.session.current_generation > call.generation,
        session_active=call.session.status == Session.Status.ACTIVE,
        past_cap=past_cap,
    )


def call_session_cap(call: Call) -> dt.timedelta:
    """How long after its registration a call may still be held: its API's session cap (the
    upstream's maximum duration) plus a lease of margin."""
    if call.session.api == Session.Api.LIVE:
        session_max_s = settings.LIVE_SESSION_MAX_S
    else:
        session_max_s = settings.REALTIME_SESSION_MAX_S
    return dt.timedelta(seconds=session_max_s + settings.SIDEBAND_LEASE_S)


@dataclass(frozen=True)
class Dispatch:
    call_id: str
    generation: int
    token: str
    unclaimed: bool  # no worker ever held the call (as opposed to an owner gone silent)


def calls_reconcile(*, limit: int = 500) -> list[Dispatch]:
    """Find live calls whose owner went silent; reserve each for one new dispatch.

    Returns the reservations; the caller sends `call_own` for each (after commit). Calls that
    can no longer be owned (superseded, session closed, past the session cap) are ended instead.
    """
    now = timezone.now()
    grace = dt.timedelta(seconds=settings.SIDEBAND_LEASE_S)
    silent = (
        Call.objects.filter(ended_at__isnull=True)
        .filter(
            Q(lease_expires_at__lt=now)
            | Q(lease_expires_at__isnull=True, registered_at__lt=now - grace)
        )
        .select_related("session")
        .order_by("lease_expires_at")[:limit]
    )
    dispatches: list[Dispatch] = []
    for call in silent:
        gone = _call_gone_end(call, past_cap=call.registered_at < now - call_session_cap(call))
        if gone is not None:
            call_end(call_id=call.call_id, reason=gone)
            continue
        token = DISPATCH_PREFIX + secrets.token_hex(8)
        # Compare-and-set on the lease we read: a concurrent reconciler or a reviving owner
        # changes it, and then this reservation does nothing.
        reserved = Call.objects.filter(
            pk=call.pk,
            ended_at__isnull=True,
            lease_owner=call.lease_owner,
            lease_expires_at=call.lease_expires_at,
        ).update(lease_owner=token, lease_expires_at=_lease_until(now))
        if reserved:
            dispatches.append(
                Dispatch(
                    call_id=call.call_id,
                    generation=call.generation,
                    token=token,
                    unclaimed=call.attached_at is None,
                )
            )
    return dispatches


def turns_close_out(*, limit: int = 500) -> int:
    """Close out spoken turns still waiting for a transcript whose call is over: nobody will
    ever write them again (a held call's are closed out by its owner: sideband.owner.upkeep).
    Their words were not transcribed; the page is told. Returns how many.

    Each is a conditional UPDATE (still in progress without text), so a transcript that lands
    meanwhile wins; running twice changes nothing more.
    """
    wait_s = 2 * settings.SIDEBAND_TRANSCRIPT_WAIT_S
    now = timezone.now()
    waiting = (
        TranscriptTurn.objects.filter(
            role=TranscriptTurn.Role.USER,
            status=TranscriptTurn.Status.IN_PROGRESS,
            text__isnull=True,
            updated_at__lt=now - dt.timedelta(seconds=wait_s),
        )
        .filter(Q(call__isnull=True) | Q(call__ended_at__isnull=False))
        .order_by("pk")[:limit]
    )
    reason = f"not transcribed: no transcript within {wait_s:g} s"
    closed: list[int] = []
    with transaction.atomic():
        for pk in waiting.values_list("pk", flat=True):
            if TranscriptTurn.objects.filter(
                pk=pk, status=TranscriptTurn.Status.IN_PROGRESS, text__isnull=True
            ).update(
                status=TranscriptTurn.Status.UNTRANSCRIBED,
                status_reason=reason,
                completed_at=now,
                updated_at=now,
            ):
                closed.append(pk)
        if closed:
            transaction.on_commit(functools.partial(_turns_announce, closed))
    return len(closed)


def _turns_announce(pks: list[int]) -> None:
    from sessions_app.push import push_to_session_public_id
    from sessions_app.selectors import turn_json

    for turn in TranscriptTurn.objects.filter(pk__in=pks).select_related("call", "session"):
        push_to_session_public_id(
            session_public_id=str(turn.session.public_id),
            payload={"type": "turn", "turn": turn_json(turn)},
        )
