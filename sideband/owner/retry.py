"""How long to wait before trying again: sockets (reconnects) and the database (writers, ORM)."""

from __future__ import annotations

import random

from django.conf import settings


def backoff_s(attempt: int) -> float:
    """Exponential backoff with jitter for the `attempt`-th retry (0 first): a random wait
    between half and all of SIDEBAND_BACKOFF_BASE_S * 2**attempt, at most
    SIDEBAND_BACKOFF_MAX_S."""
    cap = min(settings.SIDEBAND_BACKOFF_MAX_S, settings.SIDEBAND_BACKOFF_BASE_S * 2**attempt)
    return random.uniform(cap / 2, cap)  # noqa: S311 - jitter, not a secret


def retry_delay_s(attempt: int) -> float:
    """The wait before the `attempt`-th retry (1 first) of a database call: none for the
    first, so a connection found dead is replaced at once; then `backoff_s`."""
    return 0.0 if attempt <= 1 else backoff_s(attempt - 2)
