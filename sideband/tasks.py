"""Celery tasks of the sideband worker (queue settings.SIDEBAND_QUEUE).

Run the worker with an I/O pool so one process holds many calls:
`celery -A config worker -Q sideband -P threads -c 8`. `call_own` only claims the call and
hands its socket to the process's owner (sideband.owner), then returns: a pool thread is
never held for the length of a call, so the pool size does not cap the number of calls.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app, shared_task
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import connection

from config.outages import BROKER_AWAY, DATABASE_AWAY, outage_line, periodic_tick
from sessions_app import upstream
from sessions_app.models import Call, Session
from sessions_app.services import sessions_close_idle
from sessions_app.voice import voice_hangup
from sideband import selectors, services
from sideband.owner.owner import SidebandOwner
from sideband.owner.process import owner_current, owner_get

logger = logging.getLogger(__name__)

# This process's Celery worker name (`celery@host`), once it is ready: the destination of the
# control messages that stop and resume its consumption of the sideband queue.
_worker_name: str | None = None


@worker_ready.connect
def _worker_named(sender: Any, **_: Any) -> None:
    global _worker_name
    _worker_name = sender.hostname


def _queue_consuming(consuming: bool) -> bool:
    """Resume (or stop) this worker's consumption of the sideband queue: while it refuses
    claims, the calls wait in the queue for another worker instead of bouncing off this one.
    Sent by the owner's lease thread only (see sideband.owner.lease); False: not sent (the
    worker is not ready yet)."""
    if _worker_name is None:
        return False
    control = current_app.control
    switch = control.add_consumer if consuming else control.cancel_consumer
    switch(settings.SIDEBAND_QUEUE, destination=[_worker_name], reply=False)
    return True


def _owner() -> SidebandOwner:
    owner = owner_get()
    owner.consumer_switch = _queue_consuming
    return owner


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
    owner = _owner()
    if owner.holds(call_id):
        logger.info("call_own: already owned here call=%s", call_id)
        return
    refusal = owner.claim_refusal()
    if refusal is not None:
        # Back to the queue, untouched, for a worker with room (this one stopped consuming).
        logger.warning("call_own: refused (%s), re-queued call=%s", refusal, call_id)
        call_own.apply_async(args=(call_id, generation), kwargs={"dispatch": dispatch})
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
            # Shutting down, or full: give the lease back for another worker.
            services.lease_release(owner=owner.owner_id, call_ids=[call_id])
            if not owner.closing:
                call_own.apply_async(args=(call_id, generation))
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


def call_own_dispatch(*, call_id: str, generation: int) -> None:
    """Hand a registered call to a sideband worker (sessions_app.hooks.call_dispatch, after
    commit). A lost dispatch is recovered by the reconciler (a live call without a lease), so a
    broker hiccup must not fail the registration: logged, never raised."""
    try:
        call_own.delay(call_id, generation)
    except BROKER_AWAY as exc:
        logger.warning(
            "call_own not dispatched, broker away (the reconciler dispatches it when it is "
            "back) call=%s generation=%s: %r",
            call_id,
            generation,
            exc,
        )
    except Exception:
        logger.exception("dispatch of call_own failed call=%s generation=%s", call_id, generation)


@shared_task(name="sideband.tasks.calls_reconcile", ignore_result=True, time_limit=60)
def calls_reconcile() -> int:
    """Celery beat: re-dispatch live calls whose owner went silent (lease expired).

    Postgres away: one line, and the next tick (SIDEBAND_RECONCILE_S) tries again."""
    dispatches: list[services.Dispatch] = []
    with periodic_tick("reconcile"):
        dispatches = services.calls_reconcile()
    for item in dispatches:
        if item.unclaimed:
            logger.warning("reconcile: call unclaimed past its grace call=%s", item.call_id)
        logger.info("reconcile: re-dispatching call=%s", item.call_id)
        call_own.apply_async(args=(item.call_id, item.generation), kwargs={"dispatch": item.token})
    return len(dispatches)


@shared_task(
    name="sideband.tasks.call_hangup",
    ignore_result=True,
    autoretry_for=(upstream.UpstreamError,),
    retry_backoff=1,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=10,
    time_limit=60,
)
def call_hangup(call_id: str) -> bool:
    """Hang the call up upstream (after we ended it: superseded, abandoned, session closed).

    Safe to run twice: a call the upstream no longer knows counts as hung up. Retried with
    backoff while the upstream is unreachable, rate-limiting or failing.
    """
    api = Call.objects.filter(call_id=call_id).values_list("session__api", flat=True).first()
    hung_up = voice_hangup(api=api or Session.Api.REALTIME, call_id=call_id)
    logger.info("call_hangup: call=%s %s", call_id, "hung up" if hung_up else "already gone")
    return hung_up


@shared_task(name="sideband.tasks.sessions_close_idle", ignore_result=True, time_limit=60)
def sessions_close_idle_task() -> int:
    """Celery beat: close the sessions nobody has used for SESSION_IDLE_CLOSE_S."""
    closed = 0
    with periodic_tick("idle sessions close"):
        closed = sessions_close_idle()
    return closed


@shared_task(name="sideband.tasks.turns_close_out", ignore_result=True, time_limit=60)
def turns_close_out() -> int:
    """Celery beat: spoken turns of ended calls that never got their transcript."""
    closed = 0
    with periodic_tick("turns close-out"):
        closed = services.turns_close_out()
    return closed


@worker_shutdown.connect
def _owner_shutdown(**_: Any) -> None:
    """Warm shutdown (SIGTERM): close the sockets cleanly and hand the calls back."""
    owner = owner_current()
    if owner is None:
        return
    released = owner.shutdown(handback=True)
    try:
        for call_id, generation in released:
            call_own.apply_async(args=(call_id, generation))
    except BROKER_AWAY as exc:
        # The leases were released: the reconciler recovers the calls once the broker is back.
        logger.warning("hand-back not dispatched, broker away: %s", outage_line(exc))
