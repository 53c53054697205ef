"""POST /session: mint, record, cookie; refresh; limits; bad input; upstream failures."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from django.utils import timezone

from sessions_app import services
from sessions_app.crypto import secret_decrypt, sha256_hex
from sessions_app.models import Call, ClientSecret, Session
from tests.factories import OWNER_HASH, CallFactory, ProfileFactory, TranscriptTurnFactory
from tests.sessions_app.helpers import post_json, session_create
from tests.unchanged import nothing_changes

pytestmark = pytest.mark.django_db

VALID = {"model": "gpt-realtime", "voice": "marin", "enableTranscription": True}


def test_create_returns_the_seed_shape_and_records_session_and_secret(
    upstream: Any, browser: Client
) -> None:
    before = timezone.now()

    response = post_json(browser, "/session", VALID)

    assert response.status_code == 201
    body = response.json()
    assert sorted(body) == ["callId", "clientSecret", "expiresAt", "sessionId"]
    assert body["callId"] is None
    assert body["clientSecret"].startswith("ek_")
    assert response["Cache-Control"] == "no-store"
    session = Session.objects.get()
    assert str(session.public_id) == body["sessionId"]
    assert (session.model, session.voice, session.transcription_enabled) == (
        "gpt-realtime",
        "marin",
        True,
    )
    assert session.status == Session.Status.ACTIVE
    assert session.current_generation == 0
    assert session.replaces is None
    secret = ClientSecret.objects.get()
    assert secret.session == session
    assert secret.kind == ClientSecret.Kind.CREATE
    assert secret_decrypt(secret.value_encrypted) == body["clientSecret"]
    assert secret.value_hash == sha256_hex(body["clientSecret"])
    assert secret.instructions == django_settings.REALTIME_BASE_INSTRUCTIONS
    expires_at = dt.datetime.fromisoformat(body["expiresAt"])
    assert expires_at == secret.expires_at
    ttl = dt.timedelta(seconds=django_settings.CLIENT_SECRET_TTL_S)
    assert before + ttl - dt.timedelta(seconds=2) <= expires_at <= timezone.now() + ttl
    cookie = response.cookies[django_settings.CLIENT_COOKIE_NAME]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert session.owner_hash == sha256_hex(cookie.value)


def test_create_with_a_credential_keeps_it_and_owns_the_new_session(
    upstream: Any, browser: Client
) -> None:
    first = session_create(browser)
    credential = browser.cookies[django_settings.CLIENT_COOKIE_NAME].value

    response = post_json(browser, "/session", {**VALID, "enableTranscription": False})

    assert response.status_code == 201
    assert django_settings.CLIENT_COOKIE_NAME not in response.cookies
    second = Session.objects.get(public_id=response.json()["sessionId"])
    assert second.owner_hash == sha256_hex(credential)
    assert second.transcription_enabled is False
    assert Session.objects.get(public_id=first["sessionId"]).status == Session.Status.ACTIVE
    assert Session.objects.count() == 2


def test_refresh_closes_the_previous_session_keeps_its_transcript_and_points_at_it(
    upstream: Any, browser: Client
) -> None:
    first = session_create(browser)
    old = Session.objects.get(public_id=first["sessionId"])
    call = CallFactory.create(session=old, generation=1)
    Session.objects.filter(pk=old.pk).update(current_generation=1)
    TranscriptTurnFactory.create(session=old, call=call, text="hello")

    second = session_create(browser, reset=True)

    old.refresh_from_db()
    new = Session.objects.get(public_id=second["sessionId"])
    assert second["sessionId"] != first["sessionId"]
    assert old.status == Session.Status.CLOSED
    assert old.close_reason == "refreshed"
    assert old.closed_at is not None
    assert new.replaces == old
    assert new.status == Session.Status.ACTIVE
    assert list(old.turns.values_list("text", flat=True)) == ["hello"]
    assert new.turns.count() == 0
    call.refresh_from_db()
    assert call.end_reason == Call.EndReason.SESSION_CLOSED
    assert call.ended_at is not None
    transcript = browser.get(f"/session/{second['sessionId']}/transcript").json()
    assert transcript["turns"] == []


def test_refresh_without_an_open_session_just_creates_one(upstream: Any, browser: Client) -> None:
    body = session_create(browser, reset=True)

    assert Session.objects.get(public_id=body["sessionId"]).replaces is None


def test_refresh_with_carry_profile_starts_from_the_old_profile(
    upstream: Any, browser: Client
) -> None:
    old = Session.objects.get(public_id=session_create(browser)["sessionId"])
    ProfileFactory.create(session=old, version=3)

    body = session_create(browser, reset=True, carryProfile=True)

    new = Session.objects.get(public_id=body["sessionId"])
    assert new.replaces == old
    assert list(new.profiles.values_list("version", flat=True)) == [1]
    instructions = ClientSecret.objects.get(session=new).instructions
    assert "Marker: profile v1" in instructions
    assert '"value": "Ada"' in instructions


def test_refresh_without_carry_profile_starts_from_the_base_instructions(
    upstream: Any, browser: Client
) -> None:
    old = Session.objects.get(public_id=session_create(browser)["sessionId"])
    ProfileFactory.create(session=old, version=1)

    body = session_create(browser, reset=True)

    new = Session.objects.get(public_id=body["sessionId"])
    assert new.profiles.count() == 0
    assert ClientSecret.objects.get(session=new).instructions == (
        django_settings.REALTIME_BASE_INSTRUCTIONS
    )


def test_create_is_rate_limited_per_client_with_retry_after(
    upstream: Any, owner: Client, stranger: Client, settings: Any
) -> None:
    settings.RATE_LIMIT_CREATE_PER_MINUTE = 2
    session_create(owner)
    session_create(owner)

    with nothing_changes(upstream):
        response = post_json(owner, "/session", VALID)

    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 61
    # Another client is counted on its own.
    assert post_json(stranger, "/session", VALID).status_code == 201


def test_create_without_a_credential_is_rate_limited_per_address(
    upstream: Any, settings: Any
) -> None:
    settings.RATE_LIMIT_CREATE_PER_MINUTE = 1
    assert post_json(Client(), "/session", VALID).status_code == 201

    with nothing_changes(upstream):
        response = post_json(Client(), "/session", VALID)

    assert response.status_code == 429


def test_open_sessions_are_capped_per_client_and_refresh_still_works(
    upstream: Any, browser: Client, settings: Any
) -> None:
    settings.MAX_OPEN_SESSIONS_PER_CLIENT = 2
    session_create(browser)
    session_create(browser)

    with nothing_changes(upstream):
        response = post_json(browser, "/session", VALID)

    assert response.status_code == 429
    assert response.json()["code"] == "open_sessions_limit"
    session_create(browser, reset=True)
    assert Session.objects.filter(status=Session.Status.ACTIVE).count() == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**VALID, "model": "gpt-4o"}, "model"),
        ({**VALID, "voice": "darth"}, "voice"),
        ({**VALID, "model": 5}, "model"),
        ({**VALID, "voice": None}, "voice"),
        ({**VALID, "enableTranscription": "true"}, "enableTranscription"),
        ({**VALID, "enableTranscription": 1}, "enableTranscription"),
        ({**VALID, "reset": "yes"}, "reset"),
        ({**VALID, "carryProfile": 0}, "carryProfile"),
        ({"voice": "marin"}, "model"),
        ({"model": "gpt-realtime"}, "voice"),
        (["gpt-realtime", "marin"], "body"),
    ],
)
def test_create_rejects_bad_input_naming_the_field_and_writes_nothing(
    upstream: Any, browser: Client, body: Any, field: str
) -> None:
    with nothing_changes(upstream):
        response = post_json(browser, "/session", body)

    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert django_settings.CLIENT_COOKIE_NAME not in response.cookies


def test_create_rejects_a_body_that_is_not_json(upstream: Any, browser: Client) -> None:
    with nothing_changes(upstream):
        response = browser.post("/session", "{model:", content_type="application/json")

    assert response.status_code == 400
    assert list(response.json()) == ["body"]


def test_create_rejects_a_body_over_the_size_limit(
    upstream: Any, browser: Client, settings: Any
) -> None:
    settings.MAX_REQUEST_BODY_BYTES = 300
    body = {**VALID, "padding": "x" * 400}

    with nothing_changes(upstream):
        response = post_json(browser, "/session", body)

    assert response.status_code == 400
    assert response.json() == {"body": ["Request body exceeds 300 bytes."]}


@pytest.mark.parametrize(
    ("upstream_status", "status", "retry_after"),
    [(429, 503, True), (500, 502, False), (502, 502, False), (503, 502, False)],
)
def test_create_maps_upstream_failures_and_writes_nothing(
    upstream: Any,
    browser: Client,
    upstream_status: int,
    status: int,
    retry_after: bool,
) -> None:
    upstream.control(
        "POST",
        "/_emulator/faults",
        {"endpoint": "client_secrets", "status": upstream_status, "times": 1},
    )

    with nothing_changes():
        response = post_json(browser, "/session", VALID)

    assert response.status_code == status
    assert response.json()["code"] == "upstream_error"
    assert response.json()["detail"].startswith("The Realtime API")
    if retry_after:
        assert int(response["Retry-After"]) >= 1
    else:
        assert "Retry-After" not in response
    # The fault was used up: the next attempt succeeds.
    assert post_json(browser, "/session", VALID).status_code == 201


@pytest.fixture
def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_upstream() -> Iterator[str]:
    """A port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def test_create_answers_503_when_the_upstream_cannot_be_reached(
    browser: Client, settings: Any, dead_port: int
) -> None:
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{dead_port}/v1"

    with nothing_changes():
        response = post_json(browser, "/session", VALID)

    assert response.status_code == 503
    assert response.json()["detail"] == "The Realtime API cannot be reached."


def test_create_answers_504_when_the_upstream_times_out(
    browser: Client, settings: Any, silent_upstream: str
) -> None:
    settings.OPENAI_BASE_URL = silent_upstream
    settings.UPSTREAM_TIMEOUT_S = 0.3

    with nothing_changes():
        response = post_json(browser, "/session", VALID)

    assert response.status_code == 504
    assert response.json()["detail"] == "The Realtime API did not answer in time."


def test_csrf_is_enforced_once_the_browser_holds_a_credential(upstream: Any) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.get("/")
    token = browser.cookies["csrftoken"].value
    first = post_json(browser, "/session", VALID, HTTP_X_CSRFTOKEN=token)
    assert first.status_code == 201

    with nothing_changes(upstream):
        denied = post_json(browser, "/session", {**VALID, "reset": True})

    assert denied.status_code == 403
    assert "CSRF" in denied.json()["detail"]
    allowed = post_json(browser, "/session", {**VALID, "reset": True}, HTTP_X_CSRFTOKEN=token)
    assert allowed.status_code == 201


def test_secrets_never_reach_the_logs_or_the_database_in_plaintext(
    upstream: Any, browser: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    created = session_create(browser)
    renewed = post_json(browser, "/session/renew", {"sessionId": created["sessionId"]}).json()

    values = [created["clientSecret"], renewed["clientSecret"]]
    assert values[0] != values[1]
    assert caplog.records, "the create and renew paths log"
    for record in caplog.records:
        text = record.getMessage() + json.dumps(record.__dict__, default=str)
        assert not any(value in text for value in values)
    for row in ClientSecret.objects.all():
        assert not any(value in row.value_encrypted for value in values)
        assert not any(value in row.value_hash for value in values)
    assert {secret_decrypt(r.value_encrypted) for r in ClientSecret.objects.all()} == set(values)


def test_a_session_created_for_another_client_is_not_visible(
    upstream: Any, browser: Client, stranger: Client
) -> None:
    created = session_create(browser)

    with nothing_changes():
        assert stranger.get(f"/session/{created['sessionId']}").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_never_exceed_the_open_sessions_cap(
    upstream: Any, settings: Any
) -> None:
    settings.MAX_OPEN_SESSIONS_PER_CLIENT = 2
    attempts = 6
    barrier = threading.Barrier(attempts)
    outcomes: list[str] = []

    def create() -> None:
        try:
            barrier.wait(timeout=10)
            services.session_create(
                owner_hash=OWNER_HASH, model="gpt-realtime", voice="marin", transcription=True
            )
            outcomes.append("created")
        except services.OpenSessionsLimit:
            outcomes.append("capped")
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["capped"] * 4 + ["created"] * 2
    assert Session.objects.filter(owner_hash=OWNER_HASH).count() == 2
    assert ClientSecret.objects.count() == 2


def test_create_succeeds_when_the_rate_limit_cache_is_unreachable_and_says_so(
    upstream: Any, browser: Client, settings: Any, dead_port: int, caplog: Any
) -> None:
    """Rate limits fail open (sessions_app.ratelimit): Redis away is a log line, never a 500."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{dead_port}/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    settings.RATE_LIMIT_CREATE_PER_MINUTE = 1

    with caplog.at_level(logging.WARNING, logger="sessions_app.ratelimit"):
        first = post_json(browser, "/session", VALID)
        second = post_json(browser, "/session", VALID)

    assert (first.status_code, second.status_code) == (201, 201)
    assert Session.objects.count() == 2
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "rate limit create not enforced, Redis away (failing open)"
    ] * 2
