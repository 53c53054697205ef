"""Admin: sessions with calls and turns inline, search, filters, masked secrets, export."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from sessions_app.crypto import secret_decrypt
from sessions_app.models import Session, TranscriptTurn
from tests.factories import CallFactory, ClientSecretFactory, SessionFactory, TranscriptTurnFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/sessions_app/session/"


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", None))
    return client


@pytest.fixture
def conversation() -> Session:
    session = SessionFactory.create()
    call = CallFactory.create(session=session, generation=1, call_id="rtc_admin1")
    TranscriptTurnFactory.create(session=session, call=call, position=1024, text="Hi there")
    TranscriptTurnFactory.create(
        session=session, call=call, position=2048, role="assistant", text='You said: "Hi there".'
    )
    TranscriptTurnFactory.create(
        session=session,
        position=3072,
        role=TranscriptTurn.Role.TOOL_CALL,
        text=None,
        name="weather",
        arguments='{"city": "Oslo"}',
        status=TranscriptTurn.Status.INCOMPLETE,
    )
    return session


def test_change_page_shows_calls_and_turns_and_masks_the_secret(
    staff: Client, conversation: Session
) -> None:
    secret = ClientSecretFactory.create(session=conversation)
    value = secret_decrypt(secret.value_encrypted)

    response = staff.get(f"{CHANGELIST}{conversation.pk}/change/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "rtc_admin1" in page
    assert "Hi there" in page
    assert "(encrypted)" in page
    assert value not in page
    assert secret.value_encrypted not in page
    assert conversation.owner_hash not in page


def test_search_finds_a_session_by_call_id_and_by_session_id(
    staff: Client, conversation: Session
) -> None:
    other = SessionFactory.create()

    by_call = staff.get(CHANGELIST, {"q": "rtc_admin1"})
    by_id = staff.get(CHANGELIST, {"q": str(other.public_id)})

    assert list(by_call.context["cl"].result_list) == [conversation]
    assert list(by_id.context["cl"].result_list) == [other]


def test_filters_by_status_and_date(staff: Client, conversation: Session) -> None:
    closed = SessionFactory.create(status=Session.Status.CLOSED, closed_at="2026-01-01T00:00:00Z")
    now = timezone.now()
    day = dt.timedelta(days=1)

    by_status = staff.get(CHANGELIST, {"status__exact": "closed"})
    today = staff.get(
        CHANGELIST,
        {"created_at__gte": (now - day).isoformat(), "created_at__lt": (now + day).isoformat()},
    )
    future = staff.get(CHANGELIST, {"created_at__gte": (now + day).isoformat()})

    assert list(by_status.context["cl"].result_list) == [closed]
    assert set(today.context["cl"].result_list) == {conversation, closed}
    assert list(future.context["cl"].result_list) == []


def _export(staff: Client, action: str, session: Session) -> Any:
    return staff.post(CHANGELIST, {"action": action, "_selected_action": [session.pk]})


def test_export_transcript_as_json(staff: Client, conversation: Session) -> None:
    response = _export(staff, "export_transcript_json", conversation)

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="transcripts.json"'
    data = json.loads(response.content)
    assert [s["sessionId"] for s in data] == [str(conversation.public_id)]
    assert [(t["role"], t["text"]) for t in data[0]["turns"]] == [
        ("user", "Hi there"),
        ("assistant", 'You said: "Hi there".'),
        ("tool_call", None),
    ]
    assert data[0]["turns"][2]["name"] == "weather"


def test_export_transcript_as_markdown(staff: Client, conversation: Session) -> None:
    response = _export(staff, "export_transcript_markdown", conversation)

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="transcripts.md"'
    lines = [line for line in response.content.decode().splitlines() if line.startswith("**")]
    assert lines == [
        "**User:** Hi there",
        '**Assistant:** You said: "Hi there".',
        '**Function call:** `weather({"city": "Oslo"})` _[incomplete]_',
    ]
