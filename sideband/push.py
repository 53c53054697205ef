"""The worker's live push: the batching sender of the sideband worker's messages.

What a page receives, and how it is numbered, is the live-push API's (sessions_app.push): one
counter per session, `(epoch, seq)` on every message. This module is how the sideband worker
sends many of them: `Pusher` batches per session and per shard, takes a batch's numbers in one
pipelined round trip, and sends every group's batch in two Redis round trips
(`group_send_many`). While it runs, every push of the process goes through it
(sessions_app.push.push_route), the call's end included.
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
from typing import Any

import redis
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.conf import settings

from config.outages import REDIS_AWAY
from sessions_app.push import (
    MESSAGE_TYPE,
    REDIS_CLIENT_OPTIONS,
    SEQ_TAKE_LUA,
    SEQ_TAKE_SHA,
    SEQ_TTL_REFRESH_S,
    SEQ_TTL_S,
    PushPosition,
    push_route,
    push_route_current,
    push_seq_take,
    seq_key,
    session_group,
)

logger = logging.getLogger(__name__)

PUSH_CONCURRENCY = 32
PUSH_LINGER_S = 0.05
# While messages are owed (Redis away), each shard tries a resync this often.
PUSH_RESYNC_RETRY_S = 1.0


async def _take_many(client: aioredis.Redis, requests: list[tuple[str, int, bool]]) -> list[Any]:
    """`SEQ_TAKE_LUA` for each (key, count, renew_ttl), in one pipelined round trip.

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
            pipe.evalsha(SEQ_TAKE_SHA, 1, key, count, SEQ_TTL_S, "1" if renew else "0")
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
        await client.script_load(SEQ_TAKE_LUA)
        todo = missing
    raise redis.exceptions.NoScriptError("the push script could not be loaded")


class Pusher:
    """The worker's pusher: sends for the I/O loop and the writers, on that loop.

    `push()` is non-blocking. Messages are sharded by session, so one session's messages are
    numbered and sent in order. Each shard drains whatever has queued up: per session one
    `SEQ_TAKE_LUA` call (all sessions in one pipelined round trip) numbers the batch, consecutive
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
        """Start sending (the loop runs, or is about to, in another thread); from now on every
        push of the process goes through this pusher (sessions_app.push.push_route)."""
        self._main = asyncio.run_coroutine_threadsafe(self._run(), self._loop)
        self._ready.wait(10)
        push_route(self.push)

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
        if push_route_current() == self.push:
            push_route(None)  # pushes made from now on go out at once
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
                requests.append((seq_key(public_id), count, renew >= SEQ_TTL_REFRESH_S))
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
