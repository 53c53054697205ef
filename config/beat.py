"""Celery beat's scheduler (settings.CELERY_BEAT_SCHEDULER): the stock persistent one, but a
tick that cannot reach the broker is one warning line, not a traceback and a stack dump.

While the broker (Redis) is away nothing can be scheduled anyway; the next tick after it is
back sends as usual, and the reconciler catches up on every call it missed meanwhile.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.beat import PersistentScheduler

from config.outages import BROKER_AWAY

logger = logging.getLogger(__name__)


def _broker_away(exc: BaseException | None) -> bool:
    """Beat wraps the transport's error in SchedulingError: look down the chain."""
    while exc is not None:
        if isinstance(exc, BROKER_AWAY):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class BrokerAwareScheduler(PersistentScheduler):
    def apply_entry(self, entry: Any, producer: Any = None) -> None:
        logger.info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
        try:
            self.apply_async(entry, producer=producer, advance=False)
        except Exception as exc:
            if not _broker_away(exc):
                logger.exception("Scheduler: %s not sent", entry.name)
                return
            logger.warning("Scheduler: %s not sent, broker away: %s", entry.name, exc)
