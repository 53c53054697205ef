"""Short garbage-collector pauses for a process holding many sockets."""

from __future__ import annotations

import gc
import logging
import time

logger = logging.getLogger(__name__)


class CollectorPacing:
    """Short garbage-collector pauses for a process holding many sockets.

    CPython's full (generation 2) collection walks every tracked object: with a thousand
    sockets' worth of objects it stopped the worker for 250-360 ms every 3-5 s (measured with
    gc.callbacks under the benchmark), which was the whole p99 commit tail. So every tick
    (`SIDEBAND_POLL_S`) the objects that survived it are frozen (`gc.freeze`, O(1)), and
    collections only walk what is younger; refcounting still frees everything acyclic at once.
    Cyclic garbage among frozen objects (e.g. a closed socket's) waits for the full collection
    run every `full_every_s` seconds (0: leave the collector alone).
    """

    def __init__(self, *, full_every_s: float) -> None:
        self.full_every_s = full_every_s
        self._last_full = time.monotonic()

    def tick(self, now: float | None = None) -> None:
        if not self.full_every_s:
            return
        now = time.monotonic() if now is None else now
        if now - self._last_full >= self.full_every_s:
            self._last_full = now
            gc.unfreeze()
            collected = gc.collect()
            logger.info("full collection: %d objects freed", collected)
        gc.freeze()
