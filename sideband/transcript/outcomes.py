"""What one call's write comes to: its turns, Fenced or Refused; what the database refuses."""

from __future__ import annotations

import psycopg
from django.db import DataError, IntegrityError

from sessions_app.models import Call, TranscriptTurn

# What the database (or the driver, before sending) refuses for a record: a constraint, a value
# a column cannot hold. Django raises its own classes, the asyncio connection psycopg's; text
# the capture made storable (sessions_app.storable) never meets the last three.
REFUSED = (IntegrityError, DataError, psycopg.IntegrityError, psycopg.DataError, UnicodeEncodeError)


class Fenced(Exception):
    """The write was refused: a newer call of the session took over, or this call ended."""


class Refused(Exception):
    """The database refused every record of a call's write (nothing of it was written)."""

    def __init__(self, call: Call, cause: Exception) -> None:
        super().__init__(f"call {call.call_id}: {type(cause).__name__}: {cause}")
        self.cause = cause


def fenced(call: Call) -> Fenced:
    return Fenced(f"call {call.call_id} (generation {call.generation}) is fenced off")


# A call's write: the turns created or changed (in the order of its records), or why not.
Outcome = list[TranscriptTurn] | Fenced | Refused

# A call's part of the set-based plan (sideband.transcript.plan); None: the call is live but
# its writes were not made there: the turn-by-turn path writes them (a position query is
# needed, or the database refused the batch).
PlanOutcome = list[TranscriptTurn] | Fenced | None
