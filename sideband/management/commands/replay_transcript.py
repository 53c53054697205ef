"""`manage.py replay_transcript PATH.jsonl`: a recorded sideband log through the real capture.

Each line of the file is one Realtime server event. The lines go through exactly the code
the sideband worker runs (`capture_frame`, then the fenced `turns_apply`) into a new session,
and the session's turns are printed as a JSON list in conversation order, in the shape of the
reference corpus's EXPECTED.json.

Any file replays: a line that is not UTF-8 or not an event is skipped and counted as malformed
(as the worker skips such a frame), text Postgres cannot store is replaced by the capture's
rule (sideband.capture.storable), and a line whose records the database still refuses costs
only those records.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessions_app.models import Call, Session, TranscriptTurn
from sideband.capture import CallEnded, CaptureState, ItemMissing, capture_frame
from sideband.transcript import Refused, turns_apply


class Command(BaseCommand):
    help = "Replay a recorded Realtime event log (JSONL) through the transcript capture."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="a .jsonl file: one server event per line")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        try:
            # Bytes: each line is decoded by the capture, like a frame, so one line that is
            # not UTF-8 is one malformed frame, not a failed replay.
            lines = path.read_bytes().splitlines()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from exc

        session = Session.objects.create(
            owner_hash="replay",
            model=settings.REALTIME_MODELS[0],
            voice=settings.REALTIME_VOICES[0],
            current_generation=1,
        )
        call = Call.objects.create(
            session=session, generation=1, call_id=f"replay_{secrets.token_hex(12)}"
        )
        state = CaptureState(transcription_expected=session.transcription_enabled)
        missing = refused = 0
        for line in lines:
            if not line.strip():
                continue
            ops = capture_frame(state, line)
            try:
                turns_apply(call=call, ops=ops)
            except Refused as exc:
                refused += 1
                self.stderr.write(f"records refused by the database: {exc.cause!r}")
            for op in ops:
                if isinstance(op, ItemMissing):
                    missing += 1  # a recording cannot answer a retrieve
                elif isinstance(op, CallEnded):
                    self.stderr.write(f"call ended upstream: {op.reason}")

        turns = TranscriptTurn.objects.filter(session=session).order_by("position")
        self.stdout.write(
            json.dumps([turn_json(turn) for turn in turns], indent=1, ensure_ascii=False)
        )
        unknown = ", ".join(f"{k}={v}" for k, v in sorted(state.unknown_event_counts.items()))
        self.stderr.write(
            f"session {session.public_id}: {state.events} events, "
            f"{state.malformed_frames} malformed, {missing} missing items, "
            f"unknown: {unknown or 'none'}; {refused} refused writes"
        )


def turn_json(turn: TranscriptTurn) -> dict[str, Any]:
    """One turn in EXPECTED.json's shape (tool turns add their fields)."""
    data: dict[str, Any] = {
        "role": turn.role,
        "text": turn.text,
        "status": turn.status,
        "item_id": turn.item_id,
    }
    if turn.role == TranscriptTurn.Role.TOOL_CALL:
        data.update(name=turn.name, arguments=turn.arguments, call_id=turn.tool_call_id)
    elif turn.role == TranscriptTurn.Role.TOOL_OUTPUT:
        data.update(call_id=turn.tool_call_id, output=turn.output)
    return data
