"""The process's figures, exported to Redis (`sideband:stats:<owner id>`) for operators and
the benchmark."""

from __future__ import annotations

import json
import time
from collections import deque
from typing import TYPE_CHECKING

from django.conf import settings

from sideband.push import _redis

if TYPE_CHECKING:
    from sideband.owner.owner import SidebandOwner


class Stats:
    """Process-wide counters; written on the I/O loop, read by the lease thread's export."""

    def __init__(self) -> None:
        self.commit_ms: deque[float] = deque(maxlen=20_000)
        self.commits = 0
        self.batches = 0
        self.batch_calls = 0
        self.write_s = 0.0
        self.reconnects = 0
        self.fenced = 0

    @staticmethod
    def percentile(samples: list[float], pct: float) -> float | None:
        if not samples:
            return None
        ordered = sorted(samples)
        return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def stats_export(owner: SidebandOwner) -> None:
    """Publish the owner's figures for a minute (renewed every lease tick)."""
    if settings.EMBEDDED:
        return
    stats = owner.stats
    samples = list(stats.commit_ms)[-5000:]  # sorted every second: the recent ones
    conns = owner.connections()
    figures = {
        "owner": owner.owner_id,
        "connections": len(conns),
        "events": sum(c.events for c in conns) + owner.events_closed,
        "commits": stats.commits,
        "batches": stats.batches,
        "batch_calls": stats.batch_calls,
        "write_s": round(stats.write_s, 3),
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
    _redis().set(f"sideband:stats:{owner.owner_id}", json.dumps(figures), ex=60)
