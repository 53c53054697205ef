"""Celery tasks of the sideband worker (queue settings.SIDEBAND_QUEUE).

Run the worker with an I/O pool so one process holds many calls:
`celery -A config worker -Q sideband -P threads -c 8`. `call_own` only claims the call and
hands its socket to the process's owner (sideband.owner), then returns: a pool thread is never
held for the length of a call, so the pool size does not cap the number of calls.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.signals import worker_shutdown
from django.db import connection

from config.outages import DATABASE_AWAY, outage_line
from sideband import selectors, services

logger = logging.getLogger(__name__)


@shared_task(
    name="sideband.tasks.call_own",
    ignore_result=True,
    acks_late=False,
    soft_time_limit=60,
    time_limit=90,
)
def call_own(call_id: str, generation: int, dispatch: str = "") -> None:
    """Own the sideband WebSocket of call `call_id` (generation = its fencing number).

    Safe to run twice: the second run finds the lease taken (or the call held by this very
    process) and does nothing. `dispatch` is the reconciler's reservation token.
    """
    from sideband.owner import owner_get

    owner = owner_get()
    if owner.holds(call_id):
        logger.info("call_own: already owned here call=%s", call_id)
        return
    try:
        claimed = services.lease_claim(
            call_id=call_id, generation=generation, owner=owner.owner_id, dispatch=dispatch
        )
        if not claimed:
            logger.info("call_own: not claimed (duplicate, stale or ended) call=%s", call_id)
            return
        spec = selectors.call_spec_load(call_id=call_id)
        if spec is None:
            logger.warning("call_own: call vanished call=%s", call_id)
            return
        if not owner.attach(spec):
            # This process is shutting down: give the lease back for another worker.
            services.lease_release(owner=owner.owner_id, call_ids=[call_id])
    except DATABASE_AWAY as exc:
        # Not claimed: the reconciler dispatches the call again once Postgres is back.
        logger.warning(
            "call_own: database away, not claimed call=%s: %s",
            call_id,
            outage_line(exc),
        )
    finally:
        # Pool threads do not keep a DB connection between calls.
        connection.close()


@shared_task(name="sideband.tasks.calls_reconcile", ignore_result=True, time_limit=60)
def calls_reconcile() -> int:
    """Celery beat: re-dispatch live calls whose owner went silent (lease expired).

    Postgres away: one line, and the next tick (SIDEBAND_RECONCILE_S) tries again."""
    try:
        dispatches = services.calls_reconcile()
    except DATABASE_AWAY as exc:
        logger.warning("reconcile skipped, database away: %s", outage_line(exc))
        return 0
    finally:
        connection.close()
    for item in dispatches:
        logger.info("reconcile: re-dispatching call=%s", item.call_id)
        call_own.apply_async(args=(item.call_id, item.generation), kwargs={"dispatch": item.token})
    return len(dispatches)


@worker_shutdown.connect
def _owner_shutdown(**_: Any) -> None:
    """Warm shutdown (SIGTERM): close the sockets cleanly and hand the calls back."""
    from sideband.owner import owner_current

    owner = owner_current()
    if owner is not None:
        owner.shutdown(handback=True)
