"""Several worker processes: admission at capacity, calls shared, a killed process's calls
taken over, the metrics endpoint. Real worker processes, the emulator, Postgres and Redis."""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import redis
from django.conf import settings as django_settings

from sessions_app.models import Call, Session, TranscriptTurn
from sideband.tasks import calls_reconcile
from tests.sideband.helpers import (
    Worker,
    Workers,
    attached,
    call_start,
    reply,
    session_new,
    sidebands,
    synthetic_call,
    turns_settled,
    wait_for,
)
from tests.sideband.test_owner import user_text

if TYPE_CHECKING:
    from realtime_emulator.testing import EmulatorServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def own_workers(workers: Workers) -> Iterator[Workers]:
    """The pool with no worker running, so the test decides who consumes the queue; the
    workers it starts are stopped after it."""
    workers.stop_all()
    yield workers
    workers.stop_all()


def holder(workers: Workers, call: Call) -> Worker | None:
    lease_owner = Call.objects.get(pk=call.pk).lease_owner
    return next((w for w in workers.started if f":{w.pid}:" in lease_owner), None)


def calls_started(upstream: EmulatorServer, count: int) -> list[tuple[Session, Call]]:
    started = []
    for _ in range(count):
        session = session_new()
        started.append((session, call_start(session, synthetic_call(upstream))))
    return started


def queued_tasks() -> int:
    """Messages waiting in the sideband queue (kombu's Redis transport: a list of that name)."""
    return int(redis.Redis.from_url(django_settings.REDIS_URL).llen(django_settings.SIDEBAND_QUEUE))


def test_a_worker_at_capacity_does_not_claim_and_another_does(
    own_workers: Workers, upstream: EmulatorServer
) -> None:
    # Given a worker that may hold two calls, holding two
    full = own_workers.start(SIDEBAND_MAX_CALLS="2")
    (first_session, first), second = calls_started(upstream, 2)
    attached(upstream, first)
    attached(upstream, second[1])

    # When a third call is registered
    ((third_session, third),) = calls_started(upstream, 1)

    # Then the full worker refuses it, stops consuming, and the call waits in the queue
    wait_for(
        lambda: f"refused (capacity), re-queued call={third.call_id}" in full.log_text(),
        what="the refusal",
    )
    assert "stops claiming calls: capacity" in full.log_text()
    wait_for(lambda: queued_tasks() == 1, what="the call to wait in the queue")
    assert Call.objects.get(pk=third.pk).lease_owner == ""
    assert sidebands(upstream, third.call_id) == 0

    # And a worker started later takes it
    spare = own_workers.start()
    attached(upstream, third, timeout=15)
    assert holder(own_workers, third) is spare
    assert holder(own_workers, first) is full

    # While what the full worker holds keeps being written
    user_text(upstream, first, "still captured")
    user_text(upstream, third, "captured by the spare")
    assert wait_for(turns_settled(first_session, 2)) == [
        ("user", "still captured", "completed"),
        ("assistant", reply("still captured"), "completed"),
    ]
    assert wait_for(turns_settled(third_session, 2)) == [
        ("user", "captured by the spare", "completed"),
        ("assistant", reply("captured by the spare"), "completed"),
    ]


def test_two_processes_share_calls_and_one_takes_over_when_the_other_is_killed(
    own_workers: Workers, upstream: EmulatorServer
) -> None:
    # Given two worker processes that keep within 2 calls of each other, and twelve calls
    # (started at once: the first to read the queue would take most of them otherwise). The
    # share rule makes them refuse and resume often: the consumer switch must not get lost.
    one, two = (
        own_workers.start(SIDEBAND_SHARE_SLACK="2"),
        own_workers.start(SIDEBAND_SHARE_SLACK="2"),
    )
    started = calls_started(upstream, 12)
    for _, call in started:
        attached(upstream, call, timeout=20)

    # Then both hold a share: 2 apart at most, plus the claims racing in each pool's 4 threads
    held = {w.pid: [c for _, c in started if holder(own_workers, c) is w] for w in (one, two)}
    assert len(held[one.pid]) >= 3, held
    assert len(held[two.pid]) >= 3, held
    assert sum(len(calls) for calls in held.values()) == 12
    for _, call in started:
        user_text(upstream, call, f"before {call.call_id}")
    for session, _ in started:
        wait_for(turns_settled(session, 2))

    # When one is killed
    killed_at = time.monotonic()
    own_workers.stop(one, signal.SIGKILL)
    # Celery beat would run this every SIDEBAND_RECONCILE_S; the test runs it the same way.
    moved = held[one.pid]
    wait_for(
        lambda: calls_reconcile() >= 0 and all(holder(own_workers, c) is two for c in moved),
        timeout=30,
        interval=0.5,
        what="the other worker to own the killed worker's calls",
    )
    recovered_after = time.monotonic() - killed_at
    wait_for(
        lambda: all(sidebands(upstream, call.call_id) == 1 for call in moved),
        what="the new sockets",
    )

    # Then within 30 s, and nothing is lost or written twice
    assert recovered_after < 30
    for _, call in started:
        user_text(upstream, call, f"after {call.call_id}")
    for session, call in started:
        assert wait_for(turns_settled(session, 4)) == [
            ("user", f"before {call.call_id}", "completed"),
            ("assistant", reply(f"before {call.call_id}"), "completed"),
            ("user", f"after {call.call_id}", "completed"),
            ("assistant", reply(f"after {call.call_id}"), "completed"),
        ]
    sessions = [s for s, _ in started]
    assert TranscriptTurn.objects.filter(session__in=sessions).count() == 48


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_metrics_endpoint_serves_the_named_series(
    own_workers: Workers, upstream: EmulatorServer
) -> None:
    port = free_port()
    worker = own_workers.start(
        SIDEBAND_METRICS_PORT=str(port), SIDEBAND_MAX_CALLS="5", SIDEBAND_SWITCH_INTERVAL_S="0.002"
    )
    ((session, call),) = calls_started(upstream, 1)
    attached(upstream, call)
    user_text(upstream, call, "measured")
    wait_for(turns_settled(session, 2))

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode())

    def committed() -> str | None:
        # Both turns (the user's and the answer) are committed finished turns.
        body = scrape()
        return body if "sideband_commit_lag_seconds_count 2.0" in body else None

    text = wait_for(committed, what="the committed turn in the metrics")
    series = {
        line.split(" ")[0].split("{")[0] for line in text.splitlines() if not line.startswith("#")
    }
    assert {
        "sideband_calls_held",
        "sideband_max_calls",
        "sideband_admitting",
        "sideband_events_total",
        "sideband_loop_lag_seconds",
        "sideband_oldest_unwritten_seconds",
        "sideband_write_queue_depth",
        "sideband_reconnects_total",
        "sideband_fenced_writes_total",
        "sideband_claims_refused_total",
        "sideband_unclaimed_calls",
        "sideband_commit_lag_seconds_bucket",
    } <= series
    assert "sideband_calls_held 1.0" in text
    assert "sideband_max_calls 5.0" in text
    assert "sideband_admitting 1.0" in text
    assert 'sideband_claims_refused_total{reason="capacity"} 0.0' in text
    # The process hands the GIL between its threads at the configured interval.
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    (exported,) = [
        figures
        for raw in client.mget(client.keys("sideband:stats:*"))
        if raw and (figures := json.loads(raw))["pid"] == worker.pid
    ]
    assert exported["switch_interval_s"] == pytest.approx(0.002)
