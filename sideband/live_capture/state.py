"""What Live capture knows about one call: the grouping of each Live session, the turns emitted."""

from __future__ import annotations

from dataclasses import dataclass, field

from sideband.capture.ops import TurnUpsert
from sideband.live_capture.grouping import SessionGrouping


@dataclass(slots=True)
class LiveCaptureState:
    """One call's Live capture state.

    `session_id` is the Live session the call was created with (the call id); the sideband's
    `session.started` confirms it, and a fork connection's `session.started` replaces it with
    the new session's id (one grouping per session, as the SDK's grouper is used).
    """

    session_id: str = ""
    grouping: SessionGrouping | None = None
    # The turn the next new turn follows (the newest emitted), None at the call's start.
    last_turn_id: str | None = None
    # Each turn's last emitted record, by stable id (a record is only emitted when it changed).
    records: dict[str, TurnUpsert] = field(default_factory=dict)
    # Each turn's span on its session's timeline: (start_ms, end_ms).
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)
    # Why the Live session closed (`session.closed` reason), once it did.
    closed_reason: str | None = None
    unknown_event_counts: dict[str, int] = field(default_factory=dict)
    malformed_frames: int = 0
    events: int = 0

    def grouping_for(self, session_id: str | None) -> SessionGrouping:
        """The grouping of `session_id` (None: the current one), started on first use."""
        wanted = session_id or self.session_id
        if self.grouping is None or self.grouping.session_id != wanted:
            self.grouping = SessionGrouping(session_id=wanted)
            self.session_id = wanted
        return self.grouping

    def turns(self) -> list[TurnUpsert]:
        """The current records of all turns, in conversation order."""
        return list(self.records.values())
