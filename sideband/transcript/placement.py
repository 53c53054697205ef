"""Where a new turn goes: position arithmetic inside the writer's transaction, and the
renumbering of a session whose positions left no room."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection
from django.db.models import Max, QuerySet

from extraction.models import Profile
from sessions_app.models import TranscriptTurn
from sideband.capture import TurnUpsert

POSITION_STEP = 1024


class NeedsQuery(Exception):
    """The placement of a new turn needs a position query (the set-based plan does not query)."""


class Placer:
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
        # False: raise NeedsQuery instead of querying (the set-based plan).
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
            raise NeedsQuery
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
        _positions_refresh(self.rows.values())
        self._last = None


def _positions_refresh(turns: Iterable[TranscriptTurn]) -> None:
    by_pk = {turn.pk: turn for turn in turns}
    for pk, position in TranscriptTurn.objects.filter(pk__in=by_pk).values_list("pk", "position"):
        by_pk[pk].position = position
