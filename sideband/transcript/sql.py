"""The statements of the set-based plan (sideband.transcript.plan), as text and parameters,
and the rows they return as turns. Each statement's text is the same for every batch (arrays
as parameters, whatever the number of rows), so its parsing is cached."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sessions_app.models import Call, Session, TranscriptTurn
from sideband.capture import TurnUpsert
from sideband.transcript.records import UPDATABLE, items_named


@dataclass(frozen=True)
class Statement:
    """One SQL statement of `batch_plan`, for whichever driver runs them (sync or async)."""

    sql: str
    params: list[Any]
    # A write the database may refuse (a constraint): the synchronous driver runs its round
    # in a savepoint.
    refusable: bool = False


# A round of statements the driver may send together (pipelined), and their rows back.
Round = list[Statement]
Rows = list[list[tuple[Any, ...]]]


def fence_statement(calls: Sequence[Call]) -> Statement:
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


_TURN_COLUMNS = tuple(field.attname for field in TranscriptTurn._meta.concrete_fields)


def referenced_statement(writes: Sequence[tuple[int, list[TurnUpsert]]]) -> Statement:
    """Per session, the stored turns the records name (themselves, predecessor, successor),
    with their call's public id: one query for the batch (rows: `referenced_rows`)."""
    named = (
        (session_id, item_id) for session_id, upserts in writes for item_id in items_named(upserts)
    )
    pairs = list(dict.fromkeys(named))
    columns = ", ".join(f"t.{name}" for name in _TURN_COLUMNS)
    # (session, item) pairs as two arrays: one index probe per pair.
    return Statement(
        f"SELECT {columns}, c.call_id "  # noqa: S608
        f"FROM unnest(%s::bigint[], %s::text[]) AS w(session_id, item_id) "
        f"JOIN {TranscriptTurn._meta.db_table} t "
        f"ON t.session_id = w.session_id AND t.item_id = w.item_id "
        f"LEFT JOIN {Call._meta.db_table} c ON c.id = t.call_id",
        [[pair[0] for pair in pairs], [pair[1] for pair in pairs]],
    )


def referenced_rows(rows: list[tuple[Any, ...]]) -> dict[int, dict[str, TranscriptTurn]]:
    """The turns of `referenced_statement`, per session and item id. Each carries its call
    with the public id loaded (the live push shows it), the call's other fields deferred."""
    found: dict[int, dict[str, TranscriptTurn]] = {}
    width = len(_TURN_COLUMNS)
    for row in rows:
        turn = TranscriptTurn.from_db("default", _TURN_COLUMNS, row[:width])
        if turn.call_id is not None:
            turn.call = Call.from_db("default", ("id", "call_id"), (turn.call_id, row[width]))
        found.setdefault(turn.session_id, {})[turn.item_id] = turn
    return found


def last_positions_statement(session_ids: set[int]) -> Statement:
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


def upsert_statement(turns: list[TranscriptTurn]) -> Statement:
    """Insert the new turns and update the changed ones: one statement (a column array per
    field); its rows are (id, session_id, item_id).

    A stored turn keeps its call, place and predecessor; completed_at is set once.
    """
    table = TranscriptTurn._meta.db_table
    names = [name for name, _ in _UPSERT_COLUMNS]
    arrays = ", ".join(f"%s::{kind}[]" for _, kind in _UPSERT_COLUMNS)
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in (*UPDATABLE, "updated_at"))
    return Statement(
        f"INSERT INTO {table} AS t ({', '.join(names)}) "  # noqa: S608
        f"SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT (session_id, item_id) DO UPDATE SET {updates}, "
        f"completed_at = COALESCE(t.completed_at, EXCLUDED.completed_at) "
        f"RETURNING id, session_id, item_id",
        [[getattr(turn, name) for turn in turns] for name in names],
        refusable=True,
    )
