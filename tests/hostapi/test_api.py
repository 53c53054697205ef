"""The server-to-server API: API keys (hashed, scoped, revocable, rate-limited) on every route,
transcripts by page, profiles, extraction runs, export; and its OpenAPI description."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from extraction.models import ExtractionRun
from hostapi.keys import api_key_create, api_key_revoke
from hostapi.models import ApiKey
from sessions_app.crypto import sha256_hex
from sessions_app.models import Session
from tests.factories import TranscriptTurnFactory
from tests.host_users import a_profile, a_session
from tests.hostapi.conftest import key_client
from tests.unchanged import nothing_changes

pytestmark = pytest.mark.django_db


@pytest.fixture
def session() -> Session:
    """User 42's session: three turns, a profile, an extraction run."""
    session: Session = a_session("42")
    for n, role in enumerate(["user", "assistant", "user"], 1):
        TranscriptTurnFactory(session=session, role=role, text=f"turn {n}", position=n * 1024)
    profile = a_profile(session=session, version=1, turn_count=3)
    ExtractionRun.objects.create(
        session=session, status="succeeded", profile=profile, finished_at=profile.created_at
    )
    return session


def _routes(session: Session) -> list[tuple[str, str, str]]:
    sid = session.public_id
    return [
        ("get", "/api/v1/users/42/sessions", "read"),
        ("get", "/api/v1/users/42/export", "read"),
        ("get", f"/api/v1/sessions/{sid}", "read"),
        ("get", f"/api/v1/sessions/{sid}/transcript", "read"),
        ("get", f"/api/v1/sessions/{sid}/profiles", "read"),
        ("get", f"/api/v1/sessions/{sid}/extractions", "read"),
        ("post", f"/api/v1/sessions/{sid}/extractions", "write"),
        ("delete", "/api/v1/users/42", "delete"),
    ]


def _call(client: Client, method: str, path: str) -> Any:
    return getattr(client, method)(path)


def test_every_route_needs_its_scope_and_answers_a_key_that_has_it(session):
    for method, path, scope in _routes(session):
        others = {s: s != scope for s in ("read", "write", "delete")}
        lacking = key_client(**others)
        # The key is genuine: its use is recorded, the request is not carried out.
        with nothing_changes(but=["hostapi.ApiKey.last_used_at"]):
            refused = _call(lacking, method, path)
        allowed = _call(
            key_client(**{scope: True, **{s: False for s in others if s != scope}}), method, path
        )

        assert refused.status_code == 403, (method, path)
        assert refused.json()["detail"] == f"This API key lacks the {scope} scope."
        assert allowed.status_code in (200, 202), (method, path, allowed.content)
    # The allowed delete (last) removed the user's session.
    assert not Session.objects.filter(pk=session.pk).exists()


def test_a_revoked_a_forged_or_a_missing_key_is_a_401(session):
    key, raw = api_key_create(name="old backend")
    api_key_revoke(key=key)
    path = f"/api/v1/sessions/{session.public_id}"

    with nothing_changes():
        revoked = Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get(path)
        forged = Client(HTTP_AUTHORIZATION=f"Bearer {raw[:-4]}AAAA").get(path)
        missing = Client().get(path)

    assert revoked.status_code == forged.status_code == missing.status_code == 401
    assert revoked.json()["detail"] == "Invalid or revoked API key."
    assert missing["WWW-Authenticate"] == 'Bearer realm="api"'
    assert api_key_revoke(key=key) is False  # revoking twice changes nothing


def test_keys_are_stored_hashed(session):
    key, raw = api_key_create(name="backend")

    row = ApiKey.objects.get(pk=key.pk)
    assert row.key_hash == sha256_hex(raw)
    assert raw not in {row.name, row.prefix, row.key_hash}
    assert raw.startswith(f"rtk_{row.prefix}_")


def test_a_key_is_rate_limited(session, settings):
    settings.API_KEY_RATE_LIMIT_PER_MINUTE = 2
    client = key_client()
    path = f"/api/v1/sessions/{session.public_id}"

    answers = [client.get(path) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[2]["Retry-After"]) >= 1
    assert key_client().get(path).status_code == 200  # another key counts apart


def test_the_transcript_reads_by_page(session):
    client = key_client()
    path = f"/api/v1/sessions/{session.public_id}/transcript"

    first = client.get(path, {"limit": 2}).json()
    second = client.get(path, {"limit": 2, "after": first["next"]}).json()

    assert [t["text"] for t in first["turns"]] == ["turn 1", "turn 2"]
    assert first["next"] == 2048
    assert [t["text"] for t in second["turns"]] == ["turn 3"]
    assert second["next"] is None
    bad = client.get(path, {"limit": 0})
    assert bad.status_code == 400
    assert "limit" in bad.json()


def test_a_users_sessions_read_newest_first_by_page(session):
    newer: Session = a_session("42")
    a_session()  # an anonymous browser's
    client = key_client()

    first = client.get("/api/v1/users/42/sessions", {"limit": 1}).json()
    second = client.get("/api/v1/users/42/sessions", {"limit": 1, "before": first["next"]}).json()

    assert [s["sessionId"] for s in first["sessions"]] == [str(newer.public_id)]
    assert [s["sessionId"] for s in second["sessions"]] == [str(session.public_id)]
    assert second["next"] is None
    assert first["sessions"][0]["subject"] == "42"
    assert client.get("/api/v1/users/nobody/sessions").json()["sessions"] == []


def test_profiles_extractions_and_export(session):
    client = key_client()
    sid = str(session.public_id)

    profiles = client.get(f"/api/v1/sessions/{sid}/profiles").json()
    runs = client.get(f"/api/v1/sessions/{sid}/extractions").json()
    export = client.get("/api/v1/users/42/export").json()

    assert [p["version"] for p in profiles["profiles"]] == [1]
    assert [(r["status"], r["profileVersion"]) for r in runs["extractions"]] == [("succeeded", 1)]
    assert export["subject"] == "42"
    (exported,) = export["sessions"]
    assert exported["sessionId"] == sid
    assert [t["text"] for t in exported["turns"]] == ["turn 1", "turn 2", "turn 3"]
    assert [p["version"] for p in exported["profiles"]] == [1]
    assert len(exported["extractions"]) == 1


def test_triggering_an_extraction_starts_one_run_or_says_why_not(session):
    client = key_client(write=True)
    TranscriptTurnFactory(session=session, role="user", text="I moved to Lyon.", position=9999)
    empty: Session = a_session("42")

    started = client.post(f"/api/v1/sessions/{session.public_id}/extractions")
    with nothing_changes():
        nothing = client.post(f"/api/v1/sessions/{empty.public_id}/extractions")

    assert started.status_code == 202
    run = ExtractionRun.objects.get(public_id=started.json()["runId"])
    assert (run.session_id, run.status) == (session.pk, "pending")
    assert nothing.status_code == 409


def test_unknown_and_malformed_ids_are_named(session):
    client = key_client()

    with nothing_changes(but=["hostapi.ApiKey.last_used_at"]):
        malformed = client.get("/api/v1/sessions/not-a-uuid")
        unknown = client.get("/api/v1/sessions/00000000-0000-4000-8000-000000000000")

    assert malformed.json() == {"sessionId": ["Must be a session id (a UUID)."]}
    assert unknown.status_code == 404


def test_the_openapi_schema_declares_the_key_scheme(client: Client):
    schema = client.get("/api/schema/?format=json").json()

    schemes = schema["components"]["securitySchemes"]
    assert schemes["apiKey"]["scheme"] == "bearer"
    assert schemes["hostToken"]["bearerFormat"] == "JWT"
    operation = schema["paths"]["/api/v1/sessions/{session_id}/transcript"]["get"]
    assert operation["security"] == [{"apiKey": []}]
    assert {"401", "403", "429"} <= set(operation["responses"])


def test_an_admin_creates_a_key_shown_once_and_revokes_it():
    staff = Client()
    staff.force_login(User.objects.create_superuser("admin", "admin@example.com", None))

    added = staff.post(
        "/admin/hostapi/apikey/add/",
        {"name": "billing backend", "scope_read": "on", "scope_delete": "on"},
        follow=True,
    )

    key = ApiKey.objects.get(name="billing backend")
    shown = [str(m) for m in added.context["messages"]]
    (raw,) = [m.split(": ", 1)[1] for m in shown if m.startswith("The API key")]
    assert key.key_hash == sha256_hex(raw)
    assert key.scopes() == ["read", "delete"]
    staff.post(
        "/admin/hostapi/apikey/",
        {"action": "revoke", "_selected_action": [key.pk]},
    )
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert (
        Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get("/api/v1/users/42/sessions").status_code
        == 401
    )
