"""The process's figures: Prometheus metrics (docs/sideband.md, "Metrics") and the summary
exported to Redis (`sideband:stats:<owner id>`) for operators and the benchmark."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

from django.conf import settings
from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from config.outages import REDIS_AWAY
from sessions_app.push import redis_client

if TYPE_CHECKING:
    from sideband.owner.owner import SidebandOwner

logger = logging.getLogger(__name__)

# Ports tried from SIDEBAND_METRICS_PORT up, so several processes on one host each find one.
METRICS_PORTS_TRIED = 32
COMMIT_LAG_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class Stats:
    """Process-wide counters; written on the owner's loops, read by the lease thread's export
    and by the metrics endpoint."""

    def __init__(self) -> None:
        self.commit_ms: deque[float] = deque(maxlen=20_000)
        self.commits = 0
        self.batches = 0
        self.batch_calls = 0
        self.write_s = 0.0
        # Calls of a batch written turn by turn by the ORM thread (placement needed queries).
        self.orm_fallbacks = 0
        self.orm_fallback_s = 0.0
        self.reconnects = 0
        self.fenced = 0
        self.refused: Counter[str] = Counter()  # claims refused, by reason (admission)
        self.unclaimed = 0  # live calls no process holds past their grace (all processes)
        # One registry per owner (not the process-global one): a test process may hold two.
        self.registry = CollectorRegistry(auto_describe=True)
        self.commit_lag = Histogram(
            "sideband_commit_lag_seconds",
            "From a turn's final frame received to its commit in Postgres.",
            buckets=COMMIT_LAG_BUCKETS_S,
            registry=self.registry,
        )

    def commits_record(self, lags_s: list[float]) -> None:
        """Finished turns committed, each `lag` seconds after its final frame arrived."""
        self.commits += len(lags_s)
        for lag in lags_s:
            self.commit_ms.append(lag * 1000)
            self.commit_lag.observe(lag)

    @staticmethod
    def percentile(samples: list[float], pct: float) -> float | None:
        if not samples:
            return None
        ordered = sorted(samples)
        return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


class OwnerCollector(Collector):
    """The owner's gauges and counters, read at scrape time (nothing on the hot path)."""

    def __init__(self, owner: SidebandOwner) -> None:
        self.owner = owner

    def collect(self) -> Iterator[Metric]:
        owner, stats = self.owner, self.owner.stats
        health = owner.health()

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, value=value)

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, value=value)

        yield gauge(
            "sideband_calls_held", "Calls whose socket this process holds.", health.calls_held
        )
        yield gauge(
            "sideband_max_calls",
            "Calls this process holds at most (SIDEBAND_MAX_CALLS).",
            settings.SIDEBAND_MAX_CALLS,
        )
        yield gauge(
            "sideband_admitting",
            "1 while this process claims new calls, 0 while it refuses.",
            1.0 if owner.admitting else 0.0,
        )
        yield counter(
            "sideband_events", "Server events read from sideband sockets.", owner.events()
        )
        yield gauge(
            "sideband_loop_lag_seconds",
            "How late the sockets' event loop ran a 100 ms timer.",
            health.loop_lag_s,
        )
        yield gauge(
            "sideband_oldest_unwritten_seconds",
            "Age of the oldest turn record received and not yet written.",
            health.oldest_unwritten_s,
        )
        yield gauge(
            "sideband_write_queue_depth",
            "Write jobs queued and not yet written.",
            owner.write_queue_depth(),
        )
        yield counter(
            "sideband_reconnects", "Sideband sockets dropped and reconnected.", stats.reconnects
        )
        yield counter(
            "sideband_fenced_writes",
            "Writes refused because a newer call owns the session.",
            stats.fenced,
        )
        refused = CounterMetricFamily(
            "sideband_claims_refused", "Calls this process refused to claim.", labels=["reason"]
        )
        for reason in ("capacity", "share", "loop_lag", "write_lag"):
            refused.add_metric([reason], stats.refused[reason])
        yield refused
        yield gauge(
            "sideband_unclaimed_calls",
            "Live calls no process holds past their grace period (the same in every process).",
            stats.unclaimed,
        )


def metrics_serve(owner: SidebandOwner) -> int | None:
    """Serve the owner's metrics on the first free port from SIDEBAND_METRICS_PORT; the port,
    or None (off, or no port free)."""
    first = settings.SIDEBAND_METRICS_PORT
    if not first:
        return None
    owner.stats.registry.register(OwnerCollector(owner))
    for port in range(first, first + METRICS_PORTS_TRIED):
        try:
            start_http_server(port, settings.SIDEBAND_METRICS_ADDR, registry=owner.stats.registry)
        except OSError:
            continue
        logger.info(
            "sideband metrics on http://%s:%d/metrics", settings.SIDEBAND_METRICS_ADDR, port
        )
        return port
    logger.error("sideband metrics: no free port in %d-%d", first, first + METRICS_PORTS_TRIED - 1)
    return None


# Every process publishes the calls it holds in one hash; an entry older than this is a
# process gone (its field is dropped after PEER_FORGET_S).
PEERS_KEY = "sideband:held"
PEER_FRESH_S = 3.0
PEER_FORGET_S = 60.0


def peers_update(owner: SidebandOwner) -> None:
    """Publish the calls this process holds, and read the least any other live process holds
    (`owner.least_peer_held`, for admission's even shares). One round trip per tick."""
    if settings.EMBEDDED:
        return
    now = time.time()
    held = owner.health().calls_held
    pipe = redis_client().pipeline(transaction=False)
    pipe.hset(PEERS_KEY, owner.owner_id, json.dumps({"held": held, "at": now}))
    pipe.hgetall(PEERS_KEY)
    try:
        _, entries = pipe.execute()
    except REDIS_AWAY:
        # No peers known while Redis is away: shares are not compared (the pusher logs it).
        owner.least_peer_held = None
        return
    fresh_s = max(PEER_FRESH_S, 3 * settings.SIDEBAND_POLL_S)
    peers: list[int] = []
    for raw_owner, raw in entries.items():
        peer_id = raw_owner.decode() if isinstance(raw_owner, bytes) else raw_owner
        if peer_id == owner.owner_id:
            continue
        entry = json.loads(raw)
        age = now - float(entry["at"])
        if age < fresh_s:
            peers.append(int(entry["held"]))
        elif age > PEER_FORGET_S:
            redis_client().hdel(PEERS_KEY, peer_id)
    owner.least_peer_held = min(peers) if peers else None


def peers_leave(owner: SidebandOwner) -> None:
    """This process holds nothing any more (shutdown): drop its entry."""
    if not settings.EMBEDDED:
        with contextlib.suppress(*REDIS_AWAY):  # its entry then goes stale by itself
            redis_client().hdel(PEERS_KEY, owner.owner_id)


def stats_export(owner: SidebandOwner) -> None:
    """Publish the owner's figures for a minute (renewed every lease tick)."""
    if settings.EMBEDDED:
        return
    stats = owner.stats
    samples = list(stats.commit_ms)[-5000:]  # sorted every second: the recent ones
    health = owner.health()
    figures = {
        "owner": owner.owner_id,
        "pid": os.getpid(),
        "metrics_port": owner.metrics_port,
        "connections": health.calls_held,
        "admitting": owner.admitting,
        "switch_interval_s": sys.getswitchinterval(),
        "refused": dict(stats.refused),
        "loop_lag_ms": round(health.loop_lag_s * 1000, 1),
        "oldest_unwritten_ms": round(health.oldest_unwritten_s * 1000, 1),
        "events": owner.events(),
        "commits": stats.commits,
        "batches": stats.batches,
        "batch_calls": stats.batch_calls,
        "write_s": round(stats.write_s, 3),
        "orm_fallbacks": stats.orm_fallbacks,
        "orm_fallback_s": round(stats.orm_fallback_s, 3),
        "reconnects": stats.reconnects,
        "fenced": stats.fenced,
        "pushed": owner.pusher.sent,
        "group_sends": owner.pusher.group_sends,
        "push_failed": owner.pusher.failed,
        "p50_commit_ms": Stats.percentile(samples, 50),
        "p99_commit_ms": Stats.percentile(samples, 99),
        "p99_push_send_ms": Stats.percentile(list(owner.pusher.latency_ms)[-5000:], 99),
        "at": time.time(),
    }
    # Best effort: while Redis is away the pusher says so once; the figures wait.
    with contextlib.suppress(*REDIS_AWAY):
        redis_client().set(f"sideband:stats:{owner.owner_id}", json.dumps(figures), ex=60)
