"""A capture record (`TurnUpsert`) as a turn in memory: a new turn, or the change of a stored
one. Both write paths (the set-based plan, the turn-by-turn path) build turns here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sessions_app.models import Call, TranscriptTurn
from sideband.capture import FINAL_STATUSES, RECORD_FIELDS, Op, TurnUpsert, record_fields

# The fields a later record of the same item may change; a stored turn keeps its call, place
# and predecessor.
UPDATABLE = ("role", *RECORD_FIELDS)


def upserts_of(ops: Sequence[Op]) -> list[TurnUpsert]:
    """The records among a capture's operations (TurnDelta, ItemMissing and CallEnded are the
    worker's, never written here)."""
    return [op for op in ops if isinstance(op, TurnUpsert)]


def turn_new(*, call: Call, op: TurnUpsert, position: int, now: datetime) -> TranscriptTurn:
    return TranscriptTurn(
        session_id=call.session_id,
        call=call,
        item_id=op.item_id,
        previous_item_id=op.previous_item_id or "",
        role=op.role,
        **record_fields(op),
        position=position,
        created_at=now,
        updated_at=now,
        completed_at=now if op.status in FINAL_STATUSES else None,
    )


def turn_change(*, turn: TranscriptTurn, op: TurnUpsert, now: datetime) -> list[str]:
    """Apply `op` to a stored turn in memory; the fields that changed (empty: nothing to do).

    A stored turn keeps its place (and previous_item_id): placement is decided once.
    """
    fields = [name for name in UPDATABLE if getattr(turn, name) != getattr(op, name)]
    if not fields:
        return []
    for name in fields:
        setattr(turn, name, getattr(op, name))
    turn.updated_at = now
    if turn.status in FINAL_STATUSES and turn.completed_at is None:
        turn.completed_at = now
        fields.append("completed_at")
    return fields


def in_op_order(upserts: list[TurnUpsert], turns: list[TranscriptTurn]) -> list[TranscriptTurn]:
    """`turns`, each once, in the order of the records that made them (for the live push)."""
    by_item = {turn.item_id: turn for turn in turns}
    ordered: dict[str, TranscriptTurn] = {}
    for op in upserts:
        turn = by_item.get(op.item_id)
        if turn is not None and op.item_id not in ordered:
            ordered[op.item_id] = turn
    return list(ordered.values())


def items_named(upserts: Sequence[TurnUpsert]) -> list[str]:
    """The item ids the records name, each once: themselves, predecessor and successor (the
    stored turns a write reads before placing and changing)."""
    named: dict[str, None] = {}
    for op in upserts:
        named[op.item_id] = None
        if op.previous_item_id:
            named[op.previous_item_id] = None
        if op.next_item_id:
            named[op.next_item_id] = None
    return list(named)
