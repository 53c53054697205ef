"""Signed webhooks, as the Standard Webhooks specification says.

Every request carries `webhook-id` (the event's id: the same on every attempt), `webhook-
timestamp` (Unix seconds of this attempt) and `webhook-signature: v1,<base64 HMAC-SHA256 of
"<id>.<timestamp>.<body>">`, keyed with the base64-decoded part of the endpoint's
`whsec_<base64>` secret. The body is `{"type", "timestamp", "data"}`.

How events become deliveries: `webhooks_scan` (beat, every WEBHOOK_SCAN_S) reads the rows
past its cursor -- turns completed, calls ended, sessions closed, profiles extracted -- and
inserts one delivery per subscribed endpoint. Reading committed rows keeps the sideband's hot
path and every service free of webhook work, and nothing is announced that was rolled back.
A row is read once its timestamp is WEBHOOK_SCAN_SETTLE_S old, so the transaction that stamped
it has committed (a commit slower than that is missed: the price of a cursor that always moves
on); the cursor is a (timestamp, pk) keyset, and the unique (endpoint, event id) makes a scan
that runs twice add nothing. Deliveries are sent by `webhook_deliver`, dispatched after commit.

Races: an attempt is claimed with a conditional UPDATE on the attempt number, so a task run
twice, or re-dispatched by the sweep while the first copy waits in the queue, sends once.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from extraction.models import Profile
from hostapi.models import EventType, WebhookDelivery, WebhookEndpoint, WebhookScanCursor
from sessions_app.crypto import secret_decrypt, secret_encrypt
from sessions_app.models import Call, Session, TranscriptTurn
from sessions_app.selectors import call_json, iso, turn_json

logger = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SCAN_BATCH = 1000
# Batches per event type per scan: a backlog is caught up over several scans, never in one.
SCAN_MAX_BATCHES = 10
SWEEP_BATCH = 500
USER_AGENT = "realtime-transcript-webhooks/1"


# --- Secrets and signatures ------------------------------------------------------------------


def webhook_secret_new() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def webhook_sign(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value of one request."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(mac).decode()}"


def webhook_endpoint_create(
    *, url: str, event_types: list[str], description: str = ""
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret (to show once)."""
    unknown = set(event_types) - set(EventType.values)
    if unknown:
        raise ValueError(f"unknown event types: {sorted(unknown)}")
    secret = webhook_secret_new()
    endpoint = WebhookEndpoint.objects.create(
        url=url,
        description=description,
        event_types=sorted(set(event_types)),
        secret_encrypted=secret_encrypt(secret),
    )
    return endpoint, secret


def webhook_secret_rotate(*, endpoint: WebhookEndpoint) -> str:
    secret = webhook_secret_new()
    endpoint.secret_encrypted = secret_encrypt(secret)
    endpoint.save(update_fields=["secret_encrypted"])
    return secret


# --- Events: where each type comes from ------------------------------------------------------


@dataclass(frozen=True)
class EventSource:
    """The committed rows of one event type, their timestamp field and their payload."""

    rows: Callable[[], models.QuerySet[Any]]
    stamp: str
    session_of: Callable[[Any], Session]
    data: Callable[[Any], dict[str, Any]]


def _session_ref(session: Session) -> dict[str, Any]:
    return {"sessionId": str(session.public_id), "subject": session.owner_subject or None}


def _session_data(session: Session) -> dict[str, Any]:
    return _session_ref(session) | {
        "status": session.status,
        "closedAt": iso(session.closed_at),
        "closeReason": session.close_reason or None,
    }


def _profile_data(profile: Profile) -> dict[str, Any]:
    return _session_ref(profile.session) | {
        "version": profile.version,
        "profile": profile.data,
        "instructions": profile.instructions,
    }


SOURCES: dict[str, EventSource] = {
    EventType.TURN_COMPLETED: EventSource(
        rows=lambda: TranscriptTurn.objects.filter(
            status=TranscriptTurn.Status.COMPLETED, completed_at__isnull=False
        ).select_related("session", "call"),
        stamp="completed_at",
        session_of=lambda turn: turn.session,
        data=lambda turn: _session_ref(turn.session) | {"turn": turn_json(turn)},
    ),
    EventType.CALL_ENDED: EventSource(
        rows=lambda: Call.objects.filter(ended_at__isnull=False).select_related("session"),
        stamp="ended_at",
        session_of=lambda call: call.session,
        data=lambda call: _session_ref(call.session) | {"call": call_json(call)},
    ),
    EventType.SESSION_CLOSED: EventSource(
        rows=lambda: Session.objects.filter(status=Session.Status.CLOSED),
        stamp="closed_at",
        session_of=lambda session: session,
        data=_session_data,
    ),
    # An extracted version covers at least one turn; a profile carried into a new session
    # (turn_count 0) was not extracted.
    EventType.PROFILE_EXTRACTED: EventSource(
        rows=lambda: Profile.objects.filter(turn_count__gt=0).select_related("session"),
        stamp="created_at",
        session_of=lambda profile: profile.session,
        data=_profile_data,
    ),
}


def event_id(event_type: str, row_pk: int) -> str:
    """The event's id: stable, so a rescan or a retry carries the same `webhook-id`."""
    digest = hashlib.sha256(f"{event_type}:{row_pk}".encode()).hexdigest()[:24]
    return f"msg_{digest}"


def webhooks_scan(*, now: dt.datetime | None = None) -> int:
    """Turn rows committed since each cursor into deliveries; dispatch what is due. The
    number of deliveries dispatched."""
    now = now or timezone.now()
    endpoints = list(WebhookEndpoint.objects.filter(is_active=True))
    for event_type, source in SOURCES.items():
        listening = [e for e in endpoints if event_type in e.event_types]
        for _ in range(SCAN_MAX_BATCHES):
            read = _scan_one(event_type=event_type, source=source, endpoints=listening, now=now)
            if read < SCAN_BATCH:
                break
    return deliveries_sweep(now=now)


def _scan_one(
    *, event_type: str, source: EventSource, endpoints: list[WebhookEndpoint], now: dt.datetime
) -> int:
    """One batch of one event type's rows past the cursor; how many rows it read."""
    horizon = now - dt.timedelta(seconds=settings.WEBHOOK_SCAN_SETTLE_S)
    with transaction.atomic():
        cursor, _ = WebhookScanCursor.objects.select_for_update().get_or_create(
            event_type=event_type, defaults={"scanned_until": horizon}
        )
        if not endpoints:
            # Nobody listens: nothing is owed for what happened before someone does.
            cursor.scanned_until, cursor.scanned_pk = max(cursor.scanned_until, horizon), 0
            cursor.save(update_fields=["scanned_until", "scanned_pk"])
            return 0
        stamp = source.stamp
        rows = list(
            source.rows()
            .filter(
                Q(**{f"{stamp}__gt": cursor.scanned_until})
                | Q(**{stamp: cursor.scanned_until, "pk__gt": cursor.scanned_pk}),
                **{f"{stamp}__lte": horizon},
            )
            .order_by(stamp, "pk")[:SCAN_BATCH]
        )
        if not rows:
            return 0
        deliveries: list[WebhookDelivery] = []
        for row in rows:
            payload = {
                "type": event_type,
                "timestamp": iso(getattr(row, stamp)),
                "data": source.data(row),
            }
            deliveries.extend(
                WebhookDelivery(
                    endpoint=endpoint,
                    event_id=event_id(event_type, row.pk),
                    event_type=event_type,
                    session_public_id=source.session_of(row).public_id,
                    payload=payload,
                    next_attempt_at=now,
                )
                for endpoint in endpoints
            )
        WebhookDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
        cursor.scanned_until, cursor.scanned_pk = getattr(rows[-1], stamp), rows[-1].pk
        cursor.save(update_fields=["scanned_until", "scanned_pk"])
    return len(rows)


# --- Delivery -------------------------------------------------------------------------------


def _lost_after() -> dt.timedelta:
    """How long a claimed attempt or a dispatched task may take before the sweep redoes it."""
    return dt.timedelta(seconds=settings.WEBHOOK_TIMEOUT_S * 3 + 30)


def deliveries_sweep(*, now: dt.datetime | None = None) -> int:
    """Dispatch pending deliveries that are due: new, due for a retry, or whose task was lost
    (next_attempt_at is pushed past the dispatch, so a queued task is not dispatched again
    until it is presumed lost). At most SCAN_MAX_BATCHES batches per call."""
    now = now or timezone.now()
    dispatched = 0
    for _ in range(SCAN_MAX_BATCHES):
        batch = _sweep_batch(now=now)
        dispatched += batch
        if batch < SWEEP_BATCH:
            break
    return dispatched


def _sweep_batch(*, now: dt.datetime) -> int:
    with transaction.atomic():
        due = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at")
            .values_list("pk", "attempts")[:SWEEP_BATCH]
        )
        WebhookDelivery.objects.filter(pk__in=[pk for pk, _ in due]).update(
            next_attempt_at=now + _lost_after()
        )
        transaction.on_commit(lambda: _dispatch(due))
    return len(due)


def _dispatch(due: list[tuple[int, int]], countdown: float = 0) -> None:
    from hostapi.tasks import webhook_deliver

    for pk, attempts in due:
        try:
            webhook_deliver.apply_async((pk, attempts + 1), countdown=countdown)
        except Exception:
            # The sweep dispatches it again once it is presumed lost.
            logger.exception("dispatch of webhook delivery %s failed", pk)


def retry_delay_s(attempt: int) -> float:
    """Exponential backoff after failed attempt `attempt` (1-based), capped."""
    base: float = settings.WEBHOOK_RETRY_BASE_S
    return float(min(settings.WEBHOOK_RETRY_MAX_S, base * (2 ** (attempt - 1))))


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    error: str


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is an answer (3xx, not delivered), never followed


def webhook_post(*, url: str, secret: str, msg_id: str, body: bytes) -> Answer:
    timestamp = int(timezone.now().timestamp())
    request = urllib.request.Request(  # noqa: S310 - endpoints are http(s) URLs from the admin
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": webhook_sign(
                secret=secret, msg_id=msg_id, timestamp=timestamp, body=body
            ),
        },
    )
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=settings.WEBHOOK_TIMEOUT_S) as response:
            return Answer(status_code=response.status, error="")
    except urllib.error.HTTPError as exc:
        return Answer(status_code=exc.code, error=f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Answer(status_code=None, error=f"{type(exc).__name__}: {reason}"[:255])


def webhook_attempt(*, delivery_id: int, attempt: int) -> WebhookDelivery | None:
    """Make attempt number `attempt` of a delivery; None when it is not this attempt's turn
    (done, failed, or another copy of the task claimed it)."""
    now = timezone.now()
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, status=WebhookDelivery.Status.PENDING, attempts=attempt - 1
    ).update(attempts=attempt, next_attempt_at=now + _lost_after())
    if not claimed:
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None:
        return None  # deleted meanwhile (its endpoint, or its user's data)
    if not delivery.endpoint.is_active:
        return _attempt_record(delivery, Answer(None, "The endpoint is disabled."), final=True)
    body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode()
    answer = webhook_post(
        url=delivery.endpoint.url,
        secret=secret_decrypt(delivery.endpoint.secret_encrypted),
        msg_id=delivery.event_id,
        body=body,
    )
    final = attempt >= settings.WEBHOOK_MAX_ATTEMPTS
    return _attempt_record(delivery, answer, final=final)


def _attempt_record(delivery: WebhookDelivery, answer: Answer, *, final: bool) -> WebhookDelivery:
    now = timezone.now()
    ok = answer.status_code is not None and 200 <= answer.status_code < 300
    fields: dict[str, Any] = {"last_status_code": answer.status_code, "last_error": answer.error}
    if ok:
        fields.update(status=WebhookDelivery.Status.DELIVERED, delivered_at=now)
    elif final:
        fields.update(status=WebhookDelivery.Status.FAILED)
    else:
        delay = retry_delay_s(delivery.attempts)
        fields.update(next_attempt_at=now + dt.timedelta(seconds=delay))
    with transaction.atomic():
        WebhookDelivery.objects.filter(
            pk=delivery.pk, attempts=delivery.attempts, status=WebhookDelivery.Status.PENDING
        ).update(**fields)
        if not ok and not final:
            due = [(delivery.pk, delivery.attempts)]
            transaction.on_commit(lambda: _dispatch(due, countdown=delay))
    logger.info(
        "webhook delivery=%s event=%s attempt=%s status=%s %s",
        delivery.pk,
        delivery.event_type,
        delivery.attempts,
        answer.status_code,
        "delivered" if ok else ("failed" if final else f"retry in {delay:.1f}s"),
    )
    delivery.refresh_from_db()
    return delivery
