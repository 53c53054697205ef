"""The synchronous driver, on Django's connection: `batch_run_sync` (many calls' records in one
transaction) and `turns_write` (one call's), plus the turn-by-turn path every write falls back
to (embedded mode, a recovered item placed between two turns, a refused batch)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime

from django.db import connection, transaction
from django.db.models import Exists, F
from django.utils import timezone

from sessions_app.models import Call, Session, TranscriptTurn
from sideband.capture import Op, TurnUpsert
from sideband.transcript.outcomes import REFUSED, Outcome, PlanOutcome, Refused, fenced
from sideband.transcript.placement import Placer
from sideband.transcript.plan import Plan, batch_plan
from sideband.transcript.records import items_named, turn_change, turn_new, upserts_of
from sideband.transcript.sql import Rows

logger = logging.getLogger(__name__)


def turns_write(*, call: Call, ops: Sequence[Op]) -> list[TranscriptTurn]:
    """Upsert the TurnUpserts among `ops` in one fenced transaction (`batch_run_sync` of one
    call).

    Returns the turns created or changed, in the order of `ops` (for the live push); an
    unchanged record writes nothing. TurnDelta, ItemMissing and CallEnded are the worker's.
    Raises Fenced (having written nothing) when `call` is no longer the session's current
    one, Refused when the database refused every record.
    """
    (outcome,) = batch_run_sync(writes=[(call, ops)])
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def batch_run_sync(*, writes: Sequence[tuple[Call, Sequence[Op]]]) -> list[Outcome]:
    """Many calls' records in one transaction, at a cost that does not grow with them.

    Per batch (Postgres): the statements of `batch_plan`, run on Django's connection: one
    fences (and row-locks the sessions of) every call, one reads the turns the records refer
    to, one the sessions' last positions, one upserts every new or changed turn (`INSERT ...
    ON CONFLICT`), whatever the number of calls. A call whose new turn must go between two
    stored ones (a recovered item: a position query, maybe a renumbering) takes the
    turn-by-turn path, in a savepoint of its own.

    Returns, per write and in order, the turns created or changed, or the Fenced error
    (nothing of that call written), or Refused when the database refused every record of
    that call (a record it refuses costs only itself: the call's others, and the other calls'
    writes, stand). Call's generation in memory is the fencing number. Run inside the
    caller's transaction or its own.
    """
    now = timezone.now()
    outcomes: list[Outcome] = []
    with transaction.atomic():
        planned: list[PlanOutcome]
        if connection.vendor == "postgresql":
            planned = _plan_run(batch_plan(writes=writes, now=now))
        else:  # embedded mode (SQLite, one process, a few calls): fenced one by one
            planned = [
                (None if _fence_one(call) else fenced(call)) if upserts_of(ops) else []
                for call, ops in writes
            ]
        for (call, ops), outcome in zip(writes, planned, strict=True):
            if outcome is not None:
                outcomes.append(outcome)
                continue
            upserts = upserts_of(ops)
            try:
                with transaction.atomic():
                    outcomes.append(_turn_by_turn(call=call, upserts=upserts, now=now))
            except REFUSED:
                outcomes.append(_record_by_record(call=call, upserts=upserts, now=now))
    return outcomes


def _plan_run(plan: Plan) -> list[PlanOutcome]:
    """Run `batch_plan` on Django's connection (inside the caller's transaction); a round
    that may be refused in a savepoint, so a refusal undoes that round only."""
    try:
        statements = next(plan)
    except StopIteration as stop:  # nothing to write
        return stop.value
    with connection.cursor() as cursor:
        while True:
            rows: Rows = []
            savepoint = any(statement.refusable for statement in statements)
            try:
                with transaction.atomic() if savepoint else contextlib.nullcontext():
                    for statement in statements:
                        cursor.execute(statement.sql, statement.params)
                        rows.append(cursor.fetchall())
            except REFUSED as exc:
                refused: Exception | None = exc
            else:
                refused = None
            try:
                statements = plan.throw(refused) if refused else plan.send(rows)
            except StopIteration as stop:
                return stop.value


def _fence_one(call: Call) -> bool:
    """The portable fence of one call (embedded mode): a conditional no-op UPDATE of the
    session row, which locks it; False when the call is fenced off."""
    live = Call.objects.filter(pk=call.pk, ended_at__isnull=True)
    matched = (
        Session.objects.filter(
            pk=call.session_id,
            current_generation=call.generation,
            status=Session.Status.ACTIVE,
        )
        .filter(Exists(live))
        .update(current_generation=F("current_generation"))
    )
    return matched > 0


def _turn_by_turn(*, call: Call, upserts: list[TurnUpsert], now: datetime) -> list[TranscriptTurn]:
    """One call's records, turn by turn (the call is fenced already): placement may query
    positions and renumber the session."""
    rows = {
        turn.item_id: turn
        # With their calls: the live push shows each turn's call id.
        for turn in TranscriptTurn.objects.select_related("call").filter(
            session_id=call.session_id, item_id__in=items_named(upserts)
        )
    }
    placer = Placer(session_id=call.session_id, rows=rows)
    changed: dict[str, TranscriptTurn] = {}
    for op in upserts:
        turn = rows.get(op.item_id)
        if turn is None:
            turn = turn_new(call=call, op=op, position=placer.position_for(op), now=now)
            turn.save(force_insert=True)
            rows[op.item_id] = turn
            changed[op.item_id] = turn
            continue
        fields = turn_change(turn=turn, op=op, now=now)
        if fields:
            turn.save(update_fields=[*fields, "updated_at"])
            changed[op.item_id] = turn
    return list(changed.values())


def _record_by_record(*, call: Call, upserts: list[TurnUpsert], now: datetime) -> Outcome:
    """One call's records one by one, each in a savepoint of its own, after the database
    refused them together: a refused record is logged (its item id and the error, never its
    text) and costs only itself. Refused when none could be written."""
    written: dict[str, TranscriptTurn] = {}
    refused: Exception | None = None
    for op in upserts:
        try:
            with transaction.atomic():
                written.update(
                    (turn.item_id, turn) for turn in _turn_by_turn(call=call, upserts=[op], now=now)
                )
        except REFUSED as exc:
            refused = exc
            logger.error(
                "transcript record refused call=%s item=%r: %s: %s",
                call.call_id,
                op.item_id[:80],
                type(exc).__name__,
                exc,
            )
    if refused is not None and not written:
        return Refused(call, refused)
    return list(written.values())
