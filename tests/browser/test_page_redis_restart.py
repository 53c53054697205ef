"""The page's live view across Redis going away: killed and restarted without its data mid-call,
and the push counter vanishing under a connected page (an expired key). Chromium against the
real stack, on a Redis this module starts and kills itself (tests/servers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import redis
from playwright.sync_api import expect

from tests.browser.test_page import (
    LaunchPage,
    attached_call_of,
    db_turns,
    expect_transcript,
    reply,
    say,
    screenshot,
    start,
)
from tests.processes import wait_for
from tests.servers import RedisServer, running

if TYPE_CHECKING:
    from realtime_emulator.testing import EmulatorServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def private_redis() -> Iterator[RedisServer]:
    with running(RedisServer()) as server:
        yield server


@pytest.fixture(scope="module")
def stack_env(stack_env: dict[str, str], private_redis: RedisServer) -> dict[str, str]:
    """The browser suite's app and worker, on this module's Redis."""
    return {**stack_env, "REDIS_URL": private_redis.url}


def completed(*texts: str) -> list[tuple[str, str | None, str]]:
    turns: list[tuple[str, str | None, str]] = []
    for text in texts:
        turns += [("user", text, "completed"), ("assistant", reply(text), "completed")]
    return turns


def test_the_live_view_carries_on_across_a_redis_restart(
    launch_page: LaunchPage, upstream: EmulatorServer, private_redis: RedisServer
) -> None:
    page = launch_page()
    session_id = start(page)
    attached_call_of(page)
    say(page, "Before the restart")
    expect_transcript(page, ["Before the restart", reply("Before the restart")])

    private_redis.kill()
    expect(page.locator("#event-log")).to_contain_text("socket closed")
    # The call goes on upstream; the worker keeps writing what it hears.
    say(page, "While Redis is away")
    wait_for(
        lambda: db_turns(session_id) == completed("Before the restart", "While Redis is away"),
        timeout=20,
        what="the turns said while Redis was away, in Postgres",
    )
    private_redis.start()

    # The page reconnects by itself and catches up; then the live view goes on.
    texts = ["Before the restart", "While Redis is away"]
    expect_transcript(page, [t for text in texts for t in (text, reply(text))], timeout=30_000)
    say(page, "After the restart")
    texts.append("After the restart")
    expect_transcript(page, [t for text in texts for t in (text, reply(text))])
    screenshot(page, "redis-restart-recovered")
    assert db_turns(session_id) == completed(*texts)


def test_a_vanished_push_counter_does_not_freeze_the_live_view(
    launch_page: LaunchPage, upstream: EmulatorServer, private_redis: RedisServer
) -> None:
    """The issue's reproduction: after a few messages the counter key is gone (expired, or
    flushed) while the page stays connected; numbering restarts at 1 in a new epoch."""
    page = launch_page()
    session_id = start(page)
    attached_call_of(page)
    say(page, "First")
    expect_transcript(page, ["First", reply("First")])

    client = redis.Redis.from_url(private_redis.url)
    assert client.delete(f"sideband:push:{session_id}") == 1
    client.close()
    say(page, "Second")

    expect_transcript(page, ["First", reply("First"), "Second", reply("Second")])
    expect(page.locator("#event-log")).to_contain_text("transcript re-read")
    assert db_turns(session_id) == completed("First", "Second")
