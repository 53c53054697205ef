"""Per-client rate limits for the endpoints that spend money upstream.

A fixed one-minute window counted atomically in the cache (Redis when REDIS_URL is set, so
every web process shares it): `cache.add` creates the window's counter, `cache.incr` counts;
there is no read-then-write to race on.
"""

from __future__ import annotations

import time

from django.core.cache import cache

WINDOW_S = 60


class RateLimited(Exception):
    def __init__(self, *, retry_after: int) -> None:
        super().__init__(f"rate limited; retry after {retry_after}s")
        self.retry_after = retry_after


def rate_limit_hit(*, scope: str, key: str, limit: int, now: float | None = None) -> None:
    """Count one request of `key` in `scope`; raise RateLimited past `limit` per minute."""
    now = time.time() if now is None else now
    window = int(now // WINDOW_S)
    counter = f"ratelimit:{scope}:{key}:{window}"
    # Outlive the window a little so a counter never vanishes mid-window.
    cache.add(counter, 0, timeout=WINDOW_S + 5)
    try:
        count = cache.incr(counter)
    except ValueError:
        # Evicted between add and incr: this request opens the window again.
        cache.add(counter, 1, timeout=WINDOW_S + 5)
        count = 1
    if count > limit:
        raise RateLimited(retry_after=max(1, int((window + 1) * WINDOW_S - now) + 1))
