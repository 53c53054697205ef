"""Per-client rate limits for the endpoints that spend money upstream.

A fixed one-minute window counted atomically in the cache (Redis when REDIS_URL is set, so
every web process shares it): `cache.add` creates the window's counter, `cache.incr` counts;
there is no read-then-write to race on.

While Redis is away the limits **fail open**: the request goes on, and one warning per request
says the limit was not enforced. Creating a session needs no Redis, and failing closed would
turn a cache outage into an outage of the whole API; what bounds spending meanwhile is the
per-client cap on open sessions (in Postgres) and the upstream's own limits.
"""

from __future__ import annotations

import logging
import time

from django.core.cache import cache

from config.outages import REDIS_AWAY

logger = logging.getLogger(__name__)

WINDOW_S = 60


class RateLimited(Exception):
    def __init__(self, *, retry_after: int) -> None:
        super().__init__(f"rate limited; retry after {retry_after}s")
        self.retry_after = retry_after


def rate_limit_hit(*, scope: str, key: str, limit: int, now: float | None = None) -> None:
    """Count one request of `key` in `scope`; raise RateLimited past `limit` per minute.

    Redis away: the request is let through (fail open, logged)."""
    now = time.time() if now is None else now
    window = int(now // WINDOW_S)
    try:
        count = _window_count(f"ratelimit:{scope}:{key}:{window}")
    except REDIS_AWAY as exc:
        logger.warning("rate limit %s not enforced, Redis away (failing open): %r", scope, exc)
        return
    if count > limit:
        raise RateLimited(retry_after=max(1, int((window + 1) * WINDOW_S - now) + 1))


def _window_count(counter: str) -> int:
    """Count one more request in the window's counter; the count so far."""
    # Outlive the window a little so a counter never vanishes mid-window.
    cache.add(counter, 0, timeout=WINDOW_S + 5)
    try:
        return int(cache.incr(counter))
    except ValueError:
        # Evicted between add and incr: this request opens the window again.
        cache.add(counter, 1, timeout=WINDOW_S + 5)
        return 1
