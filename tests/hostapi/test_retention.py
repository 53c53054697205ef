"""Retention and deletion: a user's data deleted on request (API, admin) and old sessions
purged on schedule leave no row behind, and are logged without content."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from extraction.models import ExtractionRun, Profile
from hostapi.models import DataDeletion, WebhookDelivery
from hostapi.retention import retention_purge
from hostapi.tasks import retention_purge as retention_purge_task
from hostapi.webhooks import webhook_endpoint_create
from sessions_app.identity import subject_owner_hash
from sessions_app.models import Call, ClientSecret, Session, TranscriptTurn
from tests.factories import OWNER_HASH, CallFactory, ClientSecretFactory, TranscriptTurnFactory
from tests.host_users import a_profile, a_session
from tests.hostapi.conftest import key_client
from tests.sideband.helpers import wait_for

SECRET_WORDS = "my bank password is hunter2"


def _conversation(owner_hash: str, subject: str = "", **fields: Any) -> Session:
    """A session with everything that can hang on one: secret, call, turns, profile, run,
    a webhook delivery."""
    session: Session = a_session(owner_hash=owner_hash, owner_subject=subject, **fields)
    secret = ClientSecretFactory(session=session)
    call = CallFactory(session=session, secret=secret, generation=1)
    TranscriptTurnFactory(session=session, call=call, text=SECRET_WORDS)
    profile = a_profile(session=session, version=1)
    ExtractionRun.objects.create(
        session=session, status="succeeded", profile=profile, finished_at=timezone.now()
    )
    endpoint = WebhookEndpoint_one()
    WebhookDelivery.objects.create(
        endpoint=endpoint,
        event_id=f"msg_{session.pk}",
        event_type="session.closed",
        session_public_id=session.public_id,
        payload={"data": {"text": SECRET_WORDS}},
        next_attempt_at=timezone.now(),
    )
    return session


def WebhookEndpoint_one() -> Any:
    from hostapi.models import WebhookEndpoint

    endpoint = WebhookEndpoint.objects.first()
    if endpoint is None:
        endpoint, _secret = webhook_endpoint_create(
            url="http://127.0.0.1:9/hooks", event_types=["session.closed"]
        )
    return endpoint


def _rows_of(sessions: list[Session]) -> dict[str, int]:
    ids = [s.pk for s in sessions]
    return {
        "sessions": Session.objects.filter(pk__in=ids).count(),
        "secrets": ClientSecret.objects.filter(session_id__in=ids).count(),
        "calls": Call.objects.filter(session_id__in=ids).count(),
        "turns": TranscriptTurn.objects.filter(session_id__in=ids).count(),
        "profiles": Profile.objects.filter(session_id__in=ids).count(),
        "runs": ExtractionRun.objects.filter(session_id__in=ids).count(),
        "deliveries": WebhookDelivery.objects.filter(
            session_public_id__in=[s.public_id for s in sessions]
        ).count(),
    }


NONE_LEFT = dict.fromkeys(
    ("sessions", "secrets", "calls", "turns", "profiles", "runs", "deliveries"), 0
)
ONE_EACH = dict.fromkeys(NONE_LEFT, 1)


@pytest.mark.django_db
def test_deleting_a_user_through_the_api_leaves_no_row_of_theirs(caplog):
    theirs = [_conversation(subject_owner_hash("42"), "42") for _ in range(3)]
    neighbour = _conversation(subject_owner_hash("43"), "43")
    browser = _conversation(OWNER_HASH)
    client = key_client(delete=True, read=False)
    caplog.set_level(logging.INFO)

    response = client.delete("/api/v1/users/42")

    assert response.status_code == 200
    assert response.json() == {
        "subject": "42",
        "deleted": {"sessions": 3, "turns": 3, "profiles": 3, "secrets": 3, "deliveries": 3},
    }
    assert _rows_of(theirs) == NONE_LEFT
    assert _rows_of([neighbour]) == ONE_EACH
    assert _rows_of([browser]) == ONE_EACH
    (log,) = DataDeletion.objects.all()
    assert (log.reason, log.owner_hash, log.sessions) == (
        "user_request",
        subject_owner_hash("42"),
        3,
    )
    assert log.requested_by.startswith("api-key:")
    assert "data deleted reason=user_request" in caplog.text
    assert SECRET_WORDS not in caplog.text
    # Deleting again is harmless: nothing left, and that is logged too.
    again = client.delete("/api/v1/users/42")
    assert again.json()["deleted"]["sessions"] == 0


@pytest.mark.django_db
def test_an_admin_deletes_a_users_data_or_a_browsers(caplog):
    theirs = _conversation(subject_owner_hash("42"), "42")
    browser = _conversation(OWNER_HASH)
    neighbour = _conversation(subject_owner_hash("43"), "43")
    staff = Client()
    staff.force_login(User.objects.create_superuser("admin", "admin@example.com", None))

    by_subject = staff.post("/admin/hostapi/datadeletion/add/", {"subject": "42"})
    by_session = staff.post(
        "/admin/hostapi/datadeletion/add/", {"session_id": str(browser.public_id)}
    )
    neither = staff.post("/admin/hostapi/datadeletion/add/", {})

    assert by_subject.status_code == by_session.status_code == 302
    assert neither.status_code == 200  # the form again, with its error
    assert _rows_of([theirs, browser]) == NONE_LEFT
    assert _rows_of([neighbour]) == ONE_EACH
    assert sorted(DataDeletion.objects.values_list("owner_hash", "requested_by")) == sorted(
        [(subject_owner_hash("42"), "admin:admin"), (OWNER_HASH, "admin:admin")]
    )
    assert SECRET_WORDS not in caplog.text


def _aged(session: Session, days: int) -> Session:
    Session.objects.filter(pk=session.pk).update(
        updated_at=timezone.now() - dt.timedelta(days=days)
    )
    return session


@pytest.mark.django_db
def test_retention_purges_sessions_older_than_the_policy_in_batches(settings):
    settings.TRANSCRIPT_RETENTION_DAYS = 30
    settings.RETENTION_BATCH = 2
    old = [_aged(_conversation(subject_owner_hash(str(n)), str(n)), 31) for n in range(5)]
    recent = _aged(_conversation(OWNER_HASH), 29)

    deletion = retention_purge()

    assert deletion is not None
    assert (deletion.reason, deletion.requested_by, deletion.sessions, deletion.turns) == (
        "retention",
        "beat",
        5,
        5,
    )
    assert _rows_of(old) == NONE_LEFT
    assert _rows_of([recent]) == ONE_EACH
    assert retention_purge() is None  # twice: nothing more to do
    assert DataDeletion.objects.count() == 1


@pytest.mark.django_db
def test_retention_is_off_unless_configured(settings):
    settings.TRANSCRIPT_RETENTION_DAYS = 0
    ancient = _aged(_conversation(OWNER_HASH), 3650)

    assert retention_purge() is None
    assert _rows_of([ancient]) == ONE_EACH


@pytest.mark.django_db(transaction=True)
def test_the_beat_task_purges_on_a_real_worker_and_is_safe_twice(worker):
    # The workers run with TRANSCRIPT_RETENTION_DAYS=30, RETENTION_BATCH=2 (conftest).
    old = [_aged(_conversation(subject_owner_hash(str(n)), str(n)), 40) for n in range(3)]
    recent = _conversation(OWNER_HASH)

    retention_purge_task.delay()
    retention_purge_task.delay()

    wait_for(lambda: _rows_of(old) == NONE_LEFT, timeout=20, what="the purge")
    wait_for(
        lambda: DataDeletion.objects.filter(reason="retention").exists(), what="the purge's log"
    )
    assert _rows_of([recent]) == ONE_EACH
    assert sum(DataDeletion.objects.values_list("sessions", flat=True)) == 3


def test_the_beat_schedules_the_purge_and_the_webhook_scan(settings):
    from config.celery import app

    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    assert {"hostapi.tasks.retention_purge", "hostapi.tasks.webhooks_scan"} <= tasks
    app.loader.import_default_modules()
    assert {"hostapi.tasks.retention_purge", "hostapi.tasks.webhooks_scan"} <= set(app.tasks)
