"""What the page does when the way on is not the usual one: a profile asked for before anything
was said, a stored conversation that is over, the voice service ending the session, and a
conversation this browser may no longer follow.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, WebSocketRoute, expect

from extraction.models import Profile
from sessions_app.models import Call
from tests.browser.test_page import (
    LaunchPage,
    attached_call_of,
    call_id_of,
    expect_transcript,
    reply,
    say,
    start,
    wait_ready,
)

if TYPE_CHECKING:
    from realtime_emulator.testing import EmulatorServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

STORED_SESSION = "localStorage.getItem('realtime.sessionId')"


def expect_no_session(page: Page) -> None:
    """The page is back where it starts: Start offered, no session kept or shown."""
    page.wait_for_function(f"{STORED_SESSION} === null")
    expect(page.locator("body")).to_have_attribute("data-session-id", "")
    expect(page.get_by_role("button", name="Start")).to_be_enabled()


def test_extracting_before_anything_was_said_is_a_hint_and_changes_nothing(
    launch_page: LaunchPage, upstream: EmulatorServer
) -> None:
    page = launch_page()
    session_id = start(page)

    page.get_by_role("button", name="Extract profile").click()

    expect(page.locator("#alert-text")).to_have_text(
        "There is nothing to extract yet. Talk or type a little, then try again."
    )
    expect(page.locator("#alert")).to_have_attribute("data-level", "info")
    expect(page.get_by_role("button", name="Retry")).to_be_hidden()
    expect(page.get_by_role("button", name="Extract profile")).to_be_enabled()
    expect(page.locator("#profile")).to_be_hidden()
    assert not Profile.objects.filter(session__public_id=session_id).exists()


def test_a_stored_conversation_that_is_over_is_forgotten_on_load(
    launch_page: LaunchPage, upstream: EmulatorServer
) -> None:
    page = launch_page()
    closed = start(page)
    page.get_by_role("button", name="Refresh").click()
    dialog = page.get_by_role("dialog", name="Start a new conversation?")
    dialog.get_by_role("button", name="Start new conversation").click()
    expect(page.locator("body")).not_to_have_attribute("data-session-id", closed)
    wait_ready(page)
    calls_before = Call.objects.count()

    # The closed session answers `status: closed`; one that is not there (or not this
    # browser's) a 404. Neither is resumed.
    for stored in (closed, "00000000-0000-4000-8000-000000000000"):
        page.evaluate(f"localStorage.setItem('realtime.sessionId', '{stored}')")
        page.reload()
        expect_no_session(page)
        expect(page.locator("#alert")).to_be_hidden()

    assert Call.objects.count() == calls_before


def test_the_voice_service_ending_the_session_renews_on_its_own(
    launch_page: LaunchPage, upstream: EmulatorServer
) -> None:
    page = launch_page()
    session_id = start(page)
    first_call = attached_call_of(page)

    # The upstream's session cap: an `error` with code `session_expired` on the data channel,
    # then the call ends.
    upstream.control("POST", f"/_emulator/calls/{first_call}/expire-session")

    expect(page.locator("body")).not_to_have_attribute("data-call-id", first_call)
    # A new call: ready again (data-ready needs a call with its data channel open).
    wait_ready(page)
    second_call = attached_call_of(page)
    expect(page.locator("#event-log")).to_contain_text("renewed — automatic")
    calls = list(
        Call.objects.filter(session__public_id=session_id)
        .order_by("generation")
        .values_list("call_id", flat=True)
    )
    assert calls == [first_call, second_call]
    say(page, "Still here")
    expect_transcript(page, ["Still here", reply("Still here")])


def test_a_socket_closed_as_forbidden_is_not_retried_and_the_conversation_is_let_go(
    launch_page: LaunchPage, upstream: EmulatorServer
) -> None:
    """Close code 4403 says "not this browser's session" (sideband/consumers.py). The route
    plays the server's part: it closes the page's open socket with that code."""
    page = launch_page()
    sockets: list[WebSocketRoute] = []

    def to_server(ws: WebSocketRoute) -> None:
        sockets.append(ws)
        ws.connect_to_server()

    page.route_web_socket(re.compile(r"/ws/session/"), to_server)
    session_id = start(page)
    first_call = call_id_of(page)

    sockets[-1].close(code=4403, reason="not this browser's session")

    expect(page.locator("#alert-text")).to_have_text(
        "This browser cannot follow that conversation any more (its cookie is gone). "
        "Press Start to begin a new one."
    )
    expect_no_session(page)
    expect(page.get_by_role("status")).to_have_text("Not connected")
    # Let go, not retried: the page forgot the session instead of reconnecting its socket.
    log = page.locator("#event-log")
    expect(log).to_contain_text("socket forbidden")
    expect(log).not_to_contain_text("socket closed")
    assert len(sockets) == 1
    assert list(
        Call.objects.filter(session__public_id=session_id).values_list("call_id", flat=True)
    ) == [first_call]
