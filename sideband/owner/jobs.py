"""What travels from a call's socket to its writer: one frozen record per kind of job."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sideband.capture import TurnUpsert

if TYPE_CHECKING:
    from sideband.owner.connection import CallConnection


@dataclass(frozen=True, slots=True)
class TurnsJob:
    """Turn records of one call, captured from one frame received at `received_at`
    (monotonic): the start of the commit lag of each finished turn in it."""

    conn: CallConnection
    upserts: tuple[TurnUpsert, ...]
    received_at: float


@dataclass(frozen=True, slots=True)
class EndJob:
    """End the call (`services.call_end`) once the writes queued before it are committed."""

    conn: CallConnection
    reason: str
    message: str


Job = TurnsJob | EndJob


def latest_records(upserts: list[TurnUpsert]) -> list[TurnUpsert]:
    """Each item's latest full record, at the place of its first: an item changing three times
    in one batch is written once (records are complete, so the last one says everything)."""
    latest: dict[str, TurnUpsert] = {}
    for op in upserts:
        latest[op.item_id] = op
    return list(latest.values())
