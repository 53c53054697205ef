"""What a held call needs beside reading its socket: no hole, no orphan.

- **Gap fill from the page's hints.** A recovered item whose predecessor the upstream does not
  name (`unanchored`) is looked up in the page's hints (sideband.hints), and the walk back
  continues with `conversation.item.retrieve` (sideband.capture.hints); hints may reach the
  server after the gap is seen, so the lookup is tried again every tick, a bounded number of
  times.
- **Spoken turns that never get their transcript.** One still waiting after
  SIDEBAND_TRANSCRIPT_WAIT_S is re-read with `conversation.item.retrieve` (the upstream's item
  carries its transcript once done); after as long again it is closed out as
  `untranscribed`.
- **Abandoned calls.** A call with no upstream event and no page on its session's live socket
  for SIDEBAND_IDLE_S is ended `abandoned` (the end hangs it up upstream:
  sideband.services.calls_end), freeing its socket. The upstream does not tell a sideband when
  the browser's WebRTC connection goes (openai-agents-js #684), so nothing else would.

The per-call parts run on the I/O loop (they touch the capture state); the abandoned check runs
on the lease thread (it reads the page presence from the cache).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings

from sessions_app import upstream
from sideband import end_reasons
from sideband.capture import (
    ItemMissing,
    Op,
    TurnUpsert,
    hints_apply,
    hints_trailing,
    retrieve_event_id,
    transcript_close_out,
)
from sideband.hints import hints_load
from sideband.presence import pages_last_seen

if TYPE_CHECKING:
    from sideband.owner.connection import CallConnection
    from sideband.owner.owner import SidebandOwner

logger = logging.getLogger(__name__)

# How many ticks (SIDEBAND_POLL_S apart) a gap waits for the page's hints.
HINT_LOOKUPS_MAX = 20
# After a reconnect, the hints are read this many times (a tick apart, from a second after)
# for items missed at the end of the gap, which nothing later names.
TRAILING_LOOKUPS = 3
TRAILING_AFTER_S = 1.0


@dataclass
class CallUpkeep:
    """One call's upkeep state (on the I/O loop)."""

    last_event_at: float = field(default_factory=time.monotonic)
    # Spoken turns waiting for their transcript: item id -> since when (monotonic).
    awaiting_since: dict[str, float] = field(default_factory=dict)
    reread: set[str] = field(default_factory=set)
    hint_lookups: int = 0
    looking_up: bool = False
    reconnected_at: float = 0.0
    trailing_lookups: int = 0

    def reconnected(self, now: float) -> None:
        self.reconnected_at = now
        self.trailing_lookups = TRAILING_LOOKUPS
        self.hint_lookups = 0

    def seeded(self, awaiting: Iterable[str], now: float) -> None:
        """Turns loaded already waiting (a takeover, a reconnect) wait from now."""
        for item_id in awaiting:
            self.awaiting_since.setdefault(item_id, now)


def retrieve_events(ops: Iterable[Op]) -> list[dict[str, Any]]:
    """The `conversation.item.retrieve` client events for the capture's ItemMissing ops."""
    return [
        upstream.item_retrieve_event(op.item_id, event_id=retrieve_event_id(op.item_id))
        for op in ops
        if isinstance(op, ItemMissing)
    ]


def after_frame(conn: CallConnection, upserts: list[TurnUpsert], now: float) -> None:
    """Note what a frame changed (on the loop)."""
    upkeep = conn.upkeep
    upkeep.last_event_at = now
    state = conn.spec.realtime_state
    if state is None:
        return
    for op in upserts:
        rec = state.items.get(op.item_id)
        if rec is not None and rec.awaiting_transcript:
            upkeep.awaiting_since.setdefault(op.item_id, now)
        else:
            upkeep.awaiting_since.pop(op.item_id, None)
    if state.unanchored:
        _hints_lookup_start(conn)


def _hints_lookup_start(conn: CallConnection, *, trailing: bool = False) -> None:
    upkeep = conn.upkeep
    if upkeep.looking_up or conn.stopping:
        return
    if trailing:
        upkeep.trailing_lookups -= 1
    elif upkeep.hint_lookups >= HINT_LOOKUPS_MAX:
        return
    else:
        upkeep.hint_lookups += 1
    upkeep.looking_up = True
    conn.owner.spawn(_hints_lookup(conn, trailing=trailing))


async def _hints_lookup(conn: CallConnection, *, trailing: bool) -> None:
    """Read the page's hints for the call and ask for what they name in the gap (with
    `trailing`, also items missed at its end)."""
    try:
        load = functools.partial(hints_load, call_id=conn.call_id)
        hints = await asyncio.get_running_loop().run_in_executor(None, load)
        apply = hints_trailing if trailing else hints_apply
        events = retrieve_events(apply(conn.spec.state, hints))
        if events:
            asked = ",".join(str(e["item_id"]) for e in events)
            logger.info("gap fill: asked for hinted items %s call=%s", asked, conn.call_id)
            await conn.send_events(events)
    except Exception:
        logger.exception("gap fill failed call=%s", conn.call_id)
    finally:
        conn.upkeep.looking_up = False


def calls_upkeep(owner: SidebandOwner) -> None:
    """Every tick, on the I/O loop: hints still awaited, transcripts overdue."""
    now = time.monotonic()
    wait = settings.SIDEBAND_TRANSCRIPT_WAIT_S
    for conn in owner.connections():
        state = conn.spec.realtime_state
        if conn.stopping or state is None:
            continue
        upkeep = conn.upkeep
        if upkeep.trailing_lookups and now - upkeep.reconnected_at >= TRAILING_AFTER_S:
            _hints_lookup_start(conn, trailing=True)
        elif state.unanchored:
            _hints_lookup_start(conn)
        rereads: list[str] = []
        upserts: list[TurnUpsert] = []
        for item_id, since in list(upkeep.awaiting_since.items()):
            rec = state.items.get(item_id)
            if rec is None or not rec.awaiting_transcript:
                del upkeep.awaiting_since[item_id]
            elif now - since >= 2 * wait:
                reason = f"not transcribed: no transcript within {2 * wait:g} s"
                ops = transcript_close_out(state, item_id, reason)
                upserts.extend(op for op in ops if isinstance(op, TurnUpsert))
                del upkeep.awaiting_since[item_id]
            elif now - since >= wait and item_id not in upkeep.reread:
                upkeep.reread.add(item_id)
                rereads.append(item_id)
        if rereads:
            conn.owner.spawn(conn.send_events(retrieve_events(ItemMissing(i) for i in rereads)))
        if upserts:
            logger.info("closed out %d untranscribed turns call=%s", len(upserts), conn.call_id)
            owner.write(conn, upserts, now)


def calls_abandoned_end(owner: SidebandOwner) -> int:
    """On the lease thread: end the calls nobody is on any more; how many."""
    idle_s = settings.SIDEBAND_IDLE_S
    now = time.monotonic()
    idle = [
        c for c in owner.connections() if not c.stopping and now - c.upkeep.last_event_at >= idle_s
    ]
    if not idle:
        return 0
    seen = pages_last_seen(session_public_ids={c.spec.session_public_id for c in idle})
    wall = time.time()
    ended = 0
    for conn in idle:
        page_at = seen.get(conn.spec.session_public_id)
        if page_at is not None and wall - page_at < idle_s:
            continue
        logger.info("call abandoned call=%s", conn.call_id)
        message = f"no upstream event and no page for {idle_s:g} s"
        owner.end(conn, end_reasons.ABANDONED, message)
        ended += 1
    return ended
