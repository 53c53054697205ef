"""Whether a page follows a session: its live socket says so, the owner asks.

The page's socket marks the session seen when it connects, on every message it sends (the page
reports every `PAGE_PRESENCE_S` at least) and when it disconnects; a call whose session no page
has been seen on for SIDEBAND_IDLE_S, and whose upstream has been silent as long, is abandoned
(sideband.owner.upkeep). Kept in Django's cache: Redis, or process memory in the embedded mode.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache


def _key(session_public_id: str) -> str:
    return f"sideband:page_seen:{session_public_id}"


def page_presence_interval_s() -> int:
    """How often a connected page reports (page config): well within SIDEBAND_IDLE_S."""
    return max(1, int(settings.SIDEBAND_IDLE_S // 4))


def page_seen(*, session_public_id: str) -> None:
    cache.set(_key(session_public_id), time.time(), timeout=int(settings.SIDEBAND_IDLE_S * 4))


def pages_last_seen(*, session_public_ids: Iterable[str]) -> dict[str, float]:
    """When a page was last seen on each session (absent: not within the key's lifetime)."""
    ids = list(session_public_ids)
    found = cache.get_many([_key(i) for i in ids])
    return {i: float(found[_key(i)]) for i in ids if _key(i) in found}
