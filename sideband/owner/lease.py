"""The lease thread: which calls this process still owns, and keeping their leases.

Every SIDEBAND_POLL_S one query tells which calls the process still owns (a newer generation,
an ended call or a lost lease closes the socket within ~1 s); every SIDEBAND_HEARTBEAT_S one
UPDATE extends every held lease. The same tick paces the garbage collector, checks admission
and exports the process's figures.

The lease thread is also the only sender of the queue-consumer switch (Celery's
`add_consumer` / `cancel_consumer`): other threads only change `owner.admitting` and wake it.
One sender means two switches never cross; sending the wanted state again every
CONSUMER_REAPPLY_S means a lost or overtaken control message heals.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection

from config.outages import BROKER_AWAY
from sideband import selectors, services
from sideband.owner.admission import consumer_switch_due
from sideband.owner.gc_pacing import CollectorPacing
from sideband.owner.stats import peers_update, stats_export
from sideband.owner.upkeep import calls_abandoned_end, calls_upkeep

if TYPE_CHECKING:
    from sideband.owner.owner import SidebandOwner

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class ConsumerApplied:
    """The queue-consumer state the lease thread last sent (None: none yet), and when."""

    consuming: bool | None = None
    at: float = 0.0


def lease_loop(owner: SidebandOwner, stopped: threading.Event) -> None:
    """The lease thread's body: tick every SIDEBAND_POLL_S until `stopped` is set; between
    ticks, send the consumer switch as soon as `owner.admission_changed` is set."""
    last_tick = time.monotonic()
    last_extend = last_count = 0.0
    collector = CollectorPacing(full_every_s=settings.SIDEBAND_GC_FULL_S)
    applied = ConsumerApplied()
    while True:
        owner.admission_changed.wait(
            max(0.0, last_tick + settings.SIDEBAND_POLL_S - time.monotonic())
        )
        # Cleared before `admitting` is read below: a change after this wakes the next turn.
        owner.admission_changed.clear()
        if stopped.is_set():
            break
        try:
            now = time.monotonic()
            if now - last_tick >= settings.SIDEBAND_POLL_S:
                last_tick = now
                collector.tick()
                extend = now - last_extend >= settings.SIDEBAND_HEARTBEAT_S
                lease_tick(owner, extend=extend)
                if extend:
                    last_extend = now
                peers_update(owner)
                owner.admission_check()
                if now - last_count >= settings.SIDEBAND_RECONCILE_S:
                    owner.stats.unclaimed = selectors.calls_unclaimed_count()
                    last_count = now
                upkeep_tick(owner)
                stats_export(owner)
            consumer_apply(owner, applied)
        except (OperationalError, InterfaceError) as exc:
            # Postgres restarting, a connection killed: the next tick connects again.
            logger.warning("sideband lease tick: database unavailable (%s)", exc)
            connection.close()
        except Exception:
            logger.exception("sideband lease tick failed")
            close_old_connections()
            connection.close()
    connection.close()


def upkeep_tick(owner: SidebandOwner) -> None:
    """The held calls' upkeep (sideband.owner.upkeep): abandoned calls end here, the rest runs
    on the I/O loop, which owns the capture state."""
    calls_abandoned_end(owner)
    owner.io.call_soon_threadsafe(calls_upkeep, owner)


def consumer_apply(owner: SidebandOwner, applied: ConsumerApplied) -> None:
    """Send the queue-consumer switch `owner.admitting` wants, when due (see
    `consumer_switch_due`); `applied` records what was sent. The lease thread only."""
    if owner.consumer_switch is None or owner.closing:
        return
    now = time.monotonic()
    consuming = consumer_switch_due(
        admitting=owner.admitting, applied=applied.consuming, applied_age_s=now - applied.at
    )
    if consuming is None:
        return
    try:
        sent = owner.consumer_switch(consuming)
    except BROKER_AWAY as exc:
        # Not sent: tried again next tick, as any switch not known to hold.
        logger.warning("sideband: queue consumer switch not sent, broker away: %s", exc)
        return
    except Exception:
        logger.exception("sideband: could not switch the queue consumer")
        return
    if sent:
        applied.consuming, applied.at = consuming, now


def lease_tick(owner: SidebandOwner, *, extend: bool = True) -> None:
    """Check (and extend) every lease; close the sockets of calls this process lost."""
    conns = {c.call_id: c for c in owner.connections() if not c.stopping}
    if not conns:
        return
    kept = services.leases_heartbeat(owner=owner.owner_id, call_ids=conns, extend=extend)
    for call_id, conn in conns.items():
        if call_id in kept:
            continue
        reason = services.call_lost_reason(call_id=call_id, owner=owner.owner_id)
        logger.info("sideband lost call=%s reason=%s", call_id, reason or "-")
        if reason is not None:
            owner.end(conn, reason, "")
        else:
            conn.stop()
