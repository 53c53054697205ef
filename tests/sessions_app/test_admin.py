"""Admin: sessions read as conversations, search, filters, masked secrets, export."""

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
    TranscriptTurnFactory.create(
        session=session, call=call, position=1024, text="Hi there", input_mode="text"
    )
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


def test_filters_by_state_and_date(staff: Client, conversation: Session) -> None:
    closed = SessionFactory.create(status=Session.Status.CLOSED, closed_at="2026-01-01T00:00:00Z")
    live = SessionFactory.create()
    CallFactory.create(session=live, generation=1, call_id="rtc_live1")
    now = timezone.now()
    day = dt.timedelta(days=1)
    # The conversation's only call ended: its tab went away, the session waits idle.
    conversation.calls.update(ended_at=now, end_reason="hangup")

    by_status = staff.get(CHANGELIST, {"state": "closed"})
    live_only = staff.get(CHANGELIST, {"state": "live"})
    idle_only = staff.get(CHANGELIST, {"state": "idle"})
    today = staff.get(
        CHANGELIST,
        {"created_at__gte": (now - day).isoformat(), "created_at__lt": (now + day).isoformat()},
    )
    future = staff.get(CHANGELIST, {"created_at__gte": (now + day).isoformat()})

    assert list(by_status.context["cl"].result_list) == [closed]
    assert list(live_only.context["cl"].result_list) == [live]
    assert list(idle_only.context["cl"].result_list) == [conversation]
    assert set(today.context["cl"].result_list) == {conversation, closed, live}
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
    turns = TranscriptTurn.objects.filter(session=conversation).order_by("position")
    at = [turn.created_at.astimezone(dt.UTC).strftime("%H:%M:%S") for turn in turns]
    text = response.content.decode()
    assert text.split("\n\n", 1)[0] == (
        f"# Conversation of {conversation.created_at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
    )
    assert text.endswith("`\n")
    assert text.rstrip("\n").split("\n\n")[2:] == [
        f"**You** (typed, {at[0]})  \nHi there",
        f'**Assistant** ({at[1]})  \nYou said: "Hi there".',
        f"**Function call** (interrupted, {at[2]})  \n" + '`weather({"city": "Oslo"})`',
    ]


def test_list_shows_state_turn_count_and_last_turn(staff: Client, conversation: Session) -> None:
    CallFactory.create(session=conversation, generation=2, call_id="rtc_admin2")
    empty = SessionFactory.create(status=Session.Status.CLOSED, closed_at="2026-01-01T00:00:00Z")

    response = staff.get(CHANGELIST)

    rows = {
        row.pk: (row.turn_count, row.last_text, row.live)
        for row in response.context["cl"].result_list
    }
    assert rows == {conversation.pk: (3, None, True), empty.pk: (0, None, False)}
    page = response.content.decode()
    assert '<td class="field-state">Live</td>' in page
    assert '<td class="field-turns">3</td>' in page


def test_list_previews_the_last_turn(staff: Client) -> None:
    session = SessionFactory.create()
    TranscriptTurnFactory.create(session=session, text="First")
    TranscriptTurnFactory.create(session=session, role="assistant", text="x" * 200)

    page = staff.get(CHANGELIST).content.decode()

    assert f'<td class="field-last_turn">{"x" * 79}…</td>' in page
    assert "First" not in page


def test_session_page_reads_as_a_conversation_with_export_buttons(
    staff: Client, conversation: Session
) -> None:
    response = staff.get(f"{CHANGELIST}{conversation.pk}/change/")

    page = response.content.decode()
    assert [row["speaker"] for row in response.context["conversation"]] == [
        "You",
        "Assistant",
        "Function call",
    ]
    assert [row["marks"] for row in response.context["conversation"]] == [
        ["typed"],
        [],
        ["interrupted"],
    ]
    assert "Transcript (3 turns)" in page
    assert '<p class="conversation-text">Hi there</p>' in page
    md, js = (
        f"{CHANGELIST}{conversation.pk}/transcript.md",
        f"{CHANGELIST}{conversation.pk}/transcript.json",
    )
    assert f'<a href="{md}" class="transcript-export" download>Export Markdown</a>' in page
    assert f'<a href="{js}" class="transcript-export" download>Export JSON</a>' in page

    markdown = staff.get(md)
    document = staff.get(js)
    assert markdown["Content-Type"] == "text/markdown; charset=utf-8"
    assert markdown["Content-Disposition"].startswith('attachment; filename="transcript-')
    assert "**You** (typed, " in markdown.content.decode()
    assert [t["inputMode"] for t in json.loads(document.content)["turns"]] == ["text", None, None]
    assert staff.get(f"{CHANGELIST}{conversation.pk}/transcript.txt").status_code == 404


def test_export_buttons_need_the_admin(conversation: Session) -> None:
    response = Client().get(f"{CHANGELIST}{conversation.pk}/transcript.md")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
