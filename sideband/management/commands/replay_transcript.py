"""`manage.py replay_transcript PATH.jsonl`: a recorded sideband log through the real capture.

Each line of the file is one server event, of the Realtime API or of the Live API (told apart
by the log's first event that only one of them has; `--api` forces one). The lines go through
exactly the code the sideband worker runs (`capture_frame` or `live_capture_frame`, then the
fenced `turns_write`) into a new session, and the session's turns are printed as a JSON list
in conversation order, in the shape of the reference corpus's EXPECTED.json (Live turns add
their `start_ms`/`end_ms` on the session's timeline).

Any file replays: a line that is not UTF-8 or not an event is skipped and counted as malformed
(as the worker skips such a frame), text Postgres cannot store is replaced by the capture's
rule (sessions_app.storable, for both APIs), and a line whose records the database still
refuses costs only those records.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessions_app.models import Call, Session, TranscriptTurn
from sideband.capture import CallEnded, CaptureState, ItemMissing, Op, capture_frame
from sideband.capture.handlers import HANDLERS as REALTIME_HANDLERS
from sideband.live_capture import (
    LiveCaptureState,
    live_capture_finish,
    live_capture_frame,
)
from sideband.live_capture.handlers import HANDLERS as LIVE_HANDLERS
from sideband.transcript import Refused, turns_write

REALTIME = "realtime"
LIVE = "live"


class Command(BaseCommand):
    help = "Replay a recorded Realtime event log (JSONL) through the transcript capture."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="a .jsonl file: one server event per line")
        parser.add_argument(
            "--api",
            choices=["auto", REALTIME, LIVE],
            default="auto",
            help="the API the log was recorded from (default: told from its events)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        try:
            # Bytes: each line is decoded by the capture, like a frame, so one line that is
            # not UTF-8 is one malformed frame, not a failed replay.
            lines = path.read_bytes().splitlines()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from exc

        api = options["api"] if options["api"] != "auto" else log_api(lines)
        session = Session.objects.create(
            owner_hash="replay",
            model=settings.REALTIME_MODELS[0],
            voice=settings.REALTIME_VOICES[0],
            current_generation=1,
        )
        call = Call.objects.create(
            session=session, generation=1, call_id=f"replay_{secrets.token_hex(12)}"
        )
        if api == LIVE:
            self._replay_live(call, lines)
            return
        state = CaptureState(transcription_expected=session.transcription_enabled)
        missing = refused = 0
        for line in lines:
            if not line.strip():
                continue
            ops = capture_frame(state, line)
            refused += self._apply(call, ops)
            missing += sum(isinstance(op, ItemMissing) for op in ops)  # a log cannot answer

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

    def _replay_live(self, call: Call, lines: list[bytes]) -> None:
        state = LiveCaptureState()
        refused = 0
        for line in lines:
            if line.strip():
                refused += self._apply(call, live_capture_frame(state, line))
        # A log that stops without session.closed closes its open turns, as the SDK's close().
        refused += self._apply(call, live_capture_finish(state))
        turns = TranscriptTurn.objects.filter(session=call.session).order_by("position")
        out = []
        for turn in turns:
            start_ms, end_ms = state.spans[turn.item_id]
            out.append({**turn_json(turn), "start_ms": start_ms, "end_ms": end_ms})
        self.stdout.write(json.dumps(out, indent=1, ensure_ascii=False))
        unknown = ", ".join(f"{k}={v}" for k, v in sorted(state.unknown_event_counts.items()))
        self.stderr.write(
            f"session {call.session.public_id} (live): {state.events} events, "
            f"{state.malformed_frames} malformed, closed: {state.closed_reason or 'no'}, "
            f"unknown: {unknown or 'none'}; {refused} refused writes"
        )

    def _apply(self, call: Call, ops: list[Op]) -> int:
        """Write one line's records; 1 when the database refused them (only those), else 0."""
        for op in ops:
            if isinstance(op, CallEnded):
                self.stderr.write(f"call ended upstream: {op.reason}")
        try:
            turns_write(call=call, ops=ops)
        except Refused as exc:
            self.stderr.write(f"records refused by the database: {exc.cause!r}")
            return 1
        return 0


def log_api(lines: list[bytes]) -> str:
    """The API a log was recorded from: its first event type that only one API has."""
    for line in lines:
        try:
            event_type = json.loads(line).get("type")
        except (ValueError, AttributeError, TypeError, RecursionError):
            continue
        if not isinstance(event_type, str):
            continue
        if event_type in LIVE_HANDLERS and event_type not in REALTIME_HANDLERS:
            return LIVE
        if event_type in REALTIME_HANDLERS and event_type not in LIVE_HANDLERS:
            return REALTIME
    return REALTIME


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
