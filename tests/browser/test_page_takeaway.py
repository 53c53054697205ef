"""What a person keeps: the profile card across a reload, the profile carried into a new
conversation, the transcript as a file (from the page and from the admin), and a page that
assistive technology can use (axe-core finds no serious violation).

The admin's transcript screenshot (admin-transcript.png) is the README's second picture.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Download, Locator, Page, expect

from extraction.models import Profile
from sessions_app import export
from sessions_app.models import Session
from tests.browser.test_page import (
    EXTRACTION_TIMEOUT_MS,
    LaunchPage,
    attached_call_of,
    expect_transcript,
    reply,
    say,
    screenshot,
    session_id_of,
    start,
    transcript_items,
    wait_ready,
)

if TYPE_CHECKING:
    from realtime_emulator.testing import EmulatorServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"


def profile_card(page: Page) -> Locator:
    return page.get_by_role("region", name=re.compile(r"^Profile"))


def name_fact(page: Page) -> Locator:
    return profile_card(page).locator("dt:text-is('Name') + dd .fact")


def extract_ada(page: Page) -> str:
    """A conversation in which the person gives their name, and its extracted profile."""
    session_id = start(page)
    attached_call_of(page)
    say(page, "My name is Ada")
    expect_transcript(page, ["My name is Ada", reply("My name is Ada")])
    page.get_by_role("button", name="Extract profile").click()
    expect(name_fact(page)).to_have_text(re.compile(r"^Ada"), timeout=EXTRACTION_TIMEOUT_MS)
    return session_id


def download_text(download: Download) -> str:
    path = download.path()
    assert path is not None
    return Path(path).read_text(encoding="utf-8")


def test_the_profile_card_is_back_after_a_reload(
    launch_page: LaunchPage, upstream: EmulatorServer
) -> None:
    page = launch_page()
    session_id = extract_ada(page)

    page.reload()

    # Straight from the server, before any new extraction.
    expect(name_fact(page)).to_have_text(re.compile(r"^Ada"))
    expect(profile_card(page).locator("#profile-version")).to_have_text("v1")
    wait_ready(page)
    assert session_id_of(page) == session_id
    assert Profile.objects.filter(session__public_id=session_id).count() == 1
    screenshot(page, "profile-after-reload")


def test_refresh_asks_first_and_carries_the_profile(
    launch_page: LaunchPage, upstream: EmulatorServer
) -> None:
    page = launch_page()
    old_session = extract_ada(page)

    page.get_by_role("button", name="Refresh").click()
    dialog = page.get_by_role("dialog", name="Start a new conversation?")
    carry = dialog.get_by_label("Carry the profile into the new conversation")
    expect(carry).to_be_checked()
    screenshot(page, "refresh-dialog")
    # Cancel changes nothing.
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert session_id_of(page) == old_session

    page.get_by_role("button", name="Refresh").click()
    dialog.get_by_role("button", name="Start new conversation").click()
    expect(page.locator("body")).not_to_have_attribute("data-session-id", old_session)
    wait_ready(page)
    new_session = session_id_of(page)

    # A new, empty conversation that starts from the old one's profile.
    expect(transcript_items(page)).to_have_count(0)
    expect(name_fact(page)).to_have_text(re.compile(r"^Ada"))
    carried = Profile.objects.get(session__public_id=new_session)
    assert (carried.version, carried.data["name"]["value"]) == (1, "Ada")
    assert Session.objects.get(public_id=old_session).status == "closed"
    call_id = attached_call_of(page)
    say(page, "Who am I?")
    expect_transcript(page, ["Who am I?", reply("Who am I?", "Marker: profile v1")])
    assert "Ada" in (upstream.control("GET", f"/_emulator/calls/{call_id}")["instructions"] or "")


def test_the_transcript_downloads_as_markdown_and_json_and_the_event_log_shows_payloads(
    launch_page: LaunchPage, upstream: EmulatorServer
) -> None:
    page = launch_page()
    session_id = start(page)
    call_id = attached_call_of(page)
    say(page, "Typed words")
    expect_transcript(page, ["Typed words", reply("Typed words")])
    upstream.control("POST", f"/_emulator/calls/{call_id}/user-audio", {"transcript": "Said aloud"})
    expect_transcript(
        page, ["Typed words", reply("Typed words"), "Said aloud", reply("Said aloud")]
    )
    # Each turn shows its time, and the person's turns how they were given.
    expect(transcript_items(page).locator(".how")).to_have_text(["typed", "spoken"])
    expect(transcript_items(page).locator("time")).to_have_count(4)

    with page.expect_download() as markdown_download:
        page.get_by_role("link", name="Download as Markdown").click()
    with page.expect_download() as json_download:
        page.get_by_role("link", name="Download as JSON").click()

    session = Session.objects.get(public_id=session_id)
    markdown = export.transcript_file(session, kind="md")
    assert markdown_download.value.suggested_filename == markdown.filename
    text = download_text(markdown_download.value)
    assert text == markdown.content
    heads = re.findall(r"^\*\*(\w+)\*\* \((.*)\)  $", text, flags=re.MULTILINE)
    assert [(who, re.sub(r"\d\d:\d\d:\d\d", "T", how)) for who, how in heads] == [
        ("You", "typed, T"),
        ("Assistant", "T"),
        ("You", "spoken, T"),
        ("Assistant", "T"),
    ]
    document: dict[str, Any] = json.loads(download_text(json_download.value))
    assert [(t["role"], t["text"], t["inputMode"]) for t in document["turns"]] == [
        ("user", "Typed words", "text"),
        ("assistant", reply("Typed words"), None),
        ("user", "Said aloud", "audio"),
        ("assistant", reply("Said aloud"), None),
    ]
    assert all(t["createdAt"] for t in document["turns"])

    # The developers' event log: newest first, payloads folded, a filter.
    page.get_by_text("Event log").click()
    # One read of the whole list (events may still arrive): HH:MM:SS.mmm, newest at the top.
    times = [line[:12] for line in page.locator("#event-log > li").all_inner_texts()]
    assert times == sorted(times, reverse=True)
    assert len(times) > 5
    page.get_by_label("Filter events").fill("response.done")
    shown = page.locator("#event-log > li:visible")
    expect(shown).to_have_count(2)  # one per reply
    payload = shown.first.locator("pre")
    expect(payload).to_be_hidden()  # folded until asked for
    shown.first.locator("summary").click()
    expect(payload).to_contain_text('"type": "response.done"')
    page.get_by_label("Filter events").fill("")
    assert page.evaluate(
        "[...document.querySelectorAll('#event-log > li')].every(li => !li.hidden)"
    )


def test_the_admin_session_page_reads_as_a_conversation_and_exports_it(
    launch_page: LaunchPage, upstream: EmulatorServer, app_server: str
) -> None:
    User.objects.create_superuser("admin", "admin@example.com", "admin-password")
    page = launch_page()
    session_id = start(page)
    call_id = attached_call_of(page)
    for text in ("Hello there", "What is the weather like in Lisbon today?"):
        say(page, text)
        expect(transcript_items(page).filter(has_text=reply(text))).to_have_count(1)
    upstream.control("POST", f"/_emulator/calls/{call_id}/user-audio", {"transcript": "Thanks"})
    expect(transcript_items(page)).to_have_count(6)
    expect(transcript_items(page).last).to_have_attribute("data-status", "completed")
    session = Session.objects.get(public_id=session_id)

    admin = launch_page()
    admin.goto(f"/admin/sessions_app/session/{session.pk}/change/")
    admin.get_by_label("Username").fill("admin")
    admin.get_by_label("Password").fill("admin-password")
    admin.get_by_role("button", name="Log in").click()
    conversation = admin.get_by_role("region", name="Transcript (6 turns)")
    expect(conversation.get_by_role("listitem")).to_have_count(6)
    expect(conversation.get_by_role("listitem").first).to_contain_text("You")
    expect(conversation.get_by_role("listitem").first).to_contain_text("typed")
    expect(conversation.get_by_role("listitem").nth(4)).to_contain_text("spoken")
    # Full-width text, and nothing wider than the window.
    text_width = conversation.locator(".conversation-text").first.bounding_box()
    assert text_width is not None
    assert text_width["width"] > 600
    assert admin.evaluate("document.documentElement.scrollWidth") <= 1280
    screenshot(admin, "admin-transcript")
    # The calls, unfolded: their long ids wrap instead of widening the page.
    admin.locator("#calls-group summary").click()
    expect(admin.locator("#calls-group td.field-call_id")).to_have_text(call_id)
    assert admin.evaluate("document.documentElement.scrollWidth") <= 1280

    with admin.expect_download() as download:
        admin.get_by_role("link", name="Export Markdown").click()
    assert download_text(download.value) == export.transcript_markdown(session)
    with admin.expect_download() as download:
        admin.get_by_role("link", name="Export JSON").click()
    assert json.loads(download_text(download.value)) == export.transcript_document(session)

    # The list: state, turn count, last turn.
    admin.goto("/admin/sessions_app/session/")
    row = admin.get_by_role("row").filter(has_text=str(session.public_id))
    expect(row.locator(".field-state")).to_have_text("Live")
    expect(row.locator(".field-turns")).to_have_text("6")
    expect(row.locator(".field-last_turn")).to_have_text(reply("Thanks"))


def axe_serious(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations of impact serious or critical on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    results: dict[str, Any] = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_the_page_has_no_serious_accessibility_violation(
    launch_page: LaunchPage, upstream: EmulatorServer
) -> None:
    """axe-core in each state a person meets: before Start, mid-conversation with the profile
    card and the event log open, and with the Refresh dialog; in light and in dark."""
    page = launch_page()

    def both_schemes() -> list[dict[str, Any]]:
        found = []
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            found += [{"scheme": scheme, **violation} for violation in axe_serious(page)]
        return found

    before = both_schemes()
    start(page)
    attached_call_of(page)
    say(page, "My name is Ada")
    expect_transcript(page, ["My name is Ada", reply("My name is Ada")])
    page.get_by_role("button", name="Extract profile").click()
    expect(name_fact(page)).to_be_visible(timeout=EXTRACTION_TIMEOUT_MS)
    page.get_by_text("Event log").click()  # open: its payloads and filter are checked too
    during = both_schemes()
    page.get_by_role("button", name="Refresh").click()
    in_dialog = both_schemes()

    assert (before, during, in_dialog) == ([], [], [])
