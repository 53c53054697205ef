"""The bundled page on OpenAI's Live API (GPT-Live) in Debian's Chromium against the real stack:
choose it in "Model and voice", start (the SDP offer goes through our server), type and speak,
renew into a new Live session that remembers, refresh.

A typed line is context for the Live model (`session.commentary.append`): Live reports no text
for it, so the transcript shows the assistant's answer only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from django.conf import settings
from playwright.sync_api import Page, expect

from sessions_app.models import Call, Session
from tests.browser.test_page import (
    LaunchPage,
    attached_call_of,
    call_id_of,
    reply,
    say,
    screenshot,
    session_id_of,
    transcript_items,
    transcript_texts,
    wait_ready,
)
from tests.processes import wait_for

if TYPE_CHECKING:
    from realtime_emulator.testing import EmulatorServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def live_session(upstream: EmulatorServer, call_id: str) -> dict[str, Any]:
    state: dict[str, Any] = upstream.control("GET", f"/_emulator/live/sessions/{call_id}")
    return state


def expect_texts(page: Page, texts: list[str]) -> None:
    expect(transcript_texts(page)).to_have_text(texts, timeout=30_000)


def test_live_start_talk_renew_with_memory_and_refresh_on_the_page(
    launch_page: LaunchPage, upstream: EmulatorServer
) -> None:
    page = launch_page(audio="speech")
    page.get_by_label("OpenAI API").select_option(label="GPT-Live")
    expect(page.get_by_label("Model").locator("option")).to_have_text(settings.LIVE_MODELS)
    expect(page.get_by_label("Voice").locator("option")).to_have_text(settings.LIVE_VOICES)
    expect(page.get_by_label("Transcribe my speech")).to_be_disabled()

    page.get_by_role("button", name="Start").click()
    wait_ready(page)
    page.get_by_role("button", name="Mute").click()
    session_id = session_id_of(page)
    first_call = attached_call_of(page)
    assert first_call.startswith("live_u1_")
    session = Session.objects.get(public_id=session_id)
    assert (session.api, session.model) == ("live", settings.LIVE_MODELS[0])

    # Typed: the assistant answers it. Spoken: the user's words, then the answer.
    say(page, "Hello from the keyboard")
    expect_texts(page, [reply("Hello from the keyboard")])
    unmute = page.get_by_role("button", name="Mute")  # a toggle: pressed again, it unmutes
    unmute.click()
    expect(unmute).to_have_attribute("aria-pressed", "false")
    spoken = "Spoken turn 1, about 1 second."
    expect_texts(page, [reply("Hello from the keyboard"), spoken, reply(spoken)])
    page.get_by_role("button", name="Mute").click()
    screenshot(page, "live-mid-conversation")

    # Renew: a new Live session, started with the real turns as its input.
    page.get_by_role("button", name="Reconnect").click()
    expect(page.locator("body")).not_to_have_attribute("data-call-id", first_call)
    wait_ready(page)
    second_call = call_id_of(page)
    assert second_call.startswith("live_u1_")
    wait_for(
        lambda: Call.objects.filter(call_id=second_call, attached_at__isnull=False).exists(),
        timeout=20,
        what="the sideband of the renewed session",
    )
    seeded = live_session(upstream, second_call)["session"]["input"]
    assert [m["content"][0]["text"] for m in seeded] == [
        reply("Hello from the keyboard"),
        spoken,
        reply(spoken),
    ]
    say(page, "Do you remember what I said?")
    expect_texts(
        page,
        [reply("Hello from the keyboard"), spoken, reply(spoken), f'You told me: "{spoken}".'],
    )
    assert Call.objects.get(call_id=first_call).end_reason == "superseded"

    # A reload resumes the session on Live: a new Live session through the server.
    page.reload()
    wait_ready(page)
    third_call = call_id_of(page)
    assert third_call.startswith("live_u1_")
    assert third_call not in (first_call, second_call)
    assert session_id_of(page) == session_id
    expect(transcript_items(page)).to_have_count(4)

    # Refresh: a new Live session with an empty transcript.
    page.get_by_role("button", name="Refresh").click()
    dialog = page.get_by_role("dialog", name="Start a new conversation?")
    dialog.get_by_role("button", name="Start new conversation").click()
    expect(page.locator("body")).not_to_have_attribute("data-session-id", session_id)
    wait_ready(page)
    expect(transcript_items(page)).to_have_count(0)
    fresh = Session.objects.get(public_id=session_id_of(page))
    assert (fresh.api, fresh.replaces_id) == ("live", session.pk)
    assert live_session(upstream, call_id_of(page))["session"]["input"] == []
