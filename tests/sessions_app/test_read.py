"""GET /session/{id} and GET /session/{id}/transcript."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings as django_settings
from django.core.management import call_command
from django.test import Client
from django.urls import resolve
from django.utils import timezone

from sessions_app.models import Call, Session, TranscriptTurn
from sessions_app.push import push_seq_take
from sessions_app.selectors import iso
from tests.factories import (
    CallFactory,
    ClientSecretFactory,
    ProfileFactory,
    SessionFactory,
    TranscriptTurnFactory,
)
from tests.sessions_app.helpers import post_json
from tests.unchanged import nothing_changes

pytestmark = pytest.mark.django_db


def test_session_state_shows_status_calls_and_secret_expiry(owner: Client) -> None:
    replaced = SessionFactory.create(status=Session.Status.CLOSED, closed_at="2026-01-01T00:00:00Z")
    session = SessionFactory.create(
        replaces=replaced, voice="cedar", transcription_enabled=False, current_generation=1
    )
    ClientSecretFactory.create(session=session)
    newest = ClientSecretFactory.create(session=session)
    first = CallFactory.create(session=session, generation=1, secret=newest)
    post_json(owner, "/session/call", {"sessionId": str(session.public_id), "callId": "rtc_two"})
    first.refresh_from_db()
    second = Call.objects.get(call_id="rtc_two")
    TranscriptTurnFactory.create(session=session)
    session.refresh_from_db()

    response = owner.get(f"/session/{session.public_id}")

    assert response.status_code == 200
    assert response.json() == {
        "sessionId": str(session.public_id),
        "status": "active",
        "model": "gpt-realtime",
        "voice": "cedar",
        "enableTranscription": False,
        "createdAt": iso(session.created_at),
        "closedAt": None,
        "closeReason": None,
        "replaces": str(replaced.public_id),
        "replacedBy": None,
        "generation": 2,
        "callId": "rtc_two",
        "expiresAt": iso(newest.expires_at),
        "capture": "starting",
        "calls": [
            {
                "callId": first.call_id,
                "generation": 1,
                "registeredAt": iso(first.registered_at),
                "attachedAt": None,
                "endedAt": iso(first.ended_at),
                "endReason": "superseded",
                "capture": "ended",
            },
            {
                "callId": "rtc_two",
                "generation": 2,
                "registeredAt": iso(second.registered_at),
                "attachedAt": None,
                "endedAt": None,
                "endReason": None,
                "capture": "starting",
            },
        ],
        "turnCount": 1,
        "profile": None,
    }
    assert owner.get(f"/session/{replaced.public_id}").json()["replacedBy"] == str(
        session.public_id
    )


def test_session_state_shows_capture_pending_for_a_call_no_worker_claimed(owner: Client) -> None:
    # Given a live call registered longer ago than its grace, that no worker holds
    session = SessionFactory.create(current_generation=1)
    call = CallFactory.create(session=session, generation=1)
    grace = dt.timedelta(seconds=django_settings.SIDEBAND_LEASE_S + 1)
    Call.objects.filter(pk=call.pk).update(registered_at=timezone.now() - grace)

    # When the page reads the session
    body = owner.get(f"/session/{session.public_id}").json()

    # Then it says capture is pending, for the session and for the call
    assert body["capture"] == "pending"
    assert [c["capture"] for c in body["calls"]] == ["pending"]

    # And once a worker holds its lease, active
    Call.objects.filter(pk=call.pk).update(
        lease_owner="host:1:abc", lease_expires_at=timezone.now() + grace
    )
    assert owner.get(f"/session/{session.public_id}").json()["capture"] == "active"


def test_transcript_lists_turns_in_order_with_tool_fields(owner: Client) -> None:
    session = SessionFactory.create()
    position = push_seq_take(session_public_id=str(session.public_id), count=7)
    call = CallFactory.create(session=session, generation=1)
    later = TranscriptTurnFactory.create(
        session=session, call=call, position=2048, role="assistant", text="You said: hi"
    )
    first = TranscriptTurnFactory.create(session=session, call=call, position=1024, text="hi")
    tool = TranscriptTurnFactory.create(
        session=session,
        call=None,
        position=4096,
        role=TranscriptTurn.Role.TOOL_CALL,
        text=None,
        status=TranscriptTurn.Status.FAILED,
        status_reason="cancelled",
        name="lookup",
        arguments='{"q": 1}',
        tool_call_id="call_1",
    )

    response = owner.get(f"/session/{session.public_id}/transcript")

    assert response.status_code == 200
    body = response.json()
    assert body["sessionId"] == str(session.public_id)
    assert (body["epoch"], body["seq"]) == (position.epoch, 7)
    assert [t["itemId"] for t in body["turns"]] == [first.item_id, later.item_id, tool.item_id]
    assert body["turns"][0] == {
        "itemId": first.item_id,
        "role": "user",
        "text": "hi",
        "status": "completed",
        "statusReason": "",
        "position": 1024,
        "callId": call.call_id,
        "inputMode": None,
        "createdAt": iso(first.created_at),
        "updatedAt": iso(first.updated_at),
    }
    assert body["turns"][2] == {
        "itemId": tool.item_id,
        "role": "tool_call",
        "text": None,
        "status": "failed",
        "statusReason": "cancelled",
        "position": 4096,
        "callId": None,
        "inputMode": None,
        "createdAt": iso(tool.created_at),
        "updatedAt": iso(tool.updated_at),
        "name": "lookup",
        "arguments": '{"q": 1}',
        "toolCallId": "call_1",
        "output": "",
    }


def test_transcript_after_returns_only_later_turns(owner: Client) -> None:
    session = SessionFactory.create()
    for position in (1024, 2048, 3072):
        TranscriptTurnFactory.create(session=session, position=position)

    body = owner.get(f"/session/{session.public_id}/transcript?after=2048").json()

    assert [t["position"] for t in body["turns"]] == [3072]
    assert owner.get(f"/session/{session.public_id}/transcript?after=3072").json()["turns"] == []


def test_transcript_rejects_a_malformed_after(owner: Client) -> None:
    session = SessionFactory.create()

    response = owner.get(f"/session/{session.public_id}/transcript?after=abc")

    assert response.status_code == 400
    assert list(response.json()) == ["after"]


@pytest.mark.parametrize("path", ["/session/{id}", "/session/{id}/transcript"])
def test_reads_of_another_clients_session_are_404(
    stranger: Client, browser: Client, path: str
) -> None:
    session = SessionFactory.create()
    TranscriptTurnFactory.create(session=session)

    for client in (stranger, browser):
        with nothing_changes():
            response = client.get(path.format(id=session.public_id))
        assert response.status_code == 404
        assert response.json() == {"detail": "Session not found."}


@pytest.mark.parametrize("path", ["/session/not-a-uuid", "/session/123/transcript"])
def test_reads_with_a_malformed_id_are_400(owner: Client, path: str) -> None:
    response = owner.get(path)

    assert response.status_code == 400
    assert list(response.json()) == ["sessionId"]


def test_extract_profile_is_routed_to_the_extraction_view() -> None:
    from extraction.api import ExtractProfileView

    assert resolve("/extract-profile").func.view_class is ExtractProfileView  # type: ignore[attr-defined]


def test_extract_profile_of_another_clients_session_is_404(upstream: Any, stranger: Client) -> None:
    session = SessionFactory.create()
    TranscriptTurnFactory.create(session=session)

    with nothing_changes(upstream):
        response = post_json(stranger, "/extract-profile", {"sessionId": str(session.public_id)})

    assert response.status_code == 404


def test_index_page_sets_the_csrf_cookie(browser: Client) -> None:
    response = browser.get("/")

    assert response.status_code == 200
    assert "csrftoken" in response.cookies


def test_openapi_schema_lists_the_seed_paths(browser: Client) -> None:
    schema = browser.get("/api/schema/?format=json")
    docs = browser.get("/api/docs/")

    assert schema.status_code == 200
    paths = set(schema.json()["paths"])
    assert {
        "/session",
        "/session/call",
        "/session/renew",
        "/session/{session_id}",
        "/session/{session_id}/transcript",
        "/extract-profile",
    } <= paths
    assert docs.status_code == 200
    assert "drf_spectacular_sidecar" in docs.content.decode()


def test_openapi_schema_generates_without_warnings(tmp_path: Path) -> None:
    target = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    schema = yaml.safe_load(target.read_text())
    assert schema["components"]["securitySchemes"]["clientCookie"] == {
        "type": "apiKey",
        "in": "cookie",
        "name": "rt_client",
    }


def test_session_state_carries_the_profile_in_force(owner: Client) -> None:
    session = SessionFactory.create()
    ProfileFactory.create(session=session, version=1)
    newest = ProfileFactory.create(session=session, version=2)

    body = owner.get(f"/session/{session.public_id}").json()

    assert body["profile"] == {
        "profile": newest.data,
        "instructions": newest.instructions,
        "version": 2,
    }


def test_transcript_file_downloads_markdown_and_json_with_times_and_input_mode(
    owner: Client,
) -> None:
    session = SessionFactory.create()
    typed = TranscriptTurnFactory.create(session=session, text="Typed hello", input_mode="text")
    spoken = TranscriptTurnFactory.create(session=session, text="Spoken hi", input_mode="audio")
    TranscriptTurnFactory.create(session=session, role="assistant", text="Hello!")
    stem = f"transcript-{session.created_at.astimezone(dt.UTC):%Y%m%d-%H%M}-"
    stem += str(session.public_id)[:8]

    markdown = owner.get(f"/session/{session.public_id}/transcript.md")
    document = owner.get(f"/session/{session.public_id}/transcript.json")

    assert markdown.status_code == 200
    assert markdown["Content-Disposition"] == f'attachment; filename="{stem}.md"'
    clock = [t.created_at.astimezone(dt.UTC).strftime("%H:%M:%S") for t in (typed, spoken)]
    assert f"**You** (typed, {clock[0]})  \nTyped hello\n" in markdown.content.decode()
    assert f"**You** (spoken, {clock[1]})  \nSpoken hi\n" in markdown.content.decode()
    assert document["Content-Disposition"] == f'attachment; filename="{stem}.json"'
    body = document.json()
    assert [(t["text"], t["inputMode"]) for t in body["turns"]] == [
        ("Typed hello", "text"),
        ("Spoken hi", "audio"),
        ("Hello!", None),
    ]
    assert body["turns"][0]["createdAt"] == iso(typed.created_at)


def test_transcript_file_of_another_browser_or_of_an_unknown_kind_is_404(
    owner: Client, stranger: Client
) -> None:
    session = SessionFactory.create()

    with nothing_changes():
        assert stranger.get(f"/session/{session.public_id}/transcript.md").status_code == 404
        assert owner.get(f"/session/{session.public_id}/transcript.txt").status_code == 404
    assert owner.get("/session/not-a-uuid/transcript.md").status_code == 400
