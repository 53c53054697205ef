"""The upstream dies mid-call: the page says so within 2 s, stops its clocks, explains why the
message box is disabled, and Retry recovers with exactly one renew.

This module runs its own emulator (the test kills its process, then starts it again on the
same port), so the suite's shared one is never touched.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Request, expect

from sessions_app.models import Call
from tests.browser.test_page import (
    LaunchPage,
    attached_call_of,
    expect_transcript,
    reply,
    say,
    screenshot,
    start,
    wait_ready,
)

if TYPE_CHECKING:
    from realtime_emulator.testing import EmulatorServer

# Two call set-ups, a kill and a restart of the emulator: more than the other page tests.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def emulator_server() -> Iterator[EmulatorServer]:
    """This module's own emulator process, the one its test kills (and which is running again
    after each test, whatever happened in it)."""
    from realtime_emulator.testing import EmulatorServer

    with EmulatorServer(extra_args=["--pace", "0.005", "--transcription-delay", "0.02"]) as server:
        yield server


@pytest.fixture
def upstream(upstream: EmulatorServer) -> Iterator[EmulatorServer]:
    yield upstream
    if upstream.process is None or upstream.process.poll() is not None:
        _upstream_restart(upstream)


def _upstream_kill(upstream: EmulatorServer) -> None:
    """SIGKILL: no goodbye on any socket, as when the upstream's host dies."""
    assert upstream.process is not None
    upstream.process.kill()
    upstream.process.wait(timeout=10)


def _upstream_restart(upstream: EmulatorServer) -> None:
    upstream.process = None
    upstream.start()  # the same port: the app and the page keep their upstream URL


def test_upstream_killed_mid_call_alerts_within_2_s_and_retry_renews_once(
    launch_page: LaunchPage, upstream: EmulatorServer
) -> None:
    page = launch_page()
    renews: list[str] = []

    def count_renew(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/session/renew"):
            renews.append(request.url)

    page.on("request", count_renew)
    session_id = start(page)
    first_call = attached_call_of(page)
    say(page, "Before the outage")
    expect_transcript(page, ["Before the outage", reply("Before the outage")])

    _upstream_kill(upstream)

    # Within 2 s of the kill: the alert with Retry, the status, the clocks stopped, the reason
    # the message box is disabled.
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible(timeout=2_000)
    expect(alert.locator("p")).to_have_text(
        re.compile(r"\. Press Retry to reconnect; the transcript is kept\.$"), timeout=1
    )
    expect(alert.get_by_role("button", name="Retry")).to_be_visible(timeout=1)
    expect(page.get_by_role("status")).to_have_text("Connection failed", timeout=1)
    expect(page.locator("#countdown")).to_be_hidden(timeout=1)
    expect(page.get_by_label("Message")).to_be_disabled(timeout=1)
    expect(page.locator("#composer-hint")).to_have_text(
        "Not connected, so nothing can be sent: press Retry above to reconnect.", timeout=1
    )
    screenshot(page, "upstream-killed")
    assert renews == []

    _upstream_restart(upstream)
    page.get_by_role("button", name="Retry").click()
    wait_ready(page)
    second_call = attached_call_of(page, what="the sideband to attach to the new call")
    say(page, "After the outage")
    expect_transcript(
        page,
        [
            "Before the outage",
            reply("Before the outage"),
            "After the outage",
            reply("After the outage"),
        ],
    )
    expect(page.locator("#countdown")).to_be_visible()

    # One recovery, one renew: one new key, one new call.
    assert len(renews) == 1
    assert list(
        Call.objects.filter(session__public_id=session_id)
        .order_by("generation")
        .values_list("call_id", flat=True)
    ) == [first_call, second_call]
