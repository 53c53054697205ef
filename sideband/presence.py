"""Whether a page follows a session: its live socket says so, the owner asks.

The page's socket marks the session seen when it connects, on every message it sends (the page
reports every `PAGE_PRESENCE_S` at least) and when it disconnects; a call whose session no page
has been seen on for SIDEBAND_IDLE_S, and whose upstream has been silent as long, is abandoned
(sideband.owner.upkeep). Kept in Django's cache: Redis, or process memory in the embedded mode.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache

from config.outages import REDIS_AWAY, outage_line

logger = logging.getLogger(__name__)


def _key(session_public_id: str) -> str:
    return f"sideband:page_seen:{session_public_id}"


def page_presence_interval_s() -> int:
    """How often a connected page reports (page config): well within SIDEBAND_IDLE_S."""
    return max(1, int(settings.SIDEBAND_IDLE_S // 4))


def page_seen(*, session_public_id: str) -> None:
    # Best effort: while Redis is away the page's next report marks it again.
    with contextlib.suppress(*REDIS_AWAY):
        cache.set(_key(session_public_id), time.time(), timeout=int(settings.SIDEBAND_IDLE_S * 4))


def pages_last_seen(*, session_public_ids: Iterable[str]) -> dict[str, float]:
    """When a page was last seen on each session (absent: not within the key's lifetime).

    While Redis is away nobody knows: every session counts as seen now, so no call is
    abandoned for want of an answer."""
    ids = list(session_public_ids)
    try:
        found = cache.get_many([_key(i) for i in ids])
    except REDIS_AWAY as exc:
        logger.warning("page presence unknown, Redis away: %s", outage_line(exc))
        now = time.time()
        return dict.fromkeys(ids, now)
    return {i: float(found[_key(i)]) for i in ids if _key(i) in found}
