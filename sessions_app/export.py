"""A session's transcript as a file to take away: Markdown to read, JSON to process.

Both are built from the server's record (never the page's), with each turn's time and, for the
person's turns, whether they were typed or spoken. The page's download links
(`GET /session/{id}/transcript.md|.json`) and the admin's export buttons serve the same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from sessions_app import selectors
from sessions_app.models import Session, TranscriptTurn

SPEAKER = {
    TranscriptTurn.Role.USER: "You",
    TranscriptTurn.Role.ASSISTANT: "Assistant",
    TranscriptTurn.Role.TOOL_CALL: "Function call",
    TranscriptTurn.Role.TOOL_OUTPUT: "Function output",
}
HOW_GIVEN: dict[str, str] = {
    TranscriptTurn.InputMode.TYPED: "typed",
    TranscriptTurn.InputMode.SPOKEN: "spoken",
}


# The kinds of file a transcript comes as (the extension in its URL).
KINDS = ("md", "json")


@dataclass(frozen=True, slots=True)
class TranscriptFile:
    filename: str
    content_type: str
    content: str


def _clock(value: dt.datetime) -> str:
    return timezone.localtime(value, dt.UTC).strftime("%H:%M:%S")


def turn_body(turn: TranscriptTurn) -> str:
    """What a turn says, as a person reads it (function calls as a call expression)."""
    if turn.role == TranscriptTurn.Role.TOOL_CALL:
        return f"`{turn.name}({turn.arguments})`"
    if turn.role == TranscriptTurn.Role.TOOL_OUTPUT:
        return f"`{turn.output}`"
    return turn.text if turn.text is not None else "_(no transcript)_"


def turn_marks(turn: TranscriptTurn) -> list[str]:
    """How a turn was given and how it ended, when that is worth saying: 'spoken',
    'interrupted', 'transcription failed'."""
    marks = [HOW_GIVEN[mode]] if (mode := turn.input_mode) in HOW_GIVEN else []
    if turn.status == TranscriptTurn.Status.INCOMPLETE:
        marks.append("interrupted")
    elif turn.status == TranscriptTurn.Status.FAILED:
        marks.append("transcription failed" if turn.role == TranscriptTurn.Role.USER else "failed")
    elif turn.status == TranscriptTurn.Status.IN_PROGRESS:
        marks.append("in progress")
    return marks


def transcript_markdown(session: Session) -> str:
    turns = list(selectors.turn_list(session=session))
    started = timezone.localtime(session.created_at, dt.UTC)
    lines = [
        f"# Conversation of {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"- Session: `{session.public_id}`",
        f"- Model: {session.model}, voice: {session.voice}",
        f"- Status: {session.status}, {len(turns)} turns (times in UTC)",
        "",
    ]
    for turn in turns:
        head = ", ".join([*turn_marks(turn), _clock(turn.created_at)])
        lines += [f"**{SPEAKER[TranscriptTurn.Role(turn.role)]}** ({head})  ", turn_body(turn), ""]
    return "\n".join(lines)


def transcript_document(session: Session) -> dict[str, Any]:
    return {
        "sessionId": str(session.public_id),
        "model": session.model,
        "voice": session.voice,
        "status": session.status,
        "createdAt": selectors.iso(session.created_at),
        "closedAt": selectors.iso(session.closed_at),
        "turns": [selectors.turn_json(turn) for turn in selectors.turn_list(session=session)],
    }


def transcript_file(session: Session, *, kind: str) -> TranscriptFile:
    """The transcript as `kind` ("md" or "json"); ValueError for any other kind."""
    stem = f"transcript-{timezone.localtime(session.created_at, dt.UTC):%Y%m%d-%H%M}-"
    stem += str(session.public_id)[:8]
    if kind == "md":
        return TranscriptFile(
            f"{stem}.md", "text/markdown; charset=utf-8", transcript_markdown(session)
        )
    if kind == "json":
        content = json.dumps(transcript_document(session), indent=2, ensure_ascii=False)
        return TranscriptFile(f"{stem}.json", "application/json", content)
    raise ValueError(kind)
