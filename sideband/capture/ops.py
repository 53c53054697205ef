"""The capture's vocabulary: the operations it emits and the per-call state it keeps."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

# TranscriptTurn.Role / TranscriptTurn.Status values (no Django import: this module is pure).
USER: Final = "user"
ASSISTANT: Final = "assistant"
TOOL_CALL: Final = "tool_call"
TOOL_OUTPUT: Final = "tool_output"

IN_PROGRESS: Final = "in_progress"
COMPLETED: Final = "completed"
INCOMPLETE: Final = "incomplete"
FAILED: Final = "failed"
# A spoken turn whose transcript never came (TranscriptTurn.Status.UNTRANSCRIBED).
UNTRANSCRIBED: Final = "untranscribed"
FINAL_STATUSES: Final = frozenset({COMPLETED, INCOMPLETE, FAILED, UNTRANSCRIBED})

# TranscriptTurn.InputMode values: how a user turn was given (typed or spoken); "" otherwise.
TYPED: Final = "text"
SPOKEN: Final = "audio"

# TranscriptTurn column sizes: an id that cannot be stored is a malformed event.
ID_MAX: Final = 64
NAME_MAX: Final = 128
STATUS_REASON_MAX: Final = 255
MESSAGE_MAX: Final = 300


# --- Operations -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TurnUpsert:
    """The full current record of one conversation item; applying it twice is harmless."""

    item_id: str
    role: str
    previous_item_id: str | None
    text: str | None = None
    status: str = IN_PROGRESS
    status_reason: str = ""
    name: str = ""
    arguments: str = ""
    tool_call_id: str = ""
    output: str = ""
    input_mode: str = ""
    # Only for a recovered item whose predecessor is unknown: the turn it must come before.
    next_item_id: str | None = None


@dataclass(frozen=True, slots=True)
class TurnDelta:
    """Partial text of an item for the live page: `delta` just arrived, `text` so far."""

    item_id: str
    role: str
    delta: str
    text: str


@dataclass(frozen=True, slots=True)
class ItemMissing:
    """An event referenced `item_id`, which this call's state has never seen."""

    item_id: str


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The upstream ended the call; `reason` is a Call.EndReason value (sideband.end_reasons)."""

    reason: str
    message: str


Op: TypeAlias = TurnUpsert | TurnDelta | ItemMissing | CallEnded

# What a record says of its item beside its id, role and place: the same names on TurnUpsert,
# ItemRecord and the stored turn (TranscriptTurn), so a record is copied from one to another
# by these names.
RECORD_FIELDS: Final = (
    "text",
    "status",
    "status_reason",
    "name",
    "arguments",
    "tool_call_id",
    "output",
    "input_mode",
)


def record_fields(record: object) -> dict[str, Any]:
    """The RECORD_FIELDS of a record (a TurnUpsert, an ItemRecord or a stored turn)."""
    return {name: getattr(record, name) for name in RECORD_FIELDS}


# --- State ------------------------------------------------------------------------------


@dataclass(slots=True)
class ItemRecord:
    """The mutable record of one visible item; `last` is what was emitted for it."""

    item_id: str
    role: str
    previous_item_id: str | None
    next_item_id: str | None = None
    text: str | None = None
    status: str = IN_PROGRESS
    status_reason: str = ""
    name: str = ""
    arguments: str = ""
    tool_call_id: str = ""
    output: str = ""
    input_mode: str = ""
    # A user audio turn whose transcript has not arrived (and will, transcription being on).
    awaiting_transcript: bool = False
    # The client truncated the audio: the generated text is kept, never shortened.
    truncated: bool = False
    # Output text per content index, when an item has more than one part.
    parts: dict[int, str] | None = None
    last: TurnUpsert | None = None

    def snapshot(self) -> TurnUpsert:
        return TurnUpsert(
            item_id=self.item_id,
            role=self.role,
            previous_item_id=self.previous_item_id,
            text=self.text,
            status=self.status,
            status_reason=self.status_reason,
            name=self.name,
            arguments=self.arguments,
            tool_call_id=self.tool_call_id,
            output=self.output,
            input_mode=self.input_mode,
            next_item_id=self.next_item_id,
        )


@dataclass(slots=True)
class CaptureState:
    """Everything capture knows about one call's conversation."""

    # Visible items (turns), id -> current record.
    items: dict[str, ItemRecord] = field(default_factory=dict)
    # Visible item ids in conversation order.
    order: list[str] = field(default_factory=list)
    # Items that are not turns (system messages, out-of-band output, other item types),
    # id -> the visible turn they follow: a turn placed after one goes after that turn.
    hidden: dict[str, str | None] = field(default_factory=dict)
    out_of_band_responses: set[str] = field(default_factory=set)
    # Partial text per item while it streams (for TurnDelta.text).
    partial: dict[str, str] = field(default_factory=dict)
    # Transcription results for items not seen yet: id -> (text, status, reason).
    pending_transcripts: dict[str, tuple[str | None, str, str]] = field(default_factory=dict)
    # Items asked for with ItemMissing: id -> (turn it goes after, turn it goes before).
    missing: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    recovered_items: int = 0
    # The page's hints (sideband.capture.hints): item id -> the id it follows (None: first).
    # Ids only: what an item says always comes from the upstream.
    hints: dict[str, str | None] = field(default_factory=dict)
    # Recovered items whose predecessor neither the upstream nor a hint has named yet: each is
    # placed after the newest turn known before its gap, and a hint may continue the walk.
    unanchored: set[str] = field(default_factory=set)
    # Asked-for items the upstream does not know (a forged or stale hint): dropped.
    unknown_items: int = 0
    # Whether the session transcribes input audio (session.created/updated say so).
    transcription_expected: bool = True
    unknown_event_counts: dict[str, int] = field(default_factory=dict)
    malformed_frames: int = 0
    events: int = 0

    @classmethod
    def seeded(
        cls, turns: Iterable[TurnUpsert], *, transcription_expected: bool = True
    ) -> CaptureState:
        """A state that already knows these turns (in conversation order), e.g. from Postgres.

        A worker taking over a call, or reconnecting, starts from what is stored; re-emitting
        an unchanged record is suppressed, so seeded turns cost nothing until they change.
        """
        state = cls(transcription_expected=transcription_expected)
        for turn in turns:
            rec = ItemRecord(
                item_id=turn.item_id,
                role=turn.role,
                previous_item_id=turn.previous_item_id,
                next_item_id=turn.next_item_id,
                **record_fields(turn),
                awaiting_transcript=(
                    turn.role == USER and turn.text is None and turn.status == IN_PROGRESS
                ),
            )
            rec.last = rec.snapshot()
            state.items[turn.item_id] = rec
            state.order.append(turn.item_id)
        return state

    def turn(self, item_id: str) -> TurnUpsert | None:
        rec = self.items.get(item_id)
        return rec.snapshot() if rec is not None else None

    def turns(self) -> list[TurnUpsert]:
        """The current records of all turns, in conversation order."""
        return [self.items[item_id].snapshot() for item_id in self.order]
