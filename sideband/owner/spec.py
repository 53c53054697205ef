"""What the owner needs to hold a call, loaded once by the claiming task."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sessions_app.models import Call
from sideband.capture import CaptureState


@dataclass
class CallSpec:
    """What a call's connection needs, loaded once from the database by the claiming task
    (`sideband.selectors.call_spec_load`)."""

    call_id: str
    generation: int
    call: Call
    session_public_id: str
    secret: str = field(repr=False)
    state: CaptureState
    seed_events: list[dict[str, Any]]
    deadline: float  # monotonic: the session cap (plus a margin) from the call's registration
