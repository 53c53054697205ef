"""The process-wide owner of sideband sockets: holds the calls, routes their jobs, starts and
stops the loop and threads (see the package docstring for the layout)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from django.conf import settings
from django.db import connection

from sideband import services
from sideband.capture import TurnUpsert
from sideband.owner.admission import Health, claim_refusal
from sideband.owner.connection import CallConnection
from sideband.owner.jobs import EndJob, TurnsJob
from sideband.owner.lease import lease_loop
from sideband.owner.orm_thread import OrmThread
from sideband.owner.spec import CallSpec
from sideband.owner.stats import Stats, metrics_serve, peers_leave
from sideband.owner.writers import Writers
from sideband.push import Pusher
from sideband.transcript import connect_params

logger = logging.getLogger(__name__)

# How often the sockets' loop is timed (its lag: how late a timer of this length fires).
LOOP_LAG_PROBE_S = 0.1


class SidebandOwner:
    """The process-wide owner of sideband sockets (see the package docstring)."""

    def __init__(self, *, owner_id: str | None = None, writers: int | None = None) -> None:
        self.owner_id = owner_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stats = Stats()
        self.io = asyncio.new_event_loop()
        self.pusher = Pusher(loop=self.io)
        self.events_closed = 0  # events read by the calls no longer held
        self.metrics_port: int | None = None
        self.loop_lag_s = 0.0
        self.least_peer_held: int | None = None  # the least loaded other process (stats)
        # Admission: False while this process claims no new call. Any thread may change it; only
        # the lease thread acts on it, through `consumer_switch` (set by sideband.tasks: tells the
        # Celery worker to stop or resume consuming the queue; False when it could not send).
        self.admitting = True
        self.consumer_switch: Callable[[bool], bool] | None = None
        # Set when `admitting` changes: wakes the lease thread to send the switch at once.
        self.admission_changed = threading.Event()
        self._conns: dict[str, CallConnection] = {}
        self._lock = threading.Lock()
        self._closing = False
        self._stopped = threading.Event()
        # Django's ORM (embedded mode, turn-by-turn writes, call ends) runs on this one thread.
        self._orm = OrmThread()
        # The writers are coroutines on a loop of their own (or the I/O loop), each with its own
        # asyncio Postgres connection.
        self._writers_loop = (
            asyncio.new_event_loop() if settings.SIDEBAND_WRITER_LOOP == "own" else self.io
        )
        self._writers_thread = threading.Thread(
            target=self._writers_loop.run_forever, name="sideband-writers", daemon=True
        )
        self._writers = Writers(
            loop=self._writers_loop,
            count=writers or settings.SIDEBAND_WRITERS,
            stats=self.stats,
            pusher=self.pusher,
            orm=self._orm,
        )
        self._lease_thread = threading.Thread(
            target=lease_loop, args=(self, self._stopped), name="sideband-lease", daemon=True
        )
        # Every socket of the process lives on this one loop (see the package docstring).
        self._io_thread = threading.Thread(
            target=self.io.run_forever, name="sideband-io", daemon=True
        )
        self._tasks: set[asyncio.Future[Any]] = set()
        self._started = False

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        # Process-wide: this process's threads (sockets, writers) hand the GIL over sooner.
        sys.setswitchinterval(settings.SIDEBAND_SWITCH_INTERVAL_S)
        self._io_thread.start()
        if self._writers_loop is not self.io:
            self._writers_thread.start()
        self.pusher.start()
        asyncio.run_coroutine_threadsafe(self._loop_lag_probe(), self.io)
        self._writers.start(
            db_params=connect_params() if connection.vendor == "postgresql" else None
        )
        self._lease_thread.start()
        self.metrics_port = metrics_serve(self)
        logger.info("sideband owner %s started", self.owner_id)

    # -- health and admission --------------------------------------------------------------------

    async def _loop_lag_probe(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(LOOP_LAG_PROBE_S)
            self.loop_lag_s = max(0.0, time.monotonic() - started - LOOP_LAG_PROBE_S)

    def health(self) -> Health:
        with self._lock:
            held = len(self._conns)
        return Health(
            calls_held=held,
            loop_lag_s=self.loop_lag_s,
            oldest_unwritten_s=self._writers.oldest_unwritten_s(time.monotonic()),
            least_peer_held=self.least_peer_held,
        )

    def claim_refusal(self) -> str | None:
        """Why this process must not claim a call now (see sideband.owner.admission), or None.
        A refusal is counted and stops the process claiming until `admission_check` finds it
        healthy again (the lease thread stops the queue consumer, see `consumer_apply`)."""
        reason = claim_refusal(self.health(), resuming=not self.admitting)
        if reason is not None:
            self.stats.refused[reason] += 1
            self._admitting_set(False, reason)
        return reason

    def admission_check(self) -> None:
        """Stop or resume claiming by the process's health (the lease thread, every tick)."""
        reason = claim_refusal(self.health(), resuming=not self.admitting)
        self._admitting_set(reason is None, reason)

    def _admitting_set(self, admitting: bool, reason: str | None) -> None:
        with self._lock:
            if self.admitting == admitting or self._closing:
                return
            self.admitting = admitting
        if admitting:
            logger.info("sideband owner %s claims calls again", self.owner_id)
        else:
            logger.warning("sideband owner %s stops claiming calls: %s", self.owner_id, reason)
        self.admission_changed.set()

    def events(self) -> int:
        """Server events read by every call this process held."""
        return sum(c.events for c in self.connections()) + self.events_closed

    def write_queue_depth(self) -> int:
        return self._writers.depth()

    # -- calls -----------------------------------------------------------------------------------

    def holds(self, call_id: str) -> bool:
        with self._lock:
            return call_id in self._conns

    def call_ids(self) -> list[str]:
        with self._lock:
            return list(self._conns)

    def connections(self) -> list[CallConnection]:
        with self._lock:
            return list(self._conns.values())

    @property
    def closing(self) -> bool:
        return self._closing

    def attach(self, spec: CallSpec) -> bool:
        """Start owning the call's socket; False if this process already does, is closing, or
        holds SIDEBAND_MAX_CALLS calls (claims racing past `claim_refusal` stop here)."""
        with self._lock:
            if self._closing or spec.call_id in self._conns:
                return False
            full = len(self._conns) >= settings.SIDEBAND_MAX_CALLS
            if not full:
                conn = CallConnection(self, spec)
                self._conns[spec.call_id] = conn
        if full:
            self.stats.refused["capacity"] += 1
            self._admitting_set(False, "capacity")
            return False
        asyncio.run_coroutine_threadsafe(conn.run(), self.io)
        return True

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a fire-and-forget coroutine on the I/O loop (call from the loop)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def forget(self, conn: CallConnection) -> None:
        with self._lock:
            if self._conns.get(conn.call_id) is conn:
                del self._conns[conn.call_id]
                self.events_closed += conn.events

    def write(self, conn: CallConnection, upserts: list[TurnUpsert], received_at: float) -> None:
        """Queue the call's turn records, captured from a frame received at `received_at`."""
        self._writers.enqueue(TurnsJob(conn, tuple(upserts), received_at))

    def end(self, conn: CallConnection, reason: str, message: str) -> None:
        """End the call (after its pending writes) and close its socket (any thread)."""
        self._writers.enqueue(EndJob(conn, reason, message))
        conn.stop()

    # -- shutdown ----------------------------------------------------------------------------------

    def shutdown(self, *, handback: bool = True, timeout: float = 5.0) -> list[tuple[str, int]]:
        """SIGTERM: close every socket cleanly, flush the writes, give the leases back.

        Returns the (call id, generation) of each call whose lease was cleared (`handback`),
        for the caller (`sideband.tasks`) to dispatch again, so another worker (or this one,
        restarted) takes them over without waiting for the lease to expire.
        """
        with self._lock:
            self._closing = True
            conns = list(self._conns.values())
        self._orm.closing = True
        for conn in conns:
            conn.stop()
        deadline = time.monotonic() + timeout
        for conn in conns:
            conn.done.wait(max(0.0, deadline - time.monotonic()))
        self._writers.stop(deadline=deadline)
        self._orm.shutdown()
        self._stopped.set()
        self.admission_changed.set()  # wakes the lease thread to see `_stopped`
        with contextlib.suppress(Exception):  # Redis away: the entry goes stale by itself
            peers_leave(self)
        released: list[tuple[str, int]] = []
        if handback:
            try:
                released = services.lease_release(
                    owner=self.owner_id, call_ids=[c.call_id for c in conns]
                )
            except Exception:
                # The leases then expire and the reconciler recovers the calls.
                logger.exception("hand-back failed; the reconciler will recover the calls")
        self.pusher.stop()
        self.io.call_soon_threadsafe(self.io.stop)
        if self._writers_loop is not self.io:
            self._writers_loop.call_soon_threadsafe(self._writers_loop.stop)
        connection.close()
        logger.info("sideband owner %s stopped, handed back %d calls", self.owner_id, len(released))
        return released
