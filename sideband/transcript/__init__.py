"""The fenced transcript writer: applies capture operations (sideband/capture/) to Postgres.

Every write is conditional on the call's generation being its session's current one (the
fencing number, Kleppmann's fencing tokens): a sideband that lost its call to a newer one
(renew) or whose call ended cannot write, however late its events arrive. The check is a
conditional UPDATE of the session row, which also row-locks the session for the rest of the
transaction, so a generation bump (a new call registering) serialises behind an in-flight
write, and two writers of one session never interleave their position arithmetic.

Positions are sparse (POSITION_STEP apart) so a turn can be placed between two others (a
recovered item); when there is no room left the session's turns are renumbered in the same
transaction, and the profiles' `last_position` moves with the turn it pointed at.

A record the database refuses (a constraint, a value it cannot store) costs only that record:
a refused batch is written again call by call, and a refused call record by record, so
another call's or session's writes always stand.

Modules, each one concern:

- `plan`: `batch_plan`, the set-based batch write as the statements it runs, a generator
  with no I/O of its own (two rounds: the fence and two reads, then one upsert);
- `run_sync`: `batch_run_sync`, the plan on Django's connection plus the turn-by-turn path
  (embedded mode, a recovered item, a refused batch); `turns_write`, one call's records;
- `run_async`: `batch_run_async`, the plan pipelined on the worker's asyncio connection;
- `connect`: that connection (`connect_params`, `connect_async`);
- `sql`: the statements' text (fence, reads, upsert) and the rows they return;
- `records`: a record as a turn in memory (new, changed), what a write returns;
- `placement`: position arithmetic for new turns, renumbering when there is no room;
- `outcomes`: what a call's write comes to (its turns, `Fenced`, `Refused`) and `REFUSED`.

The read that seeds a capture from stored turns is `sideband.selectors.state_load`.
"""

from __future__ import annotations

from sideband.transcript.connect import connect_async, connect_params
from sideband.transcript.outcomes import REFUSED, Fenced, Outcome, PlanOutcome, Refused
from sideband.transcript.placement import POSITION_STEP
from sideband.transcript.plan import batch_plan
from sideband.transcript.run_async import batch_run_async
from sideband.transcript.run_sync import batch_run_sync, turns_write

__all__ = [
    "POSITION_STEP",
    "REFUSED",
    "Fenced",
    "Outcome",
    "PlanOutcome",
    "Refused",
    "batch_plan",
    "batch_run_async",
    "batch_run_sync",
    "connect_async",
    "connect_params",
    "turns_write",
]
