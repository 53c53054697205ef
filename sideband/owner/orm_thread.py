"""The one thread that runs Django's (synchronous) ORM for the owner, retrying while the
database cannot be reached: call ends, a recovered item placed between two turns, embedded
mode's SQLite."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection

from sideband.owner.retry import retry_delay_s

logger = logging.getLogger(__name__)

T = TypeVar("T")


class OrmThread:
    def __init__(self) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sideband-orm")
        self.closing = False  # set at shutdown: a failing call then raises instead of retrying

    async def call(self, fn: Callable[[], T]) -> T:
        """`fn()` on the ORM thread, again and again while the database cannot be reached,
        until it succeeds or the owner shuts down."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._retrying, fn)

    def _retrying(self, fn: Callable[[], T]) -> T:
        attempt = 0
        while True:
            try:
                return fn()
            except (OperationalError, InterfaceError) as exc:
                connection.close()
                if self.closing:
                    raise
                attempt += 1
                logger.warning("sideband: database unavailable (%s), retry %d", exc, attempt)
                time.sleep(retry_delay_s(attempt))

    def shutdown(self) -> None:
        """Close the thread's database connection and stop the thread (after queued calls)."""
        self._executor.submit(connection.close)
        self._executor.shutdown(wait=True)
