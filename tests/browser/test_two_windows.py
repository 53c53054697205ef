"""Two windows of one browser on one conversation, in Debian's Chromium against the real stack:
the second takes the conversation over, the first says so and stops taking words, and either
can take it back. Nothing said in either window is lost."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Locator, expect

from sessions_app.models import Call
from tests.browser.test_page import (
    LaunchPage,
    attached_call_of,
    db_turns,
    emulator_call,
    expect_transcript,
    reply,
    say,
    screenshot,
    session_id_of,
    start,
    wait_ready,
)
from tests.processes import wait_for

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from realtime_emulator.testing import EmulatorServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

MOVED = "This conversation moved to another window."


def moved_banner(page: Page) -> Locator:
    return page.locator("#superseded")


def test_a_second_window_takes_the_conversation_and_the_first_says_so(
    launch_page: LaunchPage, upstream: EmulatorServer
) -> None:
    first = launch_page()
    session_id = start(first)
    first_call = attached_call_of(first)
    say(first, "From the first window")
    expect_transcript(first, ["From the first window", reply("From the first window")])

    # A second tab of the same browser (same cookie, same saved session) opens the page.
    second = first.context.new_page()
    second.set_default_timeout(20_000)
    second.goto("/")
    wait_ready(second)
    assert session_id_of(second) == session_id
    second_call = attached_call_of(second, what="the sideband to move to the second window")

    # The first window says where the conversation went and takes no more words.
    expect(moved_banner(first)).to_be_visible()
    expect(moved_banner(first)).to_contain_text(MOVED)
    expect(first.get_by_role("button", name="Send")).to_be_disabled()
    expect(first.get_by_label("Message")).to_be_disabled()
    expect(first.get_by_role("status")).to_have_text("Call ended")
    screenshot(first, "superseded-first-window")
    # ...and its call is over upstream too, not just fenced out.
    wait_for(
        lambda: emulator_call(upstream, first_call)["status"] == "ended",
        what="the first window's call to be hung up upstream",
    )
    assert Call.objects.get(call_id=first_call).end_reason == Call.EndReason.SUPERSEDED

    say(second, "From the second window")
    expect_transcript(
        second,
        [
            "From the first window",
            reply("From the first window"),
            "From the second window",
            reply("From the second window"),
        ],
    )

    # Taking it back: the first window continues, the second one now says it moved.
    first.get_by_role("button", name="Continue here").click()
    wait_ready(first)
    expect(moved_banner(first)).to_be_hidden()
    expect(moved_banner(second)).to_be_visible()
    expect(second.get_by_role("button", name="Send")).to_be_disabled()
    attached_call_of(first, what="the sideband to move back to the first window")
    say(first, "Back in the first window")
    everything = [
        "From the first window",
        reply("From the first window"),
        "From the second window",
        reply("From the second window"),
        "Back in the first window",
        reply("Back in the first window"),
    ]
    expect_transcript(first, everything)
    expect_transcript(second, everything)
    assert [text for _, text, _ in db_turns(session_id)] == everything
    wait_for(
        lambda: emulator_call(upstream, second_call)["status"] == "ended",
        what="the second window's call to be hung up upstream",
    )
