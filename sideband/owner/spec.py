"""What the owner needs to hold a call, loaded once by the claiming task."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sessions_app.models import Call
from sideband.capture import CaptureState, Op


@dataclass
class CallSpec:
    """What a call's connection needs, loaded once from the database by the claiming task
    (`sideband.selectors.call_spec_load`).

    The wire protocol is the call's API's (sideband.selectors picks it): where the sideband
    is, how it authenticates, and the capture that reads its frames (Realtime's
    `capture_frame` or Live's `live_capture_frame`, each with its own state).
    """

    call_id: str
    generation: int
    call: Call
    session_public_id: str
    secret: str = field(repr=False)
    state: Any  # the capture's state: CaptureState (Realtime) or LiveCaptureState (Live)
    seed_events: list[dict[str, Any]]
    deadline: float  # monotonic: the session cap (plus a margin) from the call's registration
    url: str
    headers: dict[str, str] = field(repr=False)
    capture: Callable[[Any, str | bytes], list[Op]]

    @property
    def realtime_state(self) -> CaptureState | None:
        """The Realtime capture's state, whose gaps the owner's upkeep fills (hints, item
        retrieval, overdue transcripts); None on Live, whose sideband has none of these."""
        return self.state if isinstance(self.state, CaptureState) else None
