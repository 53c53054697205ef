"""Whether this process may claim another call: its health against its configured capacity.

A process past `SIDEBAND_MAX_CALLS` calls, or whose I/O loop lags, or whose oldest unwritten
record has waited, more than `SIDEBAND_MAX_LAG_S`, claims no new call: the call stays in the
queue (or comes back through the reconciler) for another process, and what this process
already holds keeps being written. Overload is refused, never absorbed as unbounded lag.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

# Past a limit a process stops claiming; it claims again once under it with this margin (a lag
# below half the threshold), so it does not flap at the edge.
RESUME_FRACTION = 0.5


@dataclass(frozen=True, slots=True)
class Health:
    calls_held: int
    loop_lag_s: float
    oldest_unwritten_s: float
    # Calls held by the least loaded other live process; None: no other process is known.
    least_peer_held: int | None = None


def claim_refusal(health: Health, *, resuming: bool = False) -> str | None:
    """Why this process must not claim another call now ("capacity", "share", "loop_lag",
    "write_lag"), or None. `resuming`: the process is not claiming; the lag limits then
    hold with the margin of RESUME_FRACTION."""
    max_lag_s = settings.SIDEBAND_MAX_LAG_S * (RESUME_FRACTION if resuming else 1.0)
    if health.calls_held >= settings.SIDEBAND_MAX_CALLS:
        return "capacity"
    if (
        health.least_peer_held is not None
        and health.calls_held >= health.least_peer_held + settings.SIDEBAND_SHARE_SLACK
    ):
        # Calls arrive quiet (a call's load comes later): without this, the first process to
        # read the queue takes a burst of them, and lags only once they all speak.
        return "share"
    if health.loop_lag_s > max_lag_s:
        return "loop_lag"
    if health.oldest_unwritten_s > max_lag_s:
        return "write_lag"
    return None


# The lease thread sends the queue-consumer switch again this often even when nothing changed:
# a control message lost or overtaken then costs at most this long.
CONSUMER_REAPPLY_S = 5.0


def consumer_switch_due(
    *, admitting: bool, applied: bool | None, applied_age_s: float
) -> bool | None:
    """The queue-consumer switch to send now: True (consume), False (stop consuming) or None
    (nothing). `admitting` is the wanted state, `applied` the one last sent (None: never sent),
    `applied_age_s` how long ago it was sent. A change is sent at once; an unchanged state is
    sent again every CONSUMER_REAPPLY_S (both switches are idempotent in the worker)."""
    if applied is None or applied != admitting or applied_age_s >= CONSUMER_REAPPLY_S:
        return admitting
    return None
