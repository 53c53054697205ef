"""The plan of a batch: the set-based write of many calls' records as the statements it runs.

`batch_plan` is a generator with no I/O of its own: it yields rounds of statements, the
driver sends each round's rows back (all inside one transaction) and gets the outcomes when
the generator returns; a refused upsert is thrown back in (`generator.throw`) and undone. Two
drivers run it: `batch_run_sync` (sideband.transcript.run_sync, Django's connection) and
`batch_run_async` (sideband.transcript.run_async, the worker's asyncio connection, each round
pipelined: one round trip).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from datetime import datetime

from sessions_app.models import Call, TranscriptTurn
from sideband.capture import Op, TurnUpsert
from sideband.transcript.outcomes import REFUSED, PlanOutcome, fenced
from sideband.transcript.placement import NeedsQuery, Placer
from sideband.transcript.records import in_op_order, turn_change, turn_new, upserts_of
from sideband.transcript.sql import (
    Round,
    Rows,
    fence_statement,
    last_positions_statement,
    referenced_rows,
    referenced_statement,
    upsert_statement,
)

Plan = Generator[Round, Rows, list[PlanOutcome]]


def batch_plan(*, writes: Sequence[tuple[Call, Sequence[Op]]], now: datetime) -> Plan:
    """The set-based batch write in two rounds of statements that do not wait for each
    other's rows: the fence and the two reads, then the upsert. Postgres only.

    Per write, in order: the turns created or changed, Fenced (nothing of that call
    written), or None: the call's records are left to the turn-by-turn path (a new turn that
    goes between two stored ones needs a position query; or the database refused the upsert).
    """
    outcomes: list[PlanOutcome] = [[] for _ in writes]
    todo = {i: (call, upserts_of(ops)) for i, (call, ops) in enumerate(writes)}
    todo = {i: work for i, work in todo.items() if work[1]}
    if not todo:
        return outcomes
    # The reads do not wait for the fence: a fenced call's rows are read and not used.
    fence, referenced, last_positions = yield [
        fence_statement([call for call, _ in todo.values()]),
        referenced_statement([(call.session_id, ups) for call, ups in todo.values()]),
        last_positions_statement({call.session_id for call, _ in todo.values()}),
    ]
    live = {row[0] for row in fence}
    for i, (call, _) in list(todo.items()):
        if call.pk not in live:
            outcomes[i] = fenced(call)
            del todo[i]
    rows = referenced_rows(referenced)
    lasts = {session_id: last for session_id, last in last_positions if last is not None}
    planned: dict[int, tuple[list[TranscriptTurn], list[TranscriptTurn]]] = {}
    for i, (call, upserts) in todo.items():
        placer = Placer(
            session_id=call.session_id,
            rows=rows.setdefault(call.session_id, {}),
            last=lasts.get(call.session_id, 0),
            may_query=False,
        )
        try:
            planned[i] = _call_turns(call=call, upserts=upserts, placer=placer, now=now)
        except NeedsQuery:
            outcomes[i] = None
    turns = [turn for new, changed in planned.values() for turn in new + changed]
    if turns:
        try:
            (upserted,) = yield [upsert_statement(turns)]
        except REFUSED:
            # A record the database refuses (a constraint, a value it cannot store): each
            # call is written on its own, so the others' writes stand.
            for i in planned:
                outcomes[i] = None
            return outcomes
        ids = {(session_id, item_id): pk for pk, session_id, item_id in upserted}
        for turn in turns:
            turn.pk = ids[(turn.session_id, turn.item_id)]
    for i, (new, changed) in planned.items():
        outcomes[i] = in_op_order(todo[i][1], new + changed)
    return outcomes


def _call_turns(
    *, call: Call, upserts: list[TurnUpsert], placer: Placer, now: datetime
) -> tuple[list[TranscriptTurn], list[TranscriptTurn]]:
    """The new and the changed turns of one call's records, in memory (placer.rows: the
    session's referenced turns, updated with the new ones). Raises NeedsQuery when a new
    turn cannot be placed from what was read."""
    rows = placer.rows
    new: dict[str, TranscriptTurn] = {}
    changed: dict[str, TranscriptTurn] = {}
    added: list[str] = []
    try:
        for op in upserts:
            turn = rows.get(op.item_id)
            if turn is None:
                turn = turn_new(call=call, op=op, position=placer.position_for(op), now=now)
                rows[op.item_id] = turn
                added.append(op.item_id)
                new[op.item_id] = turn
            elif turn_change(turn=turn, op=op, now=now) and op.item_id not in new:
                changed[op.item_id] = turn
    except NeedsQuery:
        for item_id in added:  # the turn-by-turn path starts again from the database
            del rows[item_id]
        raise
    return list(new.values()), list(changed.values())
