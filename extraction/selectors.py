"""Reads for extraction, rehydration and the instructions builder, and a profile's JSON."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from extraction.instructions import RecapTurn, instructions_budget, instructions_build, recap_size
from extraction.models import ExtractionRun, Profile
from extraction.schema import profile_from_data
from sessions_app.models import Call, Session, TranscriptTurn
from sessions_app.selectors import CONVERSATION_ROLES, SPOKEN_STATUSES

# An in-progress turn younger than this holds back the extraction window (its transcript may
# still arrive, possibly after the assistant's answer); an older one is treated as abandoned.
SETTLE_S = 30.0
# At most this many turns go into one Responses call; the rest waits for the next extraction.
MAX_TURNS_PER_EXTRACTION = 200


@dataclass(frozen=True)
class ExtractionWindow:
    """The turns the next extraction sends, and the position the profile will cover up to."""

    turns: list[TranscriptTurn]
    last_position: int | None


def profile_latest(*, session: Session) -> Profile | None:
    return Profile.objects.filter(session=session).order_by("-version").first()


def profile_payload(*, profile: Profile) -> dict[str, object]:
    """The API's and the live socket's JSON for a profile version."""
    return {
        "profile": profile.data,
        "instructions": profile.instructions,
        "version": profile.version,
    }


def profile_latest_payload(*, session: Session) -> dict[str, object] | None:
    """The profile in force (its instructions are applied on renew), as `profile_payload`."""
    profile = profile_latest(session=session)
    return profile_payload(profile=profile) if profile is not None else None


def session_instructions(*, session: Session) -> str:
    """Instructions for the session's next upstream session (renew): the latest profile and a
    recap of the latest turns, built now (extraction.instructions.instructions_build)."""
    profile = profile_latest(session=session)
    return instructions_build(
        base=settings.REALTIME_BASE_INSTRUCTIONS,
        profile=profile_from_data(profile.data) if profile is not None else None,
        version=profile.version if profile is not None else None,
        recap=recap_turns(session=session, limit=recap_size()),
        budget=instructions_budget(),
    )


def run_pending(*, session: Session) -> ExtractionRun | None:
    return ExtractionRun.objects.filter(
        session=session, status=ExtractionRun.Status.PENDING
    ).first()


def extraction_window(
    *, session: Session, after_position: int | None, now: dt.datetime | None = None
) -> ExtractionWindow:
    """Conversation turns after `after_position` that are final, up to the first one that is
    still settling.

    Stopping at a settling turn keeps the window a contiguous prefix, so the profile's
    `last_position` never skips a user turn whose transcript arrives late.
    """
    now = now or timezone.now()
    turns = TranscriptTurn.objects.filter(session=session, role__in=CONVERSATION_ROLES)
    if after_position is not None:
        turns = turns.filter(position__gt=after_position)
    settling_since = now - dt.timedelta(seconds=SETTLE_S)
    window: list[TranscriptTurn] = []
    last_position: int | None = None
    for turn in turns.order_by("position")[: MAX_TURNS_PER_EXTRACTION * 2]:
        if turn.status == TranscriptTurn.Status.IN_PROGRESS:
            if turn.updated_at >= settling_since:
                break
            continue
        last_position = turn.position
        if turn.status in SPOKEN_STATUSES and turn.text and turn.text.strip():
            window.append(turn)
            if len(window) >= MAX_TURNS_PER_EXTRACTION:
                break
    return ExtractionWindow(turns=window, last_position=last_position)


def recap_turns(*, session: Session, limit: int) -> list[RecapTurn]:
    """The latest `limit` spoken user/assistant turns, oldest first."""
    if limit <= 0:
        return []
    rows = (
        TranscriptTurn.objects.filter(
            session=session, role__in=CONVERSATION_ROLES, status__in=SPOKEN_STATUSES
        )
        .exclude(Q(text__isnull=True) | Q(text=""))
        .order_by("-position")
        .values_list("role", "text")[:limit]
    )
    return [RecapTurn(role=role, text=text or "") for role, text in reversed(list(rows))]


def seed_turns(*, call: Call, limit: int) -> list[TranscriptTurn]:
    """The latest `limit` spoken turns of the call's session from before this call, oldest
    first: what a renewed call is seeded with."""
    if limit <= 0:
        return []
    rows = (
        TranscriptTurn.objects.filter(
            session_id=call.session_id, role__in=CONVERSATION_ROLES, status__in=SPOKEN_STATUSES
        )
        .exclude(Q(text__isnull=True) | Q(text=""))
        .exclude(call__generation__gte=call.generation)
        .order_by("-position")[:limit]
    )
    return list(reversed(list(rows)))


def run_wait(*, run: ExtractionRun, timeout_s: float, poll_s: float = 0.05) -> ExtractionRun:
    """Re-read the run until it is no longer pending or `timeout_s` passed; the last read."""
    deadline = time.monotonic() + timeout_s
    current = run
    while True:
        current = ExtractionRun.objects.select_related("profile").get(pk=run.pk)
        if current.status != ExtractionRun.Status.PENDING or time.monotonic() >= deadline:
            return current
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
