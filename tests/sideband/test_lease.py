"""The lease and the reconciler (sideband/services.py): races settled by conditional updates."""

from __future__ import annotations

import datetime as dt
from typing import cast

import pytest
from django.utils import timezone

from sessions_app.models import Call, Session
from sideband import services
from tests.factories import CallFactory, SessionFactory

pytestmark = pytest.mark.django_db


def _call(generation: int = 1, **fields: object) -> Call:
    session = SessionFactory(current_generation=generation)
    return cast(Call, CallFactory(session=session, generation=generation, **fields))


def test_claim_takes_a_free_lease() -> None:
    call = _call()

    claimed = services.lease_claim(call_id=call.call_id, generation=1, owner="w1")

    call.refresh_from_db()
    assert claimed is True
    assert call.lease_owner == "w1"
    assert call.lease_expires_at is not None
    assert call.attached_at is not None


def test_second_claim_of_a_held_lease_does_nothing() -> None:
    call = _call()
    services.lease_claim(call_id=call.call_id, generation=1, owner="w1")
    before = Call.objects.values("lease_owner", "lease_expires_at").get(pk=call.pk)

    claimed = services.lease_claim(call_id=call.call_id, generation=1, owner="w2")

    assert claimed is False
    assert Call.objects.values("lease_owner", "lease_expires_at").get(pk=call.pk) == before


def test_claim_of_an_expired_lease_takes_over() -> None:
    call = _call(lease_owner="dead", lease_expires_at=timezone.now() - dt.timedelta(seconds=1))

    claimed = services.lease_claim(call_id=call.call_id, generation=1, owner="w2")

    assert claimed is True
    assert Call.objects.get(pk=call.pk).lease_owner == "w2"


def test_claim_of_a_superseded_generation_does_nothing() -> None:
    call = _call(generation=1)
    Session.objects.filter(pk=call.session_id).update(current_generation=2)

    claimed = services.lease_claim(call_id=call.call_id, generation=1, owner="w1")

    assert claimed is False
    assert Call.objects.get(pk=call.pk).lease_owner == ""


def test_claim_of_an_ended_call_does_nothing() -> None:
    call = _call(ended_at=timezone.now(), end_reason=Call.EndReason.HANGUP)

    assert services.lease_claim(call_id=call.call_id, generation=1, owner="w1") is False
    assert Call.objects.get(pk=call.pk).lease_owner == ""


def test_claim_with_the_reconcilers_token_takes_the_reservation() -> None:
    later = timezone.now() + dt.timedelta(seconds=30)
    call = _call(lease_owner="dispatch:abc", lease_expires_at=later)

    assert services.lease_claim(call_id=call.call_id, generation=1, owner="w1") is False
    assert services.lease_claim(
        call_id=call.call_id, generation=1, owner="w1", dispatch="dispatch:abc"
    )
    assert Call.objects.get(pk=call.pk).lease_owner == "w1"


def test_heartbeat_extends_held_leases_and_drops_lost_ones() -> None:
    held = _call()
    superseded = _call()
    services.lease_claim(call_id=held.call_id, generation=1, owner="w1")
    services.lease_claim(call_id=superseded.call_id, generation=1, owner="w1")
    Session.objects.filter(pk=superseded.session_id).update(current_generation=2)
    before = Call.objects.get(pk=held.pk).lease_expires_at
    assert before is not None

    kept = services.leases_heartbeat(owner="w1", call_ids=[held.call_id, superseded.call_id])

    assert kept == {held.call_id}
    after = Call.objects.get(pk=held.pk).lease_expires_at
    assert after is not None
    assert after >= before
    assert services.call_lost_reason(call_id=superseded.call_id, owner="w1") == "superseded"


def test_reconciler_reserves_a_silent_call_once() -> None:
    call = _call(lease_owner="dead", lease_expires_at=timezone.now() - dt.timedelta(seconds=1))

    first = services.calls_reconcile()
    second = services.calls_reconcile()

    assert [(d.call_id, d.generation) for d in first] == [(call.call_id, 1)]
    assert second == []
    assert Call.objects.get(pk=call.pk).lease_owner == first[0].token


def test_reconciler_ignores_live_leases() -> None:
    _call(lease_owner="w1", lease_expires_at=timezone.now() + dt.timedelta(seconds=30))

    assert services.calls_reconcile() == []


def test_reconciler_dispatches_a_call_never_claimed_after_the_grace(settings: object) -> None:
    call = _call()
    Call.objects.filter(pk=call.pk).update(registered_at=timezone.now() - dt.timedelta(minutes=1))

    dispatches = services.calls_reconcile()

    assert [d.call_id for d in dispatches] == [call.call_id]


def test_reconciler_ends_a_superseded_call_instead_of_dispatching() -> None:
    call = _call(lease_owner="dead", lease_expires_at=timezone.now() - dt.timedelta(seconds=1))
    Session.objects.filter(pk=call.session_id).update(current_generation=2)

    assert services.calls_reconcile() == []

    call.refresh_from_db()
    assert call.end_reason == Call.EndReason.SUPERSEDED
    assert call.ended_at is not None


def test_reconciler_ends_a_call_past_the_session_cap() -> None:
    call = _call(lease_owner="dead", lease_expires_at=timezone.now() - dt.timedelta(seconds=1))
    Call.objects.filter(pk=call.pk).update(registered_at=timezone.now() - dt.timedelta(hours=2))

    assert services.calls_reconcile() == []
    assert Call.objects.get(pk=call.pk).end_reason == Call.EndReason.SESSION_EXPIRED


def test_reconciler_holds_a_live_call_to_lives_own_session_cap(settings) -> None:
    settings.REALTIME_SESSION_MAX_S = 3600
    settings.LIVE_SESSION_MAX_S = 7200
    session = SessionFactory(current_generation=1, api=Session.Api.LIVE)
    call = cast(
        Call,
        CallFactory(
            session=session,
            generation=1,
            lease_owner="dead",
            lease_expires_at=timezone.now() - dt.timedelta(seconds=1),
        ),
    )
    # Past a Realtime session's cap, within a Live session's.
    Call.objects.filter(pk=call.pk).update(registered_at=timezone.now() - dt.timedelta(hours=1.5))

    dispatches = services.calls_reconcile()

    assert [d.call_id for d in dispatches] == [call.call_id]
    assert Call.objects.get(pk=call.pk).ended_at is None


def test_release_hands_the_call_back() -> None:
    call = _call()
    services.lease_claim(call_id=call.call_id, generation=1, owner="w1")

    released = services.lease_release(owner="w1", call_ids=[call.call_id])

    assert released == [(call.call_id, 1)]
    assert services.lease_claim(call_id=call.call_id, generation=1, owner="w2") is True


def test_call_end_is_recorded_once() -> None:
    call = _call()

    first = services.call_end(call_id=call.call_id, reason=Call.EndReason.HANGUP)
    second = services.call_end(call_id=call.call_id, reason=Call.EndReason.SECRET_EXPIRED)

    assert first is not None
    assert second is None
    assert Call.objects.get(pk=call.pk).end_reason == Call.EndReason.HANGUP
