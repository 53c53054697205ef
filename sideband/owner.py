"""The connection owner: one per worker process, holding every sideband socket the process owns.

One process holds many calls; no process, and no thread, per call. Everything hot runs on one
asyncio **I/O loop** thread, so nothing on the hot path contends for the GIL (threads did: each
socket read and each Postgres round trip waited for the GIL again, and the loop fell behind):

- per call a coroutine (the `websockets` client) reads frames, runs the pure capture
  (`capture_frame`), pushes transcript deltas to the page, answers `ItemMissing` with
  `conversation.item.retrieve`, and queues turn writes;
- a few **writer** coroutines (settings.SIDEBAND_WRITERS), each with its own asyncio Postgres
  connection: calls are sharded over them by call id, so one call's writes stay in order, and
  a writer drains its queue in batches, each one transaction of two pipelined round trips
  (sideband.transcript.batch_run_async), whatever the number of calls in it;
- the **pusher** (sideband.push.Pusher) numbering and sending live messages.

Off the loop: one **ORM thread** for what needs Django's ORM (a recovered item placed between
two turns, call ends, embedded mode's SQLite), and one **lease thread**: every SIDEBAND_POLL_S
one query tells which calls the process still owns (a newer generation, an ended call or a
lost lease closes the socket within ~1 s), every SIDEBAND_HEARTBEAT_S one UPDATE extends every
held lease, and the garbage collector is paced (CollectorPacing).

Recovery never relies on broker redelivery: a dead owner's leases expire and the reconciler
(`sideband.tasks.calls_reconcile`) dispatches the calls again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import gc
import json
import logging
import os
import random
import socket
import threading
import time
import uuid
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import psycopg
from django.conf import settings
from django.db import InterfaceError as DbInterfaceError
from django.db import (
    OperationalError,
    close_old_connections,
    connection,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedOK,
    InvalidStatus,
    WebSocketException,
)

from sessions_app import upstream
from sessions_app.models import Call
from sessions_app.selectors import turn_json
from sideband import services
from sideband.capture import (
    CallEnded,
    CaptureState,
    ItemMissing,
    TurnDelta,
    TurnUpsert,
    capture_frame,
)
from sideband.push import Pusher
from sideband.transcript import (
    Fenced,
    Outcome,
    Refused,
    batch_run_async,
    connect_async,
    connect_params,
    turns_apply_batch,
)

logger = logging.getLogger(__name__)

# Handshake answers that mean the call can no longer be joined.
_AUTH_REFUSED = (401, 403)
_CALL_GONE = (404, 410)
# Close reasons the upstream gives when the call itself ended (not just our socket).
_CLOSE_REASON_ENDS = {
    "hangup": Call.EndReason.HANGUP,
    "call_not_found": Call.EndReason.HANGUP,
    "session_expired": Call.EndReason.SESSION_EXPIRED,
    "invalid_api_key": Call.EndReason.SECRET_EXPIRED,
}


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


def _end_reason(reason: str) -> str:
    """A rejected credential is an expired client secret, unless we authenticate with the
    server's key (then it is our misconfiguration: upstream_error)."""
    if reason == Call.EndReason.SECRET_EXPIRED and settings.SIDEBAND_AUTH == "api_key":
        return Call.EndReason.UPSTREAM_ERROR
    return reason if reason in Call.EndReason.values else Call.EndReason.UPSTREAM_ERROR


def seed_prefix() -> str | None:
    """Item-id prefix of the rehydration seed (extraction.seeding), None if not installed."""
    try:
        from extraction.seeding import SEED_ITEM_PREFIX  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return str(SEED_ITEM_PREFIX)


@dataclass
class CallSpec:
    """What a call's connection needs, loaded once from the database by the claiming task."""

    call_id: str
    generation: int
    call: Call
    session_public_id: str
    secret: str = field(repr=False)
    state: CaptureState
    seed_events: list[dict[str, Any]]
    deadline: float  # monotonic: the session cap (plus a margin) from the call's registration


class Stats:
    """Process-wide figures, exported to Redis for operators and the benchmark."""

    def __init__(self) -> None:
        self.commit_ms: deque[float] = deque(maxlen=20_000)
        self.commits = 0
        self.batches = 0
        self.batch_calls = 0
        self.write_s = 0.0
        self.reconnects = 0
        self.fenced = 0

    @staticmethod
    def percentile(samples: list[float], pct: float) -> float | None:
        if not samples:
            return None
        ordered = sorted(samples)
        return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


class CallConnection:
    """One call's sideband socket: a coroutine on the owner's I/O loop."""

    def __init__(self, owner: SidebandOwner, spec: CallSpec) -> None:
        self.owner = owner
        self.spec = spec
        self.events = 0
        self.connects = 0
        self.done = threading.Event()
        self._stopping = False
        self._ws: ClientConnection | None = None
        self._wake = asyncio.Event()
        self._seed = seed_prefix()

    # -- control (any thread) ------------------------------------------------------------------

    @property
    def call_id(self) -> str:
        return self.spec.call_id

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        """Close the socket cleanly (close frame 1000, 1 s for the peer's answer), no reconnect."""
        if self._stopping:
            return
        self._stopping = True
        self.owner.io.call_soon_threadsafe(self._stop_in_loop)

    def _stop_in_loop(self) -> None:
        self._wake.set()
        if self._ws is not None:
            self.owner.spawn(self._ws.close(code=1000))

    # -- on the I/O loop -------------------------------------------------------------------------

    async def run(self) -> None:
        attempt = 0
        try:
            while not self._stopping:
                if time.monotonic() > self.spec.deadline:
                    self.owner.end(self, Call.EndReason.SESSION_EXPIRED, "session cap reached")
                    return
                try:
                    ws = await self._connect()
                except InvalidStatus as exc:
                    reason = self._refused_reason(exc.response.status_code)
                    if reason is not None:
                        msg = f"sideband refused: {exc.response.status_code}"
                        self.owner.end(self, reason, msg)
                        return
                    attempt = await self._backoff(attempt)
                    continue
                except (OSError, TimeoutError, WebSocketException):
                    attempt = await self._backoff(attempt)
                    continue
                attempt = 0
                try:
                    ended = await self._read(ws)
                finally:
                    self._ws = None
                    await ws.close()
                if ended:
                    return
                if not self._stopping:
                    self.owner.stats.reconnects += 1
                    logger.info("sideband dropped, reconnecting call=%s", self.call_id)
                    attempt = await self._backoff(attempt)
        except Exception:
            logger.exception("sideband connection failed call=%s", self.call_id)
        finally:
            self.owner.forget(self)
            self.done.set()

    def _refused_reason(self, status: int) -> str | None:
        if status in _CALL_GONE:
            return Call.EndReason.HANGUP
        if status in _AUTH_REFUSED:
            return _end_reason(Call.EndReason.SECRET_EXPIRED)
        return None

    async def _backoff(self, attempt: int) -> int:
        """Wait `backoff_s(attempt)`; stop() cuts it short."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), backoff_s(attempt))
        return attempt + 1

    async def _connect(self) -> ClientConnection:
        headers = dict(
            line.split(": ", 1)
            for line in upstream.sideband_headers(client_secret=self.spec.secret)
        )
        ws = await connect(
            upstream.sideband_url(self.call_id),
            additional_headers=headers,
            open_timeout=settings.SIDEBAND_CONNECT_TIMEOUT_S,
            ping_interval=settings.SIDEBAND_PING_S,
            ping_timeout=settings.SIDEBAND_PING_S,
            close_timeout=1.0,
            max_size=16 * 1024 * 1024,
            compression=None,
            proxy=None,
        )
        self._ws = ws
        if self._stopping:
            await ws.close()
            raise ConnectionClosedOK(None, None)
        if self.connects == 0:
            # Rehydration: the seed goes first, before anything else on the socket.
            for event in self.spec.seed_events:
                await ws.send(json.dumps(event))
        self.connects += 1
        return ws

    async def _read(self, ws: ClientConnection) -> bool:
        """Read until the socket closes; True when the call ended (no reconnect)."""
        try:
            async for raw in ws:
                try:
                    replies = self._frame(raw, time.monotonic())
                except Exception:
                    # One bad frame must not cost the call its socket (content is not logged).
                    logger.exception("sideband frame failed call=%s", self.call_id)
                    continue
                for event in replies:
                    await ws.send(json.dumps(event))
        except ConnectionClosed:
            pass
        if self._stopping:
            return True
        received = ws.protocol.close_rcvd
        reason = received.reason if received is not None else ""
        end = _CLOSE_REASON_ENDS.get(reason)
        if end is not None:
            self.owner.end(self, _end_reason(end), f"sideband closed: {reason}")
            return True
        return False

    def _frame(self, raw: bytes | str, t_recv: float) -> list[dict[str, Any]]:
        """Capture one frame; returns the client events to send back (item retrievals)."""
        self.events += 1
        ops = capture_frame(self.spec.state, raw)
        upserts: list[TurnUpsert] = []
        replies: list[dict[str, Any]] = []
        ended: CallEnded | None = None
        for op in ops:
            if isinstance(op, TurnDelta):
                if not self._seeded(op.item_id):
                    self.owner.pusher.push(
                        self.spec.session_public_id,
                        {
                            "type": "delta",
                            "itemId": op.item_id,
                            "role": op.role,
                            "delta": op.delta,
                            "text": op.text,
                        },
                    )
            elif isinstance(op, TurnUpsert):
                if not self._seeded(op.item_id):
                    upserts.append(op)
            elif isinstance(op, ItemMissing):
                if not self._seeded(op.item_id):
                    replies.append(upstream.item_retrieve_event(op.item_id))
            elif isinstance(op, CallEnded):
                ended = op
        if upserts:
            self.owner.write(self, upserts, t_recv)
        if ended is not None:
            self.owner.end(self, _end_reason(ended.reason), ended.message)
        return replies

    def _seeded(self, item_id: str | None) -> bool:
        return bool(self._seed and item_id and item_id.startswith(self._seed))


def _latest_records(upserts: list[TurnUpsert]) -> list[TurnUpsert]:
    """Each item's latest full record, at the place of its first: an item changing three times
    in one batch is written once (records are complete, so the last one says everything)."""
    latest: dict[str, TurnUpsert] = {}
    for op in upserts:
        latest[op.item_id] = op
    return list(latest.values())


_Job = tuple[CallConnection, list[TurnUpsert] | None, str, str, float]


class SidebandOwner:
    """The process-wide owner of sideband sockets (see the module docstring)."""

    def __init__(self, *, owner_id: str | None = None, writers: int | None = None) -> None:
        self.owner_id = owner_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stats = Stats()
        self.io = asyncio.new_event_loop()
        self.pusher = Pusher(loop=self.io)
        self._conns: dict[str, CallConnection] = {}
        self._lock = threading.Lock()
        self._closing = False
        self._events_closed = 0
        self._done = threading.Event()
        n = writers or settings.SIDEBAND_WRITERS
        # The writers are coroutines on the I/O loop, each with its own asyncio connection.
        self._queues: list[asyncio.Queue[_Job | None]] = [asyncio.Queue() for _ in range(n)]
        self._writers: list[concurrent.futures.Future[None]] = []
        self._db_params: dict[str, Any] | None = None  # set on start (None: embedded mode)
        # Django's ORM (embedded mode, turn-by-turn writes, call ends) runs on this one thread.
        self._orm = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sideband-orm")
        self._lease_thread = threading.Thread(
            target=self._lease_loop, name="sideband-lease", daemon=True
        )
        # Every socket of the process lives on this one loop (see the module docstring).
        self._io_thread = threading.Thread(
            target=self.io.run_forever, name="sideband-io", daemon=True
        )
        self._tasks: set[asyncio.Future[Any]] = set()
        self._started = False

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._db_params = connect_params() if connection.vendor == "postgresql" else None
        self._io_thread.start()
        self.pusher.start()
        self._writers = [
            asyncio.run_coroutine_threadsafe(self._writer(q), self.io) for q in self._queues
        ]
        self._lease_thread.start()
        logger.info("sideband owner %s started", self.owner_id)

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

    def attach(self, spec: CallSpec) -> bool:
        """Start owning the call's socket; False if this process already does or is closing."""
        with self._lock:
            if self._closing or spec.call_id in self._conns:
                return False
            conn = CallConnection(self, spec)
            self._conns[spec.call_id] = conn
        asyncio.run_coroutine_threadsafe(conn.run(), self.io)
        return True

    def spawn(self, coro: Any) -> None:
        """Run a fire-and-forget coroutine on the I/O loop (call from the loop)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def forget(self, conn: CallConnection) -> None:
        with self._lock:
            if self._conns.get(conn.call_id) is conn:
                del self._conns[conn.call_id]
                self._events_closed += conn.events

    def write(self, conn: CallConnection, upserts: list[TurnUpsert], t_recv: float) -> None:
        self._enqueue(conn, (conn, upserts, "", "", t_recv))

    def end(self, conn: CallConnection, reason: str, message: str) -> None:
        """End the call (after its pending writes) and close its socket (any thread)."""
        self._enqueue(conn, (conn, None, reason, message, time.monotonic()))
        conn.stop()

    def _enqueue(self, conn: CallConnection, job: _Job) -> None:
        jobs = self._queues[zlib.crc32(conn.call_id.encode()) % len(self._queues)]
        if threading.get_ident() == self._io_thread.ident:
            jobs.put_nowait(job)
        else:
            self.io.call_soon_threadsafe(jobs.put_nowait, job)

    async def _orm_call(self, fn: Any) -> Any:
        """`fn()` on the ORM thread (Django's ORM is synchronous), again and again while the
        database cannot be reached, until it succeeds or the owner shuts down."""
        return await self.io.run_in_executor(self._orm, self._orm_retrying, fn)

    def _orm_retrying(self, fn: Any) -> Any:
        attempt = 0
        while True:
            try:
                return fn()
            except (OperationalError, DbInterfaceError) as exc:
                connection.close()
                if self._closing:
                    raise
                attempt += 1
                logger.warning("sideband: database unavailable (%s), retry %d", exc, attempt)
                time.sleep(retry_delay_s(attempt))

    # -- writers (coroutines on the I/O loop) ----------------------------------------------------

    async def _writer(self, jobs: asyncio.Queue[_Job | None]) -> None:
        """Drain a shard's queue in batches: calls are sharded by id, so one call's writes
        stay in order; one transaction per batch."""
        db = _WriterDb(self._db_params)
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
        finally:
            await db.close()

    async def _write_batch(self, batch: list[_Job], db: _WriterDb) -> None:
        # Per call, in arrival order: the upserts first (one transaction), then an end.
        grouped: dict[str, tuple[CallConnection, list[TurnUpsert], list[float], list[_Job]]] = {}
        for job in batch:
            conn, upserts, _reason, _message, t_recv = job
            entry = grouped.setdefault(conn.call_id, (conn, [], [], []))
            if upserts is not None:
                entry[1].extend(upserts)
                entry[2].extend(t_recv for op in upserts if op.status != "in_progress")
            else:
                entry[3].append(job)
        self.stats.batches += 1
        self.stats.batch_calls += len(grouped)
        writing = [
            (conn, _latest_records(upserts), done)
            for conn, upserts, done, _ends in grouped.values()
            if upserts
        ]
        started = time.monotonic()
        try:
            outcomes = await self._turns_write([(c.spec.call, u) for c, u, _d in writing], db)
        except Exception:
            logger.exception("sideband write of %d calls failed", len(writing))
            return
        now = time.monotonic()
        self.stats.write_s += now - started
        for (conn, _upserts, done_times), outcome in zip(writing, outcomes, strict=True):
            if isinstance(outcome, Fenced):
                # A newer call of the session owns the transcript: this socket must go.
                self.stats.fenced += 1
                logger.info("sideband fenced, closing call=%s", conn.call_id)
                conn.stop()
            elif isinstance(outcome, Refused):
                logger.error("sideband write refused: %s", outcome)
            else:
                self.stats.commits += len(done_times)
                self.stats.commit_ms.extend((now - t) * 1000 for t in done_times)
                for turn in outcome:
                    self.pusher.push(
                        conn.spec.session_public_id, {"type": "turn", "turn": turn_json(turn)}
                    )
        for conn, _ups, _done, ends in grouped.values():
            for _conn, _u, reason, message, _t in ends:
                await self._call_end(conn.call_id, reason, message)

    async def _call_end(self, call_id: str, reason: str, message: str) -> None:
        """End one call on the ORM thread; a failure costs that call's end only, never the
        other calls' ends of the batch (the lease then expires and the reconciler retries)."""
        try:
            await self._orm_call(
                functools.partial(
                    services.call_end, call_id=call_id, reason=reason, message=message
                )
            )
        except Exception:
            logger.exception("sideband call end failed call=%s", call_id)

    async def _turns_write(
        self, writes: list[tuple[Call, list[TurnUpsert]]], db: _WriterDb
    ) -> list[Outcome]:
        """The batch's turns, committed: set-based on the writer's asyncio connection, the
        rest (embedded mode, or a call whose placement needs queries) by the ORM thread."""
        if not writes:
            return []
        if db.params is None:
            return await self._orm_call(functools.partial(turns_apply_batch, writes=writes))
        batched = await db.run(lambda aconn: batch_run_async(aconn, writes=writes))
        outcomes: list[Outcome] = []
        for write, outcome in zip(writes, batched, strict=True):
            if outcome is None:
                (outcome,) = await self._orm_call(
                    functools.partial(turns_apply_batch, writes=[write])
                )
            outcomes.append(outcome)
        return outcomes

    # -- lease -----------------------------------------------------------------------------------

    def _lease_loop(self) -> None:
        last_extend = 0.0
        collector = CollectorPacing(full_every_s=settings.SIDEBAND_GC_FULL_S)
        while not self._done.wait(settings.SIDEBAND_POLL_S):
            try:
                collector.tick()
                now = time.monotonic()
                extend = now - last_extend >= settings.SIDEBAND_HEARTBEAT_S
                self.lease_tick(extend=extend)
                if extend:
                    last_extend = now
                self._stats_export()
            except (OperationalError, DbInterfaceError) as exc:
                # Postgres restarting, a connection killed: the next tick connects again.
                logger.warning("sideband lease tick: database unavailable (%s)", exc)
                connection.close()
            except Exception:
                logger.exception("sideband lease tick failed")
                close_old_connections()
                connection.close()
        connection.close()

    def lease_tick(self, *, extend: bool = True) -> None:
        """Check (and extend) every lease; close the sockets of calls this process lost."""
        conns = {c.call_id: c for c in self.connections() if not c.stopping}
        if not conns:
            return
        kept = services.leases_heartbeat(owner=self.owner_id, call_ids=conns, extend=extend)
        for call_id, conn in conns.items():
            if call_id in kept:
                continue
            reason = services.call_lost_reason(call_id=call_id, owner=self.owner_id)
            logger.info("sideband lost call=%s reason=%s", call_id, reason or "-")
            if reason is not None:
                self.end(conn, reason, "")
            else:
                conn.stop()

    def _stats_export(self) -> None:
        if settings.EMBEDDED:
            return
        from sideband.push import _redis

        samples = list(self.stats.commit_ms)[-5000:]  # sorted every second: the recent ones
        conns = self.connections()
        figures = {
            "owner": self.owner_id,
            "connections": len(conns),
            "events": sum(c.events for c in conns) + self._events_closed,
            "commits": self.stats.commits,
            "batches": self.stats.batches,
            "batch_calls": self.stats.batch_calls,
            "write_s": round(self.stats.write_s, 3),
            "reconnects": self.stats.reconnects,
            "fenced": self.stats.fenced,
            "pushed": self.pusher.sent,
            "group_sends": self.pusher.group_sends,
            "push_failed": self.pusher.failed,
            "p50_commit_ms": Stats.percentile(samples, 50),
            "p99_commit_ms": Stats.percentile(samples, 99),
            "p99_push_send_ms": Stats.percentile(list(self.pusher.latency_ms)[-5000:], 99),
            "at": time.time(),
        }
        _redis().set(f"sideband:stats:{self.owner_id}", json.dumps(figures), ex=60)

    # -- shutdown ----------------------------------------------------------------------------------

    def shutdown(self, *, handback: bool = True, timeout: float = 5.0) -> list[tuple[str, int]]:
        """SIGTERM: close every socket cleanly, flush the writes, hand the calls back.

        Handed-back calls get their lease cleared and a new `call_own` dispatch, so another
        worker (or this one, restarted) takes them over without waiting for the lease to expire.
        """
        with self._lock:
            self._closing = True
            conns = list(self._conns.values())
        for conn in conns:
            conn.stop()
        deadline = time.monotonic() + timeout
        for conn in conns:
            conn.done.wait(max(0.0, deadline - time.monotonic()))
        for q in self._queues:
            self.io.call_soon_threadsafe(q.put_nowait, None)
        for writer in self._writers:
            with contextlib.suppress(concurrent.futures.TimeoutError):
                writer.result(max(0.0, deadline - time.monotonic()))
        self._orm.submit(connection.close)
        self._orm.shutdown(wait=True)
        self._done.set()
        released: list[tuple[str, int]] = []
        if handback:
            try:
                released = services.lease_release(
                    owner=self.owner_id, call_ids=[c.call_id for c in conns]
                )
                from sideband.tasks import call_own

                for call_id, generation in released:
                    call_own.apply_async(args=(call_id, generation))
            except Exception:
                # The leases then expire and the reconciler recovers the calls.
                logger.exception("hand-back failed; the reconciler will recover the calls")
        self.pusher.stop()
        self.io.call_soon_threadsafe(self.io.stop)
        connection.close()
        logger.info("sideband owner %s stopped, handed back %d calls", self.owner_id, len(released))
        return released


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


class _WriterDb:
    """A writer's asyncio connection to Postgres (None params: embedded mode, no connection),
    opened on first use and again after a failure."""

    def __init__(self, params: dict[str, Any] | None) -> None:
        self.params = params
        self._aconn: psycopg.AsyncConnection[Any] | None = None

    async def run(self, work: Any) -> Any:
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


_owner: SidebandOwner | None = None
_owner_lock = threading.Lock()


def owner_get() -> SidebandOwner:
    """This process's owner, started on first use (only worker processes ever own calls)."""
    global _owner
    with _owner_lock:
        if _owner is None:
            _owner = SidebandOwner()
            _owner.start()
        return _owner


def owner_current() -> SidebandOwner | None:
    return _owner


def owner_reset() -> None:
    """Stop this process's owner without handing calls back (tests, embedded runner)."""
    global _owner
    with _owner_lock:
        owner, _owner = _owner, None
    if owner is not None:
        owner.shutdown(handback=False)
