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
a refused batch is written again call by call, and a refused call record by record
(`_apply_each`), so another call's or session's writes always stand.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from django.db import (
    DEFAULT_DB_ALIAS,
    DataError,
    IntegrityError,
    connection,
    connections,
    transaction,
)
from django.db.models import Exists, F, Max, QuerySet
from django.utils import timezone

from extraction.models import Profile
from sessions_app.models import Call, Session, TranscriptTurn
from sideband.capture import FINAL_STATUSES, CaptureState, Op, TurnUpsert

logger = logging.getLogger(__name__)

POSITION_STEP = 1024

# What the database (or the driver, before sending) refuses for a record: a constraint, a value
# a column cannot hold. Django raises its own classes, the asyncio connection psycopg's; text
# the capture made storable (sessions_app.storable) never meets the last three.
REFUSED = (IntegrityError, DataError, psycopg.IntegrityError, psycopg.DataError, UnicodeEncodeError)

_UPDATABLE = (
    "role",
    "text",
    "status",
    "status_reason",
    "name",
    "arguments",
    "tool_call_id",
    "output",
    "input_mode",
)


class Fenced(Exception):
    """The write was refused: a newer call of the session took over, or this call ended."""


class Refused(Exception):
    """The database refused every record of a call's write (nothing of it was written)."""

    def __init__(self, call: Call, cause: Exception) -> None:
        super().__init__(f"call {call.call_id}: {type(cause).__name__}: {cause}")
        self.cause = cause


Outcome = list[TranscriptTurn] | Fenced | Refused


def turns_apply(*, call: Call, ops: Sequence[Op]) -> list[TranscriptTurn]:
    """Upsert the TurnUpserts among `ops` in one fenced transaction.

    Returns the turns created or changed, in the order of `ops` (for the live push); an
    unchanged record writes nothing. TurnDelta, ItemMissing and CallEnded are the worker's.
    Raises Fenced (having written nothing) when `call` is no longer the session's current one.
    """
    (outcome,) = turns_apply_batch(writes=[(call, ops)])
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def turns_apply_batch(*, writes: Sequence[tuple[Call, Sequence[Op]]]) -> list[Outcome]:
    """`turns_apply` for many calls in one transaction, at a cost that does not grow with them.

    Per batch (Postgres): one statement fences (and row-locks the sessions of) every call, one
    reads the turns the records refer to, one the sessions' last positions, one upserts every
    new or changed turn (`INSERT ... ON CONFLICT`), whatever the number of calls: the
    statements of `batch_steps`. A call whose new turn must go between two stored ones (a
    recovered item: a position query, maybe a renumbering) takes the per-turn path, in a
    savepoint of its own.

    Returns, per write and in order, the turns created or changed, or the Fenced error
    (nothing of that call written), or Refused when the database refused every record of
    that call (a record it refuses costs only itself: the call's others, and the other calls'
    writes, stand). Call's generation in memory is the fencing number. Run inside the
    caller's transaction or its own.
    """
    now = timezone.now()
    outcomes: list[Outcome] = []
    with transaction.atomic():
        if connection.vendor == "postgresql":
            batched = _steps_run(batch_steps(writes=writes, now=now))
        else:  # embedded mode (SQLite, one process, a few calls): fenced one by one
            batched = [
                (None if _fence_one(call) else _fenced(call)) if _upserts(ops) else []
                for call, ops in writes
            ]
        for (call, ops), outcome in zip(writes, batched, strict=True):
            if outcome is not None:
                outcomes.append(outcome)
                continue
            upserts = _upserts(ops)
            try:
                with transaction.atomic():
                    outcomes.append(_apply_one(call=call, upserts=upserts, now=now))
            except REFUSED:
                outcomes.append(_apply_each(call=call, upserts=upserts, now=now))
    return outcomes


def _apply_each(*, call: Call, upserts: list[TurnUpsert], now: datetime) -> Outcome:
    """One call's records one by one, each in a savepoint of its own, after the database
    refused them together: a refused record is logged (its item id and the error, never its
    text) and costs only itself. Refused when none could be written."""
    written: dict[str, TranscriptTurn] = {}
    refused: Exception | None = None
    for op in upserts:
        try:
            with transaction.atomic():
                written.update(
                    (turn.item_id, turn) for turn in _apply_one(call=call, upserts=[op], now=now)
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


def _fenced(call: Call) -> Fenced:
    return Fenced(f"call {call.call_id} (generation {call.generation}) is fenced off")


def _upserts(ops: Sequence[Op]) -> list[TurnUpsert]:
    return [op for op in ops if isinstance(op, TurnUpsert)]


@dataclass(frozen=True)
class Statement:
    """One SQL statement of `batch_steps`, for whichever driver runs them (sync or async)."""

    sql: str
    params: list[Any]
    # A write the database may refuse (a constraint): the synchronous driver runs its round
    # in a savepoint.
    refusable: bool = False


# A round of statements the driver may send together (pipelined), and their rows back.
Round = list[Statement]
Rows = list[list[tuple[Any, ...]]]

# None: the call is live but its writes were not made here: write them turn by turn with
# turns_apply (a position query is needed, or the database refused the batch).
BatchOutcome = list[TranscriptTurn] | Fenced | None


def batch_steps(
    *, writes: Sequence[tuple[Call, Sequence[Op]]], now: datetime
) -> Generator[Round, Rows, list[BatchOutcome]]:
    """The set-based batch write as the statements it runs (no I/O of its own), in two rounds
    of statements that do not wait for each other's rows: the fence and the two reads, then
    the upsert. The driver sends each round's rows back, all inside one transaction, and
    gets the outcomes; a refused upsert is thrown back in (`generator.throw`) and undone.

    Postgres only. The same steps run on Django's connection (`turns_apply_batch`) and,
    pipelined, on the worker's asyncio connection (`batch_run_async`): two round trips for
    any number of calls.
    """
    outcomes: list[BatchOutcome] = [[] for _ in writes]
    todo = {i: (call, _upserts(ops)) for i, (call, ops) in enumerate(writes)}
    todo = {i: work for i, work in todo.items() if work[1]}
    if not todo:
        return outcomes
    # The reads do not wait for the fence: a fenced call's rows are read and not used.
    fence, referenced, last_positions = yield [
        _fence_statement([call for call, _ in todo.values()]),
        _referenced_statement([(call.session_id, ups) for call, ups in todo.values()]),
        _last_positions_statement({call.session_id for call, _ in todo.values()}),
    ]
    live = {row[0] for row in fence}
    for i, (call, _) in list(todo.items()):
        if call.pk not in live:
            outcomes[i] = _fenced(call)
            del todo[i]
    rows = _referenced_rows(referenced)
    lasts = {session_id: last for session_id, last in last_positions if last is not None}
    planned: dict[int, tuple[list[TranscriptTurn], list[TranscriptTurn]]] = {}
    for i, (call, upserts) in todo.items():
        placer = _Placer(
            session_id=call.session_id,
            rows=rows.setdefault(call.session_id, {}),
            last=lasts.get(call.session_id, 0),
            may_query=False,
        )
        try:
            planned[i] = _plan(call=call, upserts=upserts, placer=placer, now=now)
        except _NeedsQuery:
            outcomes[i] = None
    turns = [turn for new, changed in planned.values() for turn in new + changed]
    if turns:
        try:
            (upserted,) = yield [_upsert_statement(turns)]
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
        outcomes[i] = _in_op_order(todo[i][1], new + changed)
    return outcomes


def _steps_run(steps: Generator[Round, Rows, list[BatchOutcome]]) -> list[BatchOutcome]:
    """Run `batch_steps` on Django's connection (inside the caller's transaction); a round
    that may be refused in a savepoint, so a refusal undoes that round only."""
    try:
        statements = next(steps)
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
                statements = steps.throw(refused) if refused else steps.send(rows)
            except StopIteration as stop:
                return stop.value


async def batch_run_async(
    aconn: psycopg.AsyncConnection[Any], *, writes: Sequence[tuple[Call, Sequence[Op]]]
) -> list[BatchOutcome]:
    """`batch_steps` on an asyncio connection (`connect_async`), in one transaction of its
    own, each round pipelined (one round trip): the worker's I/O loop writes without a
    thread, so without contending for the GIL, and a batch waits for the loop only twice.
    Calls whose outcome is None are left to `turns_apply` (synchronous, Django's connection).
    """
    steps = batch_steps(writes=writes, now=timezone.now())
    try:
        statements = next(steps)
    except StopIteration as stop:  # nothing to write
        return stop.value
    try:
        async with aconn.pipeline(), aconn.transaction():
            while True:
                cursors = [aconn.cursor() for _ in statements]
                for cursor, statement in zip(cursors, statements, strict=True):
                    await cursor.execute(statement.sql, statement.params)
                rows = [await cursor.fetchall() for cursor in cursors]
                try:
                    statements = steps.send(rows)
                except StopIteration as stop:
                    outcomes = stop.value
                    break
    except REFUSED as exc:
        # The transaction is rolled back: nothing of the batch is written.
        try:
            steps.throw(exc)
        except StopIteration as stop:
            return stop.value
        raise
    return outcomes


def connect_params() -> dict[str, Any]:
    """Django's parameters for the default database (same server, same adapters), for
    `connect_async`; read them outside the event loop."""
    params = dict(connections[DEFAULT_DB_ALIAS].get_connection_params())
    params.pop("cursor_factory", None)  # Django's synchronous cursor class
    return params


async def connect_async(params: dict[str, Any]) -> psycopg.AsyncConnection[Any]:
    """An asyncio connection to the default database, in UTC like Django's."""
    aconn = await psycopg.AsyncConnection.connect(**params, autocommit=True)
    await aconn.execute("SELECT set_config('TimeZone', 'UTC', false)")
    return aconn


def _plan(
    *, call: Call, upserts: list[TurnUpsert], placer: _Placer, now: datetime
) -> tuple[list[TranscriptTurn], list[TranscriptTurn]]:
    """The new and the changed turns of one call's records, in memory (placer.rows: the
    session's referenced turns, updated with the new ones). Raises _NeedsQuery when a new
    turn cannot be placed from what was read."""
    rows = placer.rows
    new: dict[str, TranscriptTurn] = {}
    changed: dict[str, TranscriptTurn] = {}
    added: list[str] = []
    try:
        for op in upserts:
            turn = rows.get(op.item_id)
            if turn is None:
                turn = _turn_new(call=call, op=op, position=placer.position_for(op), now=now)
                rows[op.item_id] = turn
                added.append(op.item_id)
                new[op.item_id] = turn
            elif _turn_change(turn=turn, op=op, now=now) and op.item_id not in new:
                changed[op.item_id] = turn
    except _NeedsQuery:
        for item_id in added:  # the slow path starts again from the database
            del rows[item_id]
        raise
    return list(new.values()), list(changed.values())


def _apply_one(*, call: Call, upserts: list[TurnUpsert], now: datetime) -> list[TranscriptTurn]:
    """One call's records, turn by turn (the call is fenced already): placement may query
    positions and renumber the session."""
    referenced = {op.item_id for op in upserts}
    for op in upserts:
        if op.previous_item_id:
            referenced.add(op.previous_item_id)
        if op.next_item_id:
            referenced.add(op.next_item_id)
    rows = {
        turn.item_id: turn
        # With their calls: the live push shows each turn's call id.
        for turn in TranscriptTurn.objects.select_related("call").filter(
            session_id=call.session_id, item_id__in=referenced
        )
    }
    placer = _Placer(session_id=call.session_id, rows=rows)
    changed: dict[str, TranscriptTurn] = {}
    for op in upserts:
        turn = rows.get(op.item_id)
        if turn is None:
            turn = _turn_new(call=call, op=op, position=placer.position_for(op), now=now)
            turn.save(force_insert=True)
            rows[op.item_id] = turn
            changed[op.item_id] = turn
            continue
        fields = _turn_change(turn=turn, op=op, now=now)
        if fields:
            turn.save(update_fields=[*fields, "updated_at"])
            changed[op.item_id] = turn
    return list(changed.values())


def _turn_new(*, call: Call, op: TurnUpsert, position: int, now: datetime) -> TranscriptTurn:
    return TranscriptTurn(
        session_id=call.session_id,
        call=call,
        item_id=op.item_id,
        previous_item_id=op.previous_item_id or "",
        role=op.role,
        text=op.text,
        status=op.status,
        status_reason=op.status_reason,
        name=op.name,
        arguments=op.arguments,
        tool_call_id=op.tool_call_id,
        output=op.output,
        input_mode=op.input_mode,
        position=position,
        created_at=now,
        updated_at=now,
        completed_at=now if op.status in FINAL_STATUSES else None,
    )


def _turn_change(*, turn: TranscriptTurn, op: TurnUpsert, now: datetime) -> list[str]:
    """Apply `op` to a stored turn in memory; the fields that changed (empty: nothing to do).

    A stored turn keeps its place (and previous_item_id): placement is decided once.
    """
    fields = [name for name in _UPDATABLE if getattr(turn, name) != getattr(op, name)]
    if not fields:
        return []
    for name in fields:
        setattr(turn, name, getattr(op, name))
    turn.updated_at = now
    if turn.status in FINAL_STATUSES and turn.completed_at is None:
        turn.completed_at = now
        fields.append("completed_at")
    return fields


def _in_op_order(upserts: list[TurnUpsert], turns: list[TranscriptTurn]) -> list[TranscriptTurn]:
    by_item = {turn.item_id: turn for turn in turns}
    ordered: dict[str, TranscriptTurn] = {}
    for op in upserts:
        turn = by_item.get(op.item_id)
        if turn is not None and op.item_id not in ordered:
            ordered[op.item_id] = turn
    return list(ordered.values())


def state_load(*, call: Call) -> CaptureState:
    """The capture state of `call`, seeded from the session's stored turns (takeover, reconnect)."""
    transcription = (
        Session.objects.filter(pk=call.session_id)
        .values_list("transcription_enabled", flat=True)
        .first()
    )
    turns = TranscriptTurn.objects.filter(session_id=call.session_id).order_by("position")
    return CaptureState.seeded(
        (turn_record(turn) for turn in turns), transcription_expected=transcription is not False
    )


def turn_record(turn: TranscriptTurn) -> TurnUpsert:
    """A stored turn as the capture's record of it."""
    return TurnUpsert(
        item_id=turn.item_id,
        role=turn.role,
        previous_item_id=turn.previous_item_id or None,
        text=turn.text,
        status=turn.status,
        status_reason=turn.status_reason,
        name=turn.name,
        arguments=turn.arguments,
        tool_call_id=turn.tool_call_id,
        output=turn.output,
        input_mode=turn.input_mode,
    )


def _fence_statement(calls: Sequence[Call]) -> Statement:
    """Row-lock the sessions of the calls that are their session's current, live call; its
    rows are the pks of those calls (the others are fenced off).

    One statement for the whole batch: the condition and the lock cannot be separated, and a
    generation bump (a newer call registering) waits for this transaction, or this statement
    waits for the bump and re-checks the condition against the new row. Sessions are locked
    in id order, so writers batching overlapping sessions cannot deadlock.
    """
    session_table = Session._meta.db_table
    call_table = Call._meta.db_table
    # The live calls first (by primary key), then their sessions by primary key: the join
    # order is spelled out, so the plan does not depend on the tables' statistics.
    return Statement(
        f"WITH v AS MATERIALIZED ("  # noqa: S608
        f"SELECT c.id, c.session_id, v.generation "
        f"FROM unnest(%s::bigint[], %s::bigint[]) AS v(call_id, generation) "
        f"JOIN {call_table} c ON c.id = v.call_id WHERE c.ended_at IS NULL) "
        f"SELECT v.id FROM v JOIN {session_table} s ON s.id = v.session_id "
        f"WHERE s.status = %s AND s.current_generation = v.generation "
        f"ORDER BY s.id FOR UPDATE OF s",
        [
            [call.pk for call in calls],
            [call.generation for call in calls],
            Session.Status.ACTIVE.value,
        ],
    )


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


_TURN_COLUMNS = tuple(field.attname for field in TranscriptTurn._meta.concrete_fields)


def _referenced_statement(writes: Sequence[tuple[int, list[TurnUpsert]]]) -> Statement:
    """Per session, the stored turns the records name (themselves, predecessor, successor),
    with their call's public id: one query for the batch (rows: `_referenced_rows`)."""
    pairs: dict[tuple[int, str], None] = {}
    for session_id, upserts in writes:
        for op in upserts:
            pairs[(session_id, op.item_id)] = None
            if op.previous_item_id:
                pairs[(session_id, op.previous_item_id)] = None
            if op.next_item_id:
                pairs[(session_id, op.next_item_id)] = None
    columns = ", ".join(f"t.{name}" for name in _TURN_COLUMNS)
    # (session, item) pairs as two arrays: one index probe per pair, and a statement text
    # that is the same for every batch (its parsing is cached).
    return Statement(
        f"SELECT {columns}, c.call_id "  # noqa: S608
        f"FROM unnest(%s::bigint[], %s::text[]) AS w(session_id, item_id) "
        f"JOIN {TranscriptTurn._meta.db_table} t "
        f"ON t.session_id = w.session_id AND t.item_id = w.item_id "
        f"LEFT JOIN {Call._meta.db_table} c ON c.id = t.call_id",
        [[pair[0] for pair in pairs], [pair[1] for pair in pairs]],
    )


def _referenced_rows(rows: list[tuple[Any, ...]]) -> dict[int, dict[str, TranscriptTurn]]:
    """The turns of `_referenced_statement`, per session and item id. Each carries its call
    with the public id loaded (the live push shows it), the call's other fields deferred."""
    found: dict[int, dict[str, TranscriptTurn]] = {}
    width = len(_TURN_COLUMNS)
    for row in rows:
        turn = TranscriptTurn.from_db("default", _TURN_COLUMNS, row[:width])
        if turn.call_id is not None:
            turn.call = Call.from_db("default", ("id", "call_id"), (turn.call_id, row[width]))
        found.setdefault(turn.session_id, {})[turn.item_id] = turn
    return found


def _last_positions_statement(session_ids: set[int]) -> Statement:
    """Each session's greatest position (NULL: no turns yet), one query for the batch."""
    table = TranscriptTurn._meta.db_table
    return Statement(
        # Per session the top of its (session, position) index: one probe each.
        f"SELECT v.session_id, (SELECT max(t.position) FROM {table} t "  # noqa: S608
        f"WHERE t.session_id = v.session_id) FROM unnest(%s::bigint[]) AS v(session_id)",
        [sorted(session_ids)],
    )


_UPSERT_COLUMNS = (
    ("session_id", "bigint"),
    ("call_id", "bigint"),
    ("item_id", "text"),
    ("previous_item_id", "text"),
    ("role", "text"),
    ("text", "text"),
    ("status", "text"),
    ("status_reason", "text"),
    ("position", "bigint"),
    ("name", "text"),
    ("arguments", "text"),
    ("tool_call_id", "text"),
    ("output", "text"),
    ("input_mode", "text"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
    ("completed_at", "timestamptz"),
)


def _upsert_statement(turns: list[TranscriptTurn]) -> Statement:
    """Insert the new turns and update the changed ones: one statement (a column array per
    field, so its text never changes, whatever the number of rows); its rows are
    (id, session_id, item_id).

    A stored turn keeps its call, place and predecessor; completed_at is set once.
    """
    table = TranscriptTurn._meta.db_table
    names = [name for name, _ in _UPSERT_COLUMNS]
    arrays = ", ".join(f"%s::{kind}[]" for _, kind in _UPSERT_COLUMNS)
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in (*_UPDATABLE, "updated_at"))
    return Statement(
        f"INSERT INTO {table} AS t ({', '.join(names)}) "  # noqa: S608
        f"SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT (session_id, item_id) DO UPDATE SET {updates}, "
        f"completed_at = COALESCE(t.completed_at, EXCLUDED.completed_at) "
        f"RETURNING id, session_id, item_id",
        [[getattr(turn, name) for turn in turns] for name in names],
        refusable=True,
    )


class _NeedsQuery(Exception):
    """The placement of a new turn needs a position query (the batch path does not query)."""


class _Placer:
    """Position arithmetic for new turns of one session, inside the writer's transaction."""

    def __init__(
        self,
        *,
        session_id: int,
        rows: dict[str, TranscriptTurn],
        last: int | None = None,
        may_query: bool = True,
    ) -> None:
        self.session_id = session_id
        self.rows = rows
        # The session's greatest position, read once per batch (or given) and kept up to date:
        # most new turns follow the last one, and then need no query of their own.
        self._last: int | None = last
        # False: raise _NeedsQuery instead of querying (the set-based batch path).
        self._may_query = may_query

    def position_for(self, op: TurnUpsert) -> int:
        """Right after the predecessor, else right before `next_item_id`, else last."""
        prev = self.rows.get(op.previous_item_id) if op.previous_item_id else None
        nxt = self.rows.get(op.next_item_id) if op.next_item_id else None
        if prev is not None:
            position = self._after(prev)
        elif nxt is not None:
            position = self._before(nxt)
        else:
            position = self._last_position() + POSITION_STEP
        self._last = max(self._last_position(), position)
        return position

    def _last_position(self) -> int:
        if self._last is None:
            self._last = self._turns().aggregate(last=Max("position"))["last"] or 0
        return self._last

    def _turns(self) -> QuerySet[TranscriptTurn]:
        if not self._may_query:
            raise _NeedsQuery
        return TranscriptTurn.objects.filter(session_id=self.session_id)

    def _after(self, prev: TranscriptTurn) -> int:
        if prev.position >= self._last_position():
            return prev.position + POSITION_STEP
        for _ in range(2):
            following = (
                self._turns()
                .filter(position__gt=prev.position)
                .order_by("position")
                .values_list("position", flat=True)
                .first()
            )
            if following is None:
                return prev.position + POSITION_STEP
            if following - prev.position >= 2:
                return (prev.position + following) // 2
            self._renumber()
        raise RuntimeError("no room after renumbering")  # pragma: no cover - cannot happen

    def _before(self, nxt: TranscriptTurn) -> int:
        for _ in range(2):
            preceding = (
                self._turns()
                .filter(position__lt=nxt.position)
                .order_by("-position")
                .values_list("position", flat=True)
                .first()
            ) or 0
            if nxt.position - preceding >= 2:
                return (preceding + nxt.position) // 2
            self._renumber()
        raise RuntimeError("no room after renumbering")  # pragma: no cover - cannot happen

    def _renumber(self) -> None:
        """Spread the session's positions POSITION_STEP apart again, keeping their order.

        The unique (session, position) constraint is checked row by row, so the new values
        go through negatives first: no intermediate state has two equal positions.
        """
        turn_table = TranscriptTurn._meta.db_table
        profile_table = Profile._meta.db_table
        ranked = (
            f"SELECT id, position, row_number() OVER (ORDER BY position) AS rn "  # noqa: S608
            f"FROM {turn_table} WHERE session_id = %s"
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {profile_table} p SET last_position = r.rn * %s "  # noqa: S608
                f"FROM ({ranked}) r WHERE p.session_id = %s AND p.last_position = r.position",
                [POSITION_STEP, self.session_id, self.session_id],
            )
            cursor.execute(
                f"UPDATE {turn_table} t SET position = -(r.rn * %s) "  # noqa: S608
                f"FROM ({ranked}) r WHERE t.id = r.id",
                [POSITION_STEP, self.session_id],
            )
            cursor.execute(
                f"UPDATE {turn_table} SET position = -position WHERE session_id = %s",  # noqa: S608
                [self.session_id],
            )
        # Turns placed earlier in this batch are in `rows`: keep their positions true.
        _refresh_positions(self.rows.values())
        self._last = None


def _refresh_positions(turns: Iterable[TranscriptTurn]) -> None:
    by_pk = {turn.pk: turn for turn in turns}
    for pk, position in TranscriptTurn.objects.filter(pk__in=by_pk).values_list("pk", "position"):
        by_pk[pk].position = position
