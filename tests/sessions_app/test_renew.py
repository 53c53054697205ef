"""POST /session/renew: a new secret for the same session, the latest instructions, the call."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client

from extraction.selectors import session_instructions
from sessions_app import services
from sessions_app.crypto import secret_decrypt
from sessions_app.models import ClientSecret, Session
from tests.factories import (
    CallFactory,
    ClientSecretFactory,
    ProfileFactory,
    SessionFactory,
    profile_data,
)
from tests.sessions_app.helpers import post_json, session_create
from tests.unchanged import nothing_changes

pytestmark = pytest.mark.django_db


def _renew(client: Client, session_id: str) -> Any:
    return post_json(client, "/session/renew", {"sessionId": session_id})


def test_renew_mints_a_new_secret_with_the_latest_profile_and_returns_the_call(
    upstream: Any, browser: Client
) -> None:
    created = session_create(browser)
    session = Session.objects.get(public_id=created["sessionId"])
    ProfileFactory.create(session=session, version=1)
    ProfileFactory.create(
        session=session,
        version=2,
        data=profile_data(name={"value": "Grace", "evidence": ["item_1"]}),
    )
    expected = session_instructions(session=session)
    assert "Marker: profile v2" in expected
    assert '"value": "Grace"' in expected
    post_json(browser, "/session/call", {"sessionId": created["sessionId"], "callId": "rtc_a1"})
    post_json(browser, "/session/call", {"sessionId": created["sessionId"], "callId": "rtc_b2"})

    response = _renew(browser, created["sessionId"])

    assert response.status_code == 200
    body = response.json()
    assert sorted(body) == ["callId", "clientSecret", "expiresAt", "instructions"]
    assert body["callId"] == "rtc_b2"
    assert body["instructions"] == expected
    assert body["clientSecret"] != created["clientSecret"]
    assert response["Cache-Control"] == "no-store"
    renewed = ClientSecret.objects.get(kind=ClientSecret.Kind.RENEW)
    assert renewed.session == session
    assert secret_decrypt(renewed.value_encrypted) == body["clientSecret"]
    assert renewed.instructions == expected
    assert dt.datetime.fromisoformat(body["expiresAt"]) == renewed.expires_at
    assert ClientSecret.objects.filter(session=session).count() == 2
    session.refresh_from_db()
    assert session.status == Session.Status.ACTIVE
    # The next call registered links to the renewed secret.
    post_json(browser, "/session/call", {"sessionId": created["sessionId"], "callId": "rtc_c3"})
    assert session.calls.get(call_id="rtc_c3").secret == renewed


def test_renew_before_any_call_returns_a_null_call_and_the_base_instructions(
    upstream: Any, browser: Client
) -> None:
    created = session_create(browser)

    body = _renew(browser, created["sessionId"]).json()

    assert body["callId"] is None
    assert body["instructions"] == django_settings.REALTIME_BASE_INSTRUCTIONS


def test_renew_of_a_closed_session_is_a_conflict_and_mints_nothing(
    upstream: Any, owner: Client
) -> None:
    session = SessionFactory.create()
    ClientSecretFactory.create(session=session)
    services._session_close_locked(session=session, reason="refreshed")

    with nothing_changes(upstream):
        response = _renew(owner, str(session.public_id))

    assert response.status_code == 409
    assert response.json()["code"] == "session_closed"


def test_renew_of_another_clients_session_is_404_and_changes_nothing(
    upstream: Any, stranger: Client
) -> None:
    session = SessionFactory.create()
    ClientSecretFactory.create(session=session)

    with nothing_changes(upstream):
        response = _renew(stranger, str(session.public_id))

    assert response.status_code == 404
    assert response.json() == {"detail": "Session not found."}


def test_renew_is_rate_limited_per_client(upstream: Any, owner: Client, settings: Any) -> None:
    settings.RATE_LIMIT_RENEW_PER_MINUTE = 1
    session = SessionFactory.create()
    CallFactory.create(session=session, generation=1)
    assert _renew(owner, str(session.public_id)).status_code == 200

    with nothing_changes(upstream):
        response = _renew(owner, str(session.public_id))

    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 61


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "sessionId"), ({"sessionId": "nope"}, "sessionId"), ({"sessionId": True}, "sessionId")],
)
def test_renew_rejects_bad_input_naming_the_field(
    upstream: Any, owner: Client, body: dict[str, Any], field: str
) -> None:
    SessionFactory.create()

    with nothing_changes(upstream):
        response = post_json(owner, "/session/renew", body)

    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_renew_maps_an_upstream_failure_and_writes_nothing(upstream: Any, owner: Client) -> None:
    session = SessionFactory.create()
    upstream.control(
        "POST", "/_emulator/faults", {"endpoint": "client_secrets", "status": 500, "times": 1}
    )

    with nothing_changes():
        response = _renew(owner, str(session.public_id))

    assert response.status_code == 502
    assert response.json()["code"] == "upstream_error"
