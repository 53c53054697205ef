"""The writer coroutines: turn records from the sockets to Postgres, in batches.

Calls are sharded over the writers by call id, so one call's writes stay in order; each writer
has its own asyncio Postgres connection and drains its queue in batches, each one transaction
of two pipelined round trips (sideband.transcript.batch_run_async), whatever the number of
calls in it. What needs Django's ORM goes to the ORM thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
from django.conf import settings

from sessions_app.models import Call
from sessions_app.selectors import turn_json
from sideband import services
from sideband.capture import TurnUpsert
from sideband.owner.connection import CallConnection
from sideband.owner.jobs import EndJob, Job, TurnsJob, latest_records
from sideband.owner.orm_thread import OrmThread
from sideband.owner.retry import retry_delay_s
from sideband.owner.stats import Stats
from sideband.push import Pusher
from sideband.transcript import (
    Fenced,
    Outcome,
    Refused,
    batch_run_async,
    batch_run_sync,
    connect_async,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")


class WriterDb:
    """A writer's asyncio connection to Postgres (None params: embedded mode, no connection),
    opened on first use and again after a failure."""

    def __init__(self, params: dict[str, Any] | None) -> None:
        self.params = params
        self._aconn: psycopg.AsyncConnection[Any] | None = None

    async def run(self, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """`await work(aconn)`, again and again while the database cannot be reached (Postgres
        restarting, a connection killed): backoff with jitter, so records wait in order
        instead of being lost. A batch that failed at its COMMIT may be run twice: its
        writes are upserts of complete records, so the second run changes nothing."""
        if self.params is None:
            raise RuntimeError("no database connection in embedded mode")
        attempt = 0
        while True:
            try:
                if self._aconn is None or self._aconn.closed:
                    self._aconn = await connect_async(self.params)
                return await work(self._aconn)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                await self.close()
                attempt += 1
                logger.warning(
                    "sideband writer: database unavailable (%s), retry %d",
                    type(exc).__name__,
                    attempt,
                )
                await asyncio.sleep(retry_delay_s(attempt))

    async def close(self) -> None:
        if self._aconn is not None:
            with contextlib.suppress(psycopg.Error):
                await self._aconn.close()
            self._aconn = None


@dataclass
class _CallBatch:
    """One call's part of a batch, in arrival order."""

    conn: CallConnection
    upserts: list[TurnUpsert] = field(default_factory=list)
    done_received_at: list[float] = field(default_factory=list)  # one per finished turn
    ends: list[EndJob] = field(default_factory=list)


class Writers:
    """`count` writer coroutines on the event loop `loop`, each draining a queue of its own.

    `loop` is a loop of the writers' own (settings.SIDEBAND_WRITER_LOOP = "own", run by the
    owner on a thread of its own), so a batch's round trips never wait for a turn of the busy
    sockets' loop, or the sockets' loop itself ("io"). Jobs reach it through an inbox: the
    writers' loop is woken once per burst of jobs, not once per job.
    """

    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop,
        count: int,
        stats: Stats,
        pusher: Pusher,
        orm: OrmThread,
    ) -> None:
        self._loop = loop
        self._stats = stats
        self._pusher = pusher
        self._orm = orm
        self._queues: list[asyncio.Queue[Job | None]] = [asyncio.Queue() for _ in range(count)]
        # Per shard, when each queued job was enqueued (monotonic), oldest first: the queue's
        # jobs in the same order, popped once their batch is written.
        self._waiting: list[deque[float]] = [deque() for _ in range(count)]
        self._inbox: deque[tuple[Job, float]] = deque()
        self._wake_pending = False
        self._running: list[concurrent.futures.Future[None]] = []

    def start(self, *, db_params: dict[str, Any] | None) -> None:
        """Start the writers; `db_params` None: embedded mode, every write by the ORM thread."""
        self._running = [
            asyncio.run_coroutine_threadsafe(self._drain(i, WriterDb(db_params)), self._loop)
            for i in range(len(self._queues))
        ]

    def enqueue(self, job: Job) -> None:
        """Queue `job` on its call's writer (any thread)."""
        self._inbox.append((job, time.monotonic()))
        if not self._wake_pending:
            self._wake_pending = True
            self._loop.call_soon_threadsafe(self._transfer)

    def _transfer(self) -> None:
        """On the writers' loop: move the inbox to the shards' queues (a call keeps its shard,
        so its writes keep their order)."""
        self._wake_pending = False  # before draining: an enqueue after this wakes us again
        inbox = self._inbox
        while inbox:
            job, queued_at = inbox.popleft()
            shard = zlib.crc32(job.conn.call_id.encode()) % len(self._queues)
            self._waiting[shard].append(queued_at)
            self._queues[shard].put_nowait(job)

    def oldest_unwritten_s(self, now: float) -> float:
        """Age of the oldest job not yet written (0 when none waits; any thread)."""
        heads = [now]
        with contextlib.suppress(IndexError):
            heads.append(self._inbox[0][1])
        for waiting in self._waiting:
            with contextlib.suppress(IndexError):
                heads.append(waiting[0])
        return now - min(heads)

    def depth(self) -> int:
        """Jobs queued and not yet written (any thread)."""
        return len(self._inbox) + sum(len(w) for w in self._waiting)

    def stop(self, *, deadline: float) -> None:
        """Write what is queued, then stop the writers (waiting until `deadline`, monotonic)."""
        self._loop.call_soon_threadsafe(self._transfer)
        for q in self._queues:
            self._loop.call_soon_threadsafe(q.put_nowait, None)
        for writer in self._running:
            with contextlib.suppress(concurrent.futures.TimeoutError):
                writer.result(max(0.0, deadline - time.monotonic()))

    async def _drain(self, shard: int, db: WriterDb) -> None:
        """Drain a shard's queue in batches: one transaction per batch."""
        jobs = self._queues[shard]
        waiting = self._waiting[shard]
        try:
            while True:
                first = await jobs.get()
                if first is None:
                    return
                batch = [first]
                while len(batch) < settings.SIDEBAND_WRITE_BATCH and not jobs.empty():
                    job = jobs.get_nowait()
                    if job is None:
                        jobs.put_nowait(None)
                        break
                    batch.append(job)
                try:
                    await self._write_batch(batch, db)
                except Exception:
                    logger.exception("sideband write batch failed")
                for _ in batch:
                    waiting.popleft()
        finally:
            await db.close()

    async def _write_batch(self, batch: list[Job], db: WriterDb) -> None:
        # Per call, in arrival order: the upserts first (one transaction), then an end.
        grouped: dict[str, _CallBatch] = {}
        for job in batch:
            entry = grouped.setdefault(job.conn.call_id, _CallBatch(job.conn))
            if isinstance(job, TurnsJob):
                entry.upserts.extend(job.upserts)
                entry.done_received_at.extend(
                    job.received_at for op in job.upserts if op.status != "in_progress"
                )
            else:
                entry.ends.append(job)
        self._stats.batches += 1
        self._stats.batch_calls += len(grouped)
        writing = [entry for entry in grouped.values() if entry.upserts]
        started = time.monotonic()
        try:
            outcomes = await self._turns_write(
                [(e.conn.spec.call, latest_records(e.upserts)) for e in writing], db
            )
        except Exception:
            logger.exception("sideband write of %d calls failed", len(writing))
            return
        now = time.monotonic()
        self._stats.write_s += now - started
        for entry, outcome in zip(writing, outcomes, strict=True):
            self._written(entry, outcome, now)
        for entry in grouped.values():
            for end in entry.ends:
                await self._call_end(end)

    async def _call_end(self, end: EndJob) -> None:
        """End one call on the ORM thread; a failure costs that call's end only, never the
        other calls' ends of the batch (the lease then expires and the reconciler retries)."""
        try:
            await self._orm.call(
                functools.partial(
                    services.call_end,
                    call_id=end.conn.call_id,
                    reason=end.reason,
                    message=end.message,
                )
            )
        except Exception:
            logger.exception("sideband call end failed call=%s", end.conn.call_id)

    def _written(self, entry: _CallBatch, outcome: Outcome, now: float) -> None:
        conn = entry.conn
        if isinstance(outcome, Fenced):
            # A newer call of the session owns the transcript: this socket must go.
            self._stats.fenced += 1
            logger.info("sideband fenced, closing call=%s", conn.call_id)
            conn.stop()
        elif isinstance(outcome, Refused):
            logger.error("sideband write refused: %s", outcome)
        else:
            self._stats.commits_record([now - t for t in entry.done_received_at])
            for turn in outcome:
                self._pusher.push(
                    conn.spec.session_public_id, {"type": "turn", "turn": turn_json(turn)}
                )

    async def _turns_write(
        self, writes: list[tuple[Call, list[TurnUpsert]]], db: WriterDb
    ) -> list[Outcome]:
        """The batch's turns, committed: set-based on the writer's asyncio connection, the
        rest (embedded mode, or a call whose placement needs queries) by the ORM thread."""
        if not writes:
            return []
        if db.params is None:
            return await self._orm.call(functools.partial(batch_run_sync, writes=writes))
        batched = await db.run(lambda aconn: batch_run_async(aconn, writes=writes))
        outcomes: list[Outcome] = []
        for write, batch_outcome in zip(writes, batched, strict=True):
            if batch_outcome is None:
                started = time.monotonic()
                (outcome,) = await self._orm.call(functools.partial(batch_run_sync, writes=[write]))
                self._stats.orm_fallbacks += 1
                self._stats.orm_fallback_s += time.monotonic() - started
                outcomes.append(outcome)
            else:
                outcomes.append(batch_outcome)
        return outcomes
