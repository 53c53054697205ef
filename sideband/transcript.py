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
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import connection, transaction
from django.db.models import Exists, F, Max, QuerySet
from django.utils import timezone

from sessions_app.models import Call, Profile, Session, TranscriptTurn
from sideband.capture import FINAL_STATUSES, CaptureState, Op, TurnUpsert

POSITION_STEP = 1024

_UPDATABLE = (
    "role",
    "text",
    "status",
    "status_reason",
    "name",
    "arguments",
    "tool_call_id",
    "output",
)


class Fenced(Exception):
    """The write was refused: a newer call of the session took over, or this call ended."""


def turns_apply(*, call: Call, ops: Sequence[Op]) -> list[TranscriptTurn]:
    """Upsert the TurnUpserts among `ops` in one fenced transaction.

    Returns the turns created or changed, in the order of `ops` (for the live push); an
    unchanged record writes nothing. TurnDelta, ItemMissing and CallEnded are the worker's.
    Raises Fenced (having written nothing) when `call` is no longer the session's current one.
    """
    upserts = [op for op in ops if isinstance(op, TurnUpsert)]
    if not upserts:
        return []
    with transaction.atomic():
        _fence(call)
        referenced = {op.item_id for op in upserts}
        for op in upserts:
            if op.previous_item_id:
                referenced.add(op.previous_item_id)
            if op.next_item_id:
                referenced.add(op.next_item_id)
        rows = {
            turn.item_id: turn
            for turn in TranscriptTurn.objects.filter(
                session_id=call.session_id, item_id__in=referenced
            )
        }
        placer = _Placer(session_id=call.session_id, rows=rows)
        changed: dict[str, TranscriptTurn] = {}
        now = timezone.now()
        for op in upserts:
            turn = rows.get(op.item_id)
            if turn is None:
                turn = TranscriptTurn(
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
                    position=placer.position_for(op),
                    completed_at=now if op.status in FINAL_STATUSES else None,
                )
                turn.save(force_insert=True)
                rows[op.item_id] = turn
                changed[op.item_id] = turn
                continue
            # A stored turn keeps its place (and previous_item_id): placement is decided once.
            fields = [name for name in _UPDATABLE if getattr(turn, name) != getattr(op, name)]
            if not fields:
                continue
            for name in fields:
                setattr(turn, name, getattr(op, name))
            if turn.status in FINAL_STATUSES and turn.completed_at is None:
                turn.completed_at = now
                fields.append("completed_at")
            turn.save(update_fields=[*fields, "updated_at"])
            changed[op.item_id] = turn
        return list(changed.values())


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
    )


def _fence(call: Call) -> None:
    """Row-lock the session while `call` is its current, live call; else raise Fenced.

    A no-op UPDATE rather than SELECT ... FOR UPDATE + compare: the condition and the lock
    are one statement, so nothing can change between the check and the write.
    """
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
    if matched == 0:
        raise Fenced(f"call {call.call_id} (generation {call.generation}) is fenced off")


class _Placer:
    """Position arithmetic for new turns of one session, inside the writer's transaction."""

    def __init__(self, *, session_id: int, rows: dict[str, TranscriptTurn]) -> None:
        self.session_id = session_id
        self.rows = rows
        # The session's greatest position, read once per batch and kept up to date: most new
        # turns follow the last one, and then need no query of their own.
        self._last: int | None = None

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
