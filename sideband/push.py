"""Live push to the page: a numbered notification on the session's Channels group.

Postgres stays the source of truth; a pushed message is a notification with a sequence number
(per session, gap-free as allocated), so a page that sees a gap re-reads
`GET /session/{id}/transcript?after=`. channels-redis drops messages past capacity without an
error; the sequence number is what makes that safe.

The sequence lives in Redis (`INCR`): transcript deltas arrive at speaking pace from many calls,
too often for a row update each. Without Redis (embedded mode) it is `Session.push_seq`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
import zlib
from collections import deque
from functools import cache
from typing import Any

import redis
import redis.asyncio as aioredis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db.models import F

from sessions_app.models import Session

logger = logging.getLogger(__name__)

# Keys outlive any session (60-minute cap) by far; they expire so Redis does not fill up.
SEQ_TTL_S = 2 * 24 * 3600
SEQ_TTL_REFRESH_S = 3600
MESSAGE_TYPE = "session.push"
PUSH_CONCURRENCY = 32
PUSH_LINGER_S = 0.05


def session_group(session_public_id: str) -> str:
    return f"session.{session_public_id}"


def _seq_key(session_public_id: str) -> str:
    return f"sideband:push_seq:{session_public_id}"


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def push_seq_next(*, session_public_id: str) -> int:
    """Allocate the session's next push sequence number (atomic)."""
    if settings.EMBEDDED:
        Session.objects.filter(public_id=session_public_id).update(push_seq=F("push_seq") + 1)
        return Session.objects.values_list("push_seq", flat=True).get(public_id=session_public_id)
    pipe = _redis().pipeline(transaction=False)
    pipe.incr(_seq_key(session_public_id))
    pipe.expire(_seq_key(session_public_id), SEQ_TTL_S)
    seq, _ = pipe.execute()
    return int(seq)


def push_seq_current(*, session_public_id: str) -> int:
    """The last sequence number allocated for the session (0: none yet)."""
    if settings.EMBEDDED:
        return Session.objects.values_list("push_seq", flat=True).get(public_id=session_public_id)
    raw = _redis().get(_seq_key(session_public_id))
    return int(raw) if raw is not None else 0


def push_to_session_public_id(*, session_public_id: str, payload: dict[str, Any]) -> int:
    """Number `payload` and send it to the session's group; returns the sequence number."""
    seq = push_seq_next(session_public_id=session_public_id)
    message = {**payload, "seq": seq}
    layer = get_channel_layer()
    if layer is None:
        return seq
    try:
        async_to_sync(layer.group_send)(
            session_group(session_public_id), {"type": MESSAGE_TYPE, "payload": message}
        )
    except Exception:  # a lost notification is recoverable by design (the page re-reads)
        logger.exception("push to session %s failed", session_public_id)
    return seq


def push_to_session(*, session: Session, payload: dict[str, Any]) -> int:
    """Push `payload` (a dict with "type") to the session's live page; returns its `seq`.

    Call it after the change it announces has committed (`transaction.on_commit`).
    """
    return push_to_session_public_id(session_public_id=str(session.public_id), payload=payload)


class Pusher:
    """The worker's pusher: sends for the I/O loop and the writers, on that loop.

    `push()` is non-blocking. Messages are sharded by session, so one session's messages are
    numbered and sent in order. Each shard drains whatever has queued up: per session one
    `INCRBY` (all sessions in one pipelined round trip) numbers the batch, consecutive deltas
    of one item are merged, and one group message carries the batch. Under load batches grow
    instead of queues; when idle a message goes out alone. One loop means one Redis pool for the
    process, not one per thread.
    """

    def __init__(self, *, loop: asyncio.AbstractEventLoop, shards: int = 8) -> None:
        self._shards = shards
        self._loop = loop
        self._main: concurrent.futures.Future[None] | None = None
        self._queues: list[asyncio.Queue[tuple[str, dict[str, Any], float] | None]] = []
        self._ready = threading.Event()
        self._inbox: deque[tuple[str, dict[str, Any], float]] = deque()
        self._expired_at: dict[str, float] = {}  # session -> when its seq key's TTL was set
        self._wake_pending = False
        self.sent = 0
        self.group_sends = 0
        self.failed = 0
        # Milliseconds from push() to the group send, per message (operators, the benchmark).
        self.latency_ms: deque[float] = deque(maxlen=20_000)

    def start(self) -> None:
        """Start sending (the loop runs, or is about to, in another thread)."""
        self._main = asyncio.run_coroutine_threadsafe(self._run(), self._loop)
        self._ready.wait(10)

    def push(self, session_public_id: str, payload: dict[str, Any]) -> None:
        """Queue a message (any thread). The pusher loop is woken once per burst, not once per
        message: a thousand calls' deltas would otherwise cost a loop wake-up each."""
        self._inbox.append((session_public_id, payload, time.monotonic()))
        if not self._wake_pending:
            self._wake_pending = True
            self._loop.call_soon_threadsafe(self._transfer)

    def _transfer(self) -> None:
        """On the pusher loop: move the inbox to the shards' queues (a session keeps its shard,
        so its messages keep their order)."""
        self._wake_pending = False  # before draining: a push after this schedules a new wake
        inbox = self._inbox
        while inbox:
            item = inbox.popleft()
            shard = zlib.crc32(item[0].encode()) % self._shards
            self._queues[shard].put_nowait(item)

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued, then stop (any thread but the loop's)."""
        if self._main is None or self._main.done():
            return
        self._loop.call_soon_threadsafe(self._transfer)  # what is queued goes out first
        for q in self._queues:
            self._loop.call_soon_threadsafe(q.put_nowait, None)
        with contextlib.suppress(concurrent.futures.TimeoutError):
            self._main.result(timeout)

    async def _run(self) -> None:
        self._queues = [asyncio.Queue() for _ in range(self._shards)]
        client = None if settings.EMBEDDED else aioredis.Redis.from_url(settings.REDIS_URL)
        # Bounds concurrent group sends (channels-redis has a bounded connection pool).
        self._sending = asyncio.Semaphore(PUSH_CONCURRENCY)
        self._ready.set()
        await asyncio.gather(*(self._drain(q, client) for q in self._queues))
        if client is not None:
            await client.aclose()

    async def _drain(
        self,
        q: asyncio.Queue[tuple[str, dict[str, Any], float] | None],
        client: aioredis.Redis | None,
    ) -> None:
        layer = get_channel_layer()
        while True:
            items = [await q.get()]
            if items[0] is not None:
                # Let a burst gather: one batch per shard and linger, consecutive deltas of an
                # item merged, instead of a Redis batch per message.
                await asyncio.sleep(PUSH_LINGER_S)
            while not q.empty():
                items.append(q.get_nowait())
            batch: dict[str, list[dict[str, Any]]] = {}
            queued: list[float] = []
            for item in items:
                if item is not None:
                    batch.setdefault(item[0], []).append(item[1])
                    queued.append(item[2])
            if batch:
                try:
                    await self._send(batch, client, layer)
                    now = time.monotonic()
                    self.latency_ms.extend((now - t) * 1000 for t in queued)
                except Exception:
                    self.failed += sum(len(v) for v in batch.values())
                    logger.exception("push to %d sessions failed", len(batch))
            if None in items:
                return

    async def _send(
        self, batch: dict[str, list[dict[str, Any]]], client: aioredis.Redis | None, layer: Any
    ) -> None:
        merged = {public_id: _merge_deltas(payloads) for public_id, payloads in batch.items()}
        if client is None:
            from asgiref.sync import sync_to_async

            firsts = {}
            for public_id, payloads in merged.items():
                last = 0
                for _ in payloads:
                    last = await sync_to_async(push_seq_next)(session_public_id=public_id)
                firsts[public_id] = last - len(payloads) + 1
        else:
            pipe = client.pipeline(transaction=False)
            now = time.monotonic()
            for public_id, payloads in merged.items():
                pipe.incrby(_seq_key(public_id), len(payloads))
                # The key's TTL is renewed now and then, not with every batch (half the
                # commands); SEQ_TTL_S is days, the refresh interval an hour at most.
                if now - self._expired_at.get(public_id, -SEQ_TTL_REFRESH_S) >= SEQ_TTL_REFRESH_S:
                    pipe.expire(_seq_key(public_id), SEQ_TTL_S)
                    self._expired_at[public_id] = now
            results = iter(await pipe.execute())
            firsts = {}
            for public_id, payloads in merged.items():
                firsts[public_id] = int(next(results)) - len(payloads) + 1
                if self._expired_at.get(public_id) == now:
                    next(results)
        if layer is None:
            return

        sends = [
            (
                session_group(public_id),
                {
                    "type": MESSAGE_TYPE,
                    "payloads": [
                        {**p, "seq": firsts[public_id] + i} for i, p in enumerate(payloads)
                    ],
                },
            )
            for public_id, payloads in merged.items()
        ]
        async with self._sending:
            await group_send_many(layer, sends)
        self.sent += sum(len(payloads) for payloads in merged.values())
        self.group_sends += len(sends)


# channels-redis's group-send script (core.py), for many channel keys at once.
_GROUP_SEND_LUA = """
local over_capacity = 0
local current_time = ARGV[#ARGV - 1]
local expiry = ARGV[#ARGV]
for i=1,#KEYS do
    if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[i + #KEYS]) then
        redis.call('ZADD', KEYS[i], current_time, ARGV[i])
        redis.call('EXPIRE', KEYS[i], expiry)
    else
        over_capacity = over_capacity + 1
    end
end
return over_capacity
"""
_GROUP_SEND_CHUNK = 500


async def group_send_many(layer: Any, sends: list[tuple[str, dict[str, Any]]]) -> None:
    """`layer.group_send(group, message)` for every pair, in two Redis round trips in all.

    channels-redis sends a group message in four round trips (expire the group's members,
    read them, expire the channels' messages, a Lua script adding the message); the pusher
    sends to hundreds of sessions' groups a second. For a single-host RedisChannelLayer this
    does the same steps with the layer's own helpers, pipelined over all the groups (same keys,
    same serialisation, same capacity rule); any other layer gets its own group_send.
    """
    if not _batchable(layer):
        await asyncio.gather(*(layer.group_send(group, message) for group, message in sends))
        return
    connection = layer.connection(0)
    now = int(time.time())
    pipe = connection.pipeline(transaction=False)
    for group, _message in sends:
        key = layer._group_key(group)
        pipe.zremrangebyscore(key, min=0, max=now - layer.group_expiry)
        pipe.zrange(key, 0, -1)
    members = (await pipe.execute())[1::2]
    keys: list[bytes | str] = []
    bodies: list[bytes] = []
    capacities: list[int] = []
    for (_group, message), channels in zip(sends, members, strict=True):
        names = [channel.decode("utf8") for channel in channels]
        if not names:
            continue
        _by_connection, key_bodies, key_capacities = layer._map_channel_keys_to_connection(
            names, message
        )
        for key, body in key_bodies.items():
            keys.append(key)
            bodies.append(body)
            capacities.append(key_capacities[key])
    if not keys:
        return
    pipe = connection.pipeline(transaction=False)
    for key in dict.fromkeys(keys):
        pipe.zremrangebyscore(key, min=0, max=now - int(layer.expiry))
    for start in range(0, len(keys), _GROUP_SEND_CHUNK):
        chunk = slice(start, start + _GROUP_SEND_CHUNK)
        n = len(keys[chunk])
        pipe.eval(
            _GROUP_SEND_LUA,
            n,
            *keys[chunk],
            *bodies[chunk],
            *capacities[chunk],
            time.time(),
            layer.expiry,
        )
    await pipe.execute()


def _batchable(layer: Any) -> bool:
    try:
        from channels_redis.core import RedisChannelLayer
    except ImportError:  # pragma: no cover - channels-redis is a dependency
        return False
    return (
        type(layer) is RedisChannelLayer
        and layer.ring_size == 1
        and all(
            hasattr(layer, name)
            for name in ("connection", "_group_key", "_map_channel_keys_to_connection")
        )
    )


def _merge_deltas(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge consecutive deltas of one item: one message with the joined delta, latest text."""
    out: list[dict[str, Any]] = []
    parts: list[str] = []  # the deltas of out[-1] when it is a delta (joined once, at the end)

    def close() -> None:
        if len(parts) > 1:
            out[-1] = {**out[-1], "delta": "".join(parts)}
        parts.clear()

    for payload in payloads:
        last = out[-1] if out else None
        if (
            last is not None
            and parts
            and payload.get("type") == "delta"
            and last.get("itemId") == payload.get("itemId")
        ):
            out[-1] = payload
            parts.append(payload["delta"])
            continue
        close()
        out.append(payload)
        if payload.get("type") == "delta":
            parts.append(payload["delta"])
    close()
    return out
