"""Live push to the page: a numbered notification on the session's Channels group.

Postgres stays the source of truth; a pushed message is a notification with a sequence number
(per session, gap-free as allocated), so a page that sees a gap re-reads
`GET /session/{id}/transcript?after=`. channels-redis drops messages past capacity without an
error; the sequence number is what makes that safe.

The sequence lives in Redis: transcript deltas arrive at speaking pace from many calls, too
often for a row update each. Without Redis (embedded mode) it is `Session.push_seq`.

**The numbers never go backwards unnoticed.** A Redis counter can vanish (a restart without
persistence, an expired or evicted key) and would start again at 1, below what the page last
saw. So the counter is a hash `{epoch, seq}` created and advanced by one Lua script
(`_TAKE_LUA`): whoever creates it stamps a new `epoch` (Redis' clock in ms), and every message
carries `(epoch, seq)`. A page that sees another epoch re-reads the transcript and counts afresh
(static/js/live.js). Messages the worker could not send (Redis away) still consume numbers when
Redis answers again, followed by a `resync` message: a page whose socket lived through it sees
the gap and re-reads (`Pusher`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import logging
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis
import redis.asyncio as aioredis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db.models import F

from config.outages import REDIS_AWAY
from sessions_app.models import Session

logger = logging.getLogger(__name__)

# Keys outlive any session (60-minute cap) by far; they expire so Redis does not fill up.
SEQ_TTL_S = 2 * 24 * 3600
SEQ_TTL_REFRESH_S = 3600
MESSAGE_TYPE = "session.push"
PUSH_CONCURRENCY = 32
PUSH_LINGER_S = 0.05
# While messages are owed (Redis away), each shard tries a resync this often.
PUSH_RESYNC_RETRY_S = 1.0
# Redis away must not hold a push or a snapshot for long; a pooled connection that died with a
# Redis restart is retried once on a new one.
REDIS_CLIENT_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
    "retry_on_error": [redis.ConnectionError],
}
# In embedded mode the counter is a column that never resets: one epoch for ever.
EMBEDDED_EPOCH = 0

# KEYS[1]: the session's counter (a hash: epoch, seq). ARGV: how many numbers to take (0 reads),
# the key's TTL, "1" to renew the TTL. Returns {epoch, last number taken}. Atomic: a key that
# vanished is recreated with a new epoch in the same step that numbers the message.
_TAKE_LUA = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  local now = redis.call('TIME')
  epoch = now[1] .. string.format('%03d', math.floor(tonumber(now[2]) / 1000))
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
  redis.call('EXPIRE', KEYS[1], ARGV[2])
elseif ARGV[3] == '1' then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return {epoch, redis.call('HINCRBY', KEYS[1], 'seq', ARGV[1])}
"""


@dataclass(frozen=True)
class PushPosition:
    """Where a session's numbering stands: `seq` counts within `epoch`."""

    epoch: int
    seq: int

    @classmethod
    def from_script(cls, reply: list[Any]) -> PushPosition:
        epoch, seq = reply
        return cls(epoch=int(epoch), seq=int(seq))


def session_group(session_public_id: str) -> str:
    return f"session.{session_public_id}"


def _seq_key(session_public_id: str) -> str:
    return f"sideband:push:{session_public_id}"


@cache
def _redis() -> redis.Redis:
    # Short timeouts: a push or a snapshot must not hang a request while Redis is away.
    return redis.Redis.from_url(settings.REDIS_URL, **REDIS_CLIENT_OPTIONS)


_TAKE_SHA = hashlib.sha1(_TAKE_LUA.encode(), usedforsecurity=False).hexdigest()


@cache
def _take_script() -> Any:
    return _redis().register_script(_TAKE_LUA)


async def _take_many(client: aioredis.Redis, requests: list[tuple[str, int, bool]]) -> list[Any]:
    """`_TAKE_LUA` for each (key, count, renew_ttl), in one pipelined round trip.

    By its sha, without redis-py's per-pipeline SCRIPT EXISTS round trip; a Redis that lost its
    script cache (a restart) answers NOSCRIPT, and only those calls are sent again after
    loading the script (a NOSCRIPT call ran nothing, so nothing is numbered twice).
    """
    replies: list[Any] = [None] * len(requests)
    todo = list(range(len(requests)))
    for _attempt in range(2):
        pipe = client.pipeline(transaction=False)
        for i in todo:
            key, count, renew = requests[i]
            pipe.evalsha(_TAKE_SHA, 1, key, count, SEQ_TTL_S, "1" if renew else "0")
        results = await pipe.execute(raise_on_error=False)
        missing = []
        for i, result in zip(todo, results, strict=True):
            if isinstance(result, redis.exceptions.NoScriptError):
                missing.append(i)
            elif isinstance(result, Exception):
                raise result
            else:
                replies[i] = result
        if not missing:
            return replies
        await client.script_load(_TAKE_LUA)
        todo = missing
    raise redis.exceptions.NoScriptError("the push script could not be loaded")


def push_seq_take(*, session_public_id: str, count: int = 1) -> PushPosition:
    """Take the session's next `count` push numbers (atomic); the last one taken, and its
    epoch. `count=0` reads where the numbering stands (creating the counter if it vanished).
    Raises REDIS_AWAY errors."""
    if settings.EMBEDDED:
        if count:
            Session.objects.filter(public_id=session_public_id).update(
                push_seq=F("push_seq") + count
            )
        seq = Session.objects.values_list("push_seq", flat=True).get(public_id=session_public_id)
        return PushPosition(epoch=EMBEDDED_EPOCH, seq=seq)
    reply = _take_script()(keys=[_seq_key(session_public_id)], args=[count, SEQ_TTL_S, "1"])
    return PushPosition.from_script(reply)


def push_seq_current(*, session_public_id: str) -> PushPosition | None:
    """Where the session's numbering stands; None while Redis is away (logged): the caller
    answers without it, and the page counts from its next message."""
    try:
        return push_seq_take(session_public_id=session_public_id, count=0)
    except REDIS_AWAY as exc:
        logger.warning(
            "push position of session %s unknown, Redis away: %r", session_public_id, exc
        )
        return None


def push_position_json(position: PushPosition | None) -> dict[str, int | None]:
    """`{"seq", "epoch"}` of a snapshot or transcript (nulls: unknown, Redis away)."""
    if position is None:
        return {"seq": None, "epoch": None}
    return {"seq": position.seq, "epoch": position.epoch}


def push_to_session_public_id(
    *, session_public_id: str, payload: dict[str, Any]
) -> PushPosition | None:
    """Number `payload` and send it to the session's group; its position, or None when Redis
    was away (logged, never raised: what it announces is committed, and the page re-reads)."""
    try:
        position = push_seq_take(session_public_id=session_public_id)
        layer = get_channel_layer()
        if layer is None:
            return position
        message = {**payload, "seq": position.seq, "epoch": position.epoch}
        async_to_sync(layer.group_send)(
            session_group(session_public_id), {"type": MESSAGE_TYPE, "payload": message}
        )
    except REDIS_AWAY as exc:
        # Numbered but not sent: the page sees the gap at the next message. Not numbered:
        # Redis is away, so the page's socket is closed too and it reconnects to a snapshot.
        logger.warning(
            "push of %s to session %s lost, Redis away: %r",
            payload.get("type"),
            session_public_id,
            exc,
        )
        return None
    except Exception:  # a lost notification is recoverable by design (the page re-reads)
        logger.exception("push to session %s failed", session_public_id)
        return None
    return position


def push_to_session(*, session: Session, payload: dict[str, Any]) -> PushPosition | None:
    """Push `payload` (a dict with "type") to the session's live page; its position (None:
    not sent, Redis away).

    Call it after the change it announces has committed (`transaction.on_commit`).
    """
    return push_to_session_public_id(session_public_id=str(session.public_id), payload=payload)


class Pusher:
    """The worker's pusher: sends for the I/O loop and the writers, on that loop.

    `push()` is non-blocking. Messages are sharded by session, so one session's messages are
    numbered and sent in order. Each shard drains whatever has queued up: per session one
    `_TAKE_LUA` call (all sessions in one pipelined round trip) numbers the batch, consecutive
    deltas of one item are merged, and one group message carries the batch. Under load batches
    grow instead of queues; when idle a message goes out alone. One loop means one Redis pool
    for the process, not one per thread.

    While Redis is away a batch fails: it is dropped (Postgres has what it announced), one log
    line says so, and its sessions are owed a resync. The shard retries every
    `PUSH_RESYNC_RETRY_S`; the first batch that goes through takes the lost messages' numbers
    and sends `{"type": "resync"}`, so a page whose socket lived through it sees the gap and
    re-reads, and one that reconnected meanwhile (a snapshot) re-reads once for nothing.
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
        client = (
            None
            if settings.EMBEDDED
            else aioredis.Redis.from_url(settings.REDIS_URL, **REDIS_CLIENT_OPTIONS)
        )
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
        # Per session, how many messages this shard could not send (Redis away): they are owed
        # numbers and a `resync` message, retried every PUSH_RESYNC_RETRY_S until Redis answers.
        owed: dict[str, int] = {}
        while True:
            items: list[tuple[str, dict[str, Any], float] | None] = []
            # Nothing new within the retry interval: time to retry what is owed.
            with contextlib.suppress(TimeoutError):
                items.append(await asyncio.wait_for(q.get(), PUSH_RESYNC_RETRY_S if owed else None))
            if items and items[0] is not None:
                # Let a burst gather: one batch per shard and linger, consecutive deltas of an
                # item merged, instead of a Redis batch per message.
                await asyncio.sleep(PUSH_LINGER_S)
            while not q.empty():
                items.append(q.get_nowait())
            skipped, owed = owed, {}
            batch: dict[str, list[dict[str, Any]]] = {
                public_id: [{"type": "resync"}] for public_id in skipped
            }
            queued: list[float] = []
            for item in items:
                if item is not None:
                    batch.setdefault(item[0], []).append(item[1])
                    queued.append(item[2])
            if batch:
                try:
                    await self._send(batch, client, layer, skipped=skipped)
                    now = time.monotonic()
                    self.latency_ms.extend((now - t) * 1000 for t in queued)
                    if skipped:
                        logger.info("live push resumed: %d sessions resynced", len(skipped))
                except REDIS_AWAY as exc:
                    for public_id, payloads in batch.items():
                        owed[public_id] = skipped.get(public_id, 0) + len(payloads)
                    self.failed += len(queued)
                    if not skipped:  # one line per outage and shard, not one per retry
                        logger.warning(
                            "live push failed, Redis away (%r): %d sessions resynced when it "
                            "answers",
                            exc,
                            len(owed),
                        )
                except Exception:
                    self.failed += len(queued)
                    logger.exception("push to %d sessions failed", len(batch))
            if None in items:
                return

    async def _send(
        self,
        batch: dict[str, list[dict[str, Any]]],
        client: aioredis.Redis | None,
        layer: Any,
        *,
        skipped: dict[str, int],
    ) -> None:
        """Number and send each session's messages; `skipped[session]` numbers are taken first
        and never sent (the messages lost while Redis was away): the page sees the gap."""
        merged = {public_id: _merge_deltas(payloads) for public_id, payloads in batch.items()}
        positions: dict[str, PushPosition] = {}
        if client is None:
            from asgiref.sync import sync_to_async

            for public_id, payloads in merged.items():
                positions[public_id] = await sync_to_async(push_seq_take)(
                    session_public_id=public_id, count=len(payloads) + skipped.get(public_id, 0)
                )
        else:
            now = time.monotonic()
            requests = []
            for public_id, payloads in merged.items():
                # The key's TTL is renewed now and then, not with every batch; SEQ_TTL_S is
                # days, the refresh interval an hour at most (a recreated key gets its TTL).
                renew = now - self._expired_at.get(public_id, -SEQ_TTL_REFRESH_S)
                if renew >= SEQ_TTL_REFRESH_S:
                    self._expired_at[public_id] = now
                count = len(payloads) + skipped.get(public_id, 0)
                requests.append((_seq_key(public_id), count, renew >= SEQ_TTL_REFRESH_S))
            replies = await _take_many(client, requests)
            positions = {
                public_id: PushPosition.from_script(reply)
                for public_id, reply in zip(merged, replies, strict=True)
            }
        if layer is None:
            return

        sends = []
        for public_id, payloads in merged.items():
            last = positions[public_id]
            first = last.seq - len(payloads) + 1
            numbered = [
                {**p, "seq": first + i, "epoch": last.epoch} for i, p in enumerate(payloads)
            ]
            sends.append((session_group(public_id), {"type": MESSAGE_TYPE, "payloads": numbered}))
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
