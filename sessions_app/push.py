"""The live push: a numbered notification to a session's page, on its Channels group.

The one API for telling a page something: `push_to_session` (or `push_to_session_public_id`),
called after the change it announces has committed. The session API, the extraction and the
sideband worker all call it; the worker's batching sender (sideband.push.Pusher) plugs in
below it (`push_route`), so a worker's pushes leave in one path, in order.

Postgres stays the source of truth; a pushed message is a notification with a sequence number
(per session, gap-free as allocated), so a page that sees a gap re-reads
`GET /session/{id}/transcript?after=`. channels-redis drops messages past capacity without an
error; the sequence number is what makes that safe.

The sequence lives in Redis: transcript deltas arrive at speaking pace from many calls, too
often for a row update each. Without Redis (embedded mode) it is `Session.push_seq`.

**The numbers never go backwards unnoticed.** A Redis counter can vanish (a restart without
persistence, an expired or evicted key) and would start again at 1, below what the page last
saw. So the counter is a hash `{epoch, seq}` created and advanced by one Lua script
(`SEQ_TAKE_LUA`): whoever creates it stamps a new `epoch` (Redis' clock in ms), and every
message carries `(epoch, seq)`. A page that sees another epoch re-reads the transcript and
counts afresh (static/js/live.js). Messages the worker could not send (Redis away) still consume
numbers when Redis answers again, followed by a `resync` message: a page whose socket lived
through it sees the gap and re-reads (sideband.push.Pusher).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis
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
# The consumer method a group message calls (sideband.consumers.SessionConsumer.session_push).
MESSAGE_TYPE = "session.push"
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
SEQ_TAKE_LUA = """
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
SEQ_TAKE_SHA = hashlib.sha1(SEQ_TAKE_LUA.encode(), usedforsecurity=False).hexdigest()


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
    """The Channels group of the session's live sockets."""
    return f"session.{session_public_id}"


def seq_key(session_public_id: str) -> str:
    """The Redis key of the session's counter."""
    return f"sideband:push:{session_public_id}"


@cache
def redis_client() -> redis.Redis:
    """The process's Redis client with short timeouts: a push or a snapshot must not hang a
    request while Redis is away."""
    return redis.Redis.from_url(settings.REDIS_URL, **REDIS_CLIENT_OPTIONS)


@cache
def _take_script() -> Any:
    return redis_client().register_script(SEQ_TAKE_LUA)


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
    reply = _take_script()(keys=[seq_key(session_public_id)], args=[count, SEQ_TTL_S, "1"])
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


# Where this process's pushes go when it batches them (`push_route`); None: each goes at once.
_route: Callable[[str, dict[str, Any]], None] | None = None


def push_route(route: Callable[[str, dict[str, Any]], None] | None) -> None:
    """Send every push of this process through `route(session_public_id, payload)` from now
    on (the sideband worker's Pusher, while it runs), or each at once again (None).

    In the worker a turn's push comes from a writer and a call's end from the ORM thread: one
    route keeps a session's messages in the order they were made."""
    global _route
    _route = route


def push_route_current() -> Callable[[str, dict[str, Any]], None] | None:
    return _route


def push_to_session_public_id(
    *, session_public_id: str, payload: dict[str, Any]
) -> PushPosition | None:
    """Number `payload` and send it to the session's group; its position. None when it was
    handed to the process's route (numbered as its batch goes out) or when Redis was away
    (logged, never raised: what it announces is committed, and the page re-reads)."""
    route = _route
    if route is not None:
        route(session_public_id, payload)
        return None
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
    """Push `payload` (a dict with "type") to the session's live page (see
    `push_to_session_public_id`).

    Call it after the change it announces has committed (`transaction.on_commit`).
    """
    return push_to_session_public_id(session_public_id=str(session.public_id), payload=payload)
