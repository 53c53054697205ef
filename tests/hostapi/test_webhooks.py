"""Signed webhooks (Standard Webhooks) against a real HTTP receiver on 127.0.0.1, delivered by
real worker processes: each event type once, signed, idempotent by event id, retried with
backoff through a receiver outage."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from extraction.services import extraction_perform, extraction_request
from hostapi.models import EventType, WebhookDelivery, WebhookEndpoint
from hostapi.webhooks import (
    webhook_attempt,
    webhook_endpoint_create,
    webhook_sign,
    webhooks_scan,
)
from sessions_app.models import Call, Session
from tests.host_users import a_session, user_client
from tests.hostapi.conftest import Received
from tests.sessions_app.helpers import session_create
from tests.sideband.helpers import attached, call_start, synthetic_call, turns_settled, wait_for

ALL_TYPES = list(EventType.values)


def verified(secret: str, message: Received, *, tolerance_s: int = 300) -> dict[str, Any]:
    """What a receiver does (README): check the timestamp and the signature, then parse."""
    msg_id = message.headers["webhook-id"]
    timestamp = message.headers["webhook-timestamp"]
    assert abs(time.time() - int(timestamp)) < tolerance_s
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + message.body, hashlib.sha256)
    signatures = [s.split(",", 1)[1] for s in message.headers["webhook-signature"].split()]
    assert any(
        hmac.compare_digest(base64.b64encode(expected.digest()).decode(), s) for s in signatures
    )
    return dict(message.json())


def test_the_signature_is_the_standard_webhooks_one():
    # The specification's reference test vector (standard-webhooks, libraries' tests).
    assert (
        webhook_sign(
            secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
            timestamp=1614265330,
            body=b'{"test": 2432232314}',
        )
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


@pytest.mark.django_db(transaction=True)
def test_a_receiver_gets_each_event_type_once_signed(upstream, worker, receiver):
    endpoint, secret = webhook_endpoint_create(url=receiver.url, event_types=ALL_TYPES)
    webhooks_scan()  # the cursors start now
    # User 42 talks on a call the real worker captures: two turns completed.
    session: Session = a_session("42")
    synthetic = synthetic_call(upstream)
    call = attached(upstream, call_start(session, synthetic))
    upstream.control(
        "POST", f"/_emulator/calls/{call.call_id}/user-text", {"text": "My name is Ada."}
    )
    wait_for(turns_settled(session, 2), timeout=10, what="the turns")
    # A profile is extracted, the call is hung up, the session is refreshed (closed).
    outcome = extraction_request(session=session)
    assert outcome.run is not None
    extraction_perform(run=outcome.run)
    upstream.control("POST", f"/_emulator/calls/{call.call_id}/hangup")
    wait_for(
        lambda: Call.objects.filter(pk=call.pk, ended_at__isnull=False).exists(),
        what="the call's end",
    )
    session_create(user_client("42"), reset=True)

    webhooks_scan()
    received = wait_for(lambda: len(receiver.events()) >= 5 and receiver.events(), what="5 events")

    events = [verified(secret, message) for message in received]
    assert sorted(e["type"] for e in events) == sorted(
        ["turn.completed", "turn.completed", "profile.extracted", "call.ended", "session.closed"]
    )
    assert all(e["data"]["sessionId"] == str(session.public_id) for e in events)
    assert all(e["data"]["subject"] == "42" for e in events)
    by_type = {e["type"]: e["data"] for e in events}
    assert by_type["profile.extracted"]["profile"]["name"]["value"] == "Ada"
    assert by_type["call.ended"]["call"]["endReason"] == "hangup"
    assert by_type["session.closed"]["closeReason"] == "refreshed"
    turn_texts = sorted(e["data"]["turn"]["text"] for e in events if e["type"] == "turn.completed")
    assert turn_texts == sorted(["My name is Ada.", 'You said: "My name is Ada.".'])
    ids = [m.headers["webhook-id"] for m in received]
    assert len(set(ids)) == 5
    # Scanning again owes nothing: the same events are the same deliveries, all delivered.
    assert webhooks_scan() == 0
    deliveries = WebhookDelivery.objects.filter(endpoint=endpoint)
    assert deliveries.count() == 5
    assert set(deliveries.values_list("status", flat=True)) == {"delivered"}
    assert len(receiver.events()) == 5


def _closed_session() -> Session:
    session: Session = a_session(
        "42",
        status="closed",
        closed_at=timezone.now(),
        close_reason="refreshed",
    )
    return session


@pytest.mark.django_db(transaction=True)
def test_a_receiver_outage_is_retried_until_it_is_back(worker, receiver):
    endpoint, secret = webhook_endpoint_create(url=receiver.url, event_types=["session.closed"])
    webhooks_scan()
    receiver.stop()  # the outage: the port refuses connections
    session = _closed_session()

    webhooks_scan()
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    # `attempts` counts claims: at 2 the first attempt has failed and a retry is claimed.
    wait_for(
        lambda: WebhookDelivery.objects.filter(pk=delivery.pk, attempts__gte=2).exists(),
        what="a failed attempt and its retry",
    )
    failed = WebhookDelivery.objects.get(pk=delivery.pk)
    assert failed.status == "pending"
    assert "Connection refused" in failed.last_error
    receiver.start()  # back, on the same port
    (message,) = wait_for(receiver.events, timeout=15, what="the delivery after the outage")

    event = verified(secret, message)
    assert (event["type"], event["data"]["sessionId"]) == ("session.closed", str(session.public_id))
    assert message.headers["webhook-id"] == delivery.event_id
    done = wait_for(
        lambda: WebhookDelivery.objects.filter(pk=delivery.pk, status="delivered").first(),
        what="the delivery marked delivered",
    )
    # Refused at least once, delivered by a later attempt (the retry claimed above may be the
    # one that meets the receiver back: how many attempts that takes is a race, not a contract).
    assert done.attempts >= 2
    assert done.last_status_code == 204


@pytest.mark.django_db(transaction=True)
def test_an_erroring_receiver_gets_the_same_event_id_again(worker, receiver):
    endpoint, secret = webhook_endpoint_create(url=receiver.url, event_types=["session.closed"])
    webhooks_scan()
    receiver.fail_next = 2  # two 503s
    _closed_session()

    webhooks_scan()
    (message,) = wait_for(receiver.events, timeout=15, what="the delivery after two 503s")

    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert receiver.refused == 2
    assert message.headers["webhook-id"] == delivery.event_id
    verified(secret, message)
    wait_for(
        lambda: WebhookDelivery.objects.filter(
            pk=delivery.pk, status="delivered", attempts=3
        ).exists(),
        what="delivered on the third attempt",
    )


@pytest.mark.django_db
def test_an_attempt_run_twice_sends_once(receiver):
    webhook_endpoint_create(url=receiver.url, event_types=["session.closed"])
    webhooks_scan()
    _closed_session()
    webhooks_scan()  # in a test transaction: nothing is dispatched, the test runs the attempt
    delivery = WebhookDelivery.objects.get()

    first = webhook_attempt(delivery_id=delivery.pk, attempt=1)
    second = webhook_attempt(delivery_id=delivery.pk, attempt=1)

    assert first is not None
    assert (first.status, first.attempts) == ("delivered", 1)
    assert second is None
    assert len(receiver.events()) == 1


@pytest.mark.django_db
def test_a_delivery_fails_after_its_last_attempt(receiver, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    receiver.fail_next = 5
    webhook_endpoint_create(url=receiver.url, event_types=["session.closed"])
    webhooks_scan()
    _closed_session()
    webhooks_scan()
    delivery = WebhookDelivery.objects.get()

    first = webhook_attempt(delivery_id=delivery.pk, attempt=1)
    second = webhook_attempt(delivery_id=delivery.pk, attempt=2)

    assert first is not None
    assert second is not None
    assert (first.status, first.last_status_code) == ("pending", 503)
    assert first.next_attempt_at > timezone.now()
    assert (second.status, second.attempts) == ("failed", 2)
    assert receiver.refused == 2


@pytest.mark.django_db
def test_endpoints_get_only_their_event_types_and_rescans_add_nothing(receiver):
    closed_only, _ = webhook_endpoint_create(url=receiver.url, event_types=["session.closed"])
    turns_only, _ = webhook_endpoint_create(url=receiver.url, event_types=["turn.completed"])
    webhooks_scan()
    _closed_session()

    webhooks_scan()
    webhooks_scan()

    assert list(WebhookDelivery.objects.values_list("endpoint_id", "event_type")) == [
        (closed_only.pk, "session.closed")
    ]
    assert not WebhookDelivery.objects.filter(endpoint=turns_only).exists()


@pytest.mark.django_db
def test_an_admin_registers_an_endpoint_and_sees_its_secret_once(receiver):
    staff = Client()
    staff.force_login(User.objects.create_superuser("admin", "admin@example.com", None))

    added = staff.post(
        "/admin/hostapi/webhookendpoint/add/",
        {"url": receiver.url, "event_types": ["turn.completed", "call.ended"], "is_active": "on"},
        follow=True,
    )

    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.event_types == ["turn.completed", "call.ended"]
    (shown,) = [str(m) for m in added.context["messages"] if "secret" in str(m)]
    assert shown.split(": ", 1)[1].startswith("whsec_")
    assert shown.split(": ", 1)[1] not in endpoint.secret_encrypted
    log = staff.get("/admin/hostapi/webhookdelivery/")
    assert log.status_code == 200


@pytest.mark.django_db
def test_a_delivery_to_a_disabled_endpoint_fails_without_a_request(receiver):
    endpoint, _ = webhook_endpoint_create(url=receiver.url, event_types=["session.closed"])
    webhooks_scan()
    _closed_session()
    webhooks_scan()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(is_active=False)
    delivery = WebhookDelivery.objects.get()

    attempted = webhook_attempt(delivery_id=delivery.pk, attempt=1)

    assert attempted is not None
    assert (attempted.status, attempted.last_error) == ("failed", "The endpoint is disabled.")
    assert receiver.events() == []
    assert webhooks_scan() == 0  # an inactive endpoint gets no new delivery either


@pytest.mark.django_db
def test_a_backlog_is_scanned_and_dispatched_batch_after_batch(receiver, monkeypatch):
    from hostapi import webhooks

    monkeypatch.setattr(webhooks, "SCAN_BATCH", 2)
    monkeypatch.setattr(webhooks, "SWEEP_BATCH", 2)
    webhook_endpoint_create(url=receiver.url, event_types=["session.closed"])
    webhooks_scan()
    closed = {_closed_session().public_id for _ in range(5)}

    dispatched = webhooks_scan()

    assert dispatched == 5
    assert set(WebhookDelivery.objects.values_list("session_public_id", flat=True)) == closed
    assert webhooks_scan() == 0  # dispatched ones wait until presumed lost
