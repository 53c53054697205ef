"""Memory that follows a user across sessions.

A new session of an owner (a host-app user by default, a browser cookie when it asks) starts
from what the owner's earlier sessions left: the newest profile of any of them, and a recap of
the newest spoken turns of the latest one that has any, both inside the instructions builder's
budget (the upstream's limit on instructions). The profile is copied as version 1 of the new
session, so extraction there continues from it; the recap is read, never copied.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q

from extraction.instructions import (
    RecapTurn,
    instructions_budget,
    instructions_build,
    recap_size,
)
from extraction.models import Profile
from extraction.schema import profile_from_data
from extraction.selectors import CONVERSATION_ROLES, SPOKEN_STATUSES, recap_turns
from sessions_app.models import Session, TranscriptTurn


@dataclass(frozen=True)
class Memory:
    """What an owner's next session starts with."""

    profile: Profile | None
    recap: list[RecapTurn]
    # The session the recap was read from.
    recap_session: Session | None

    @property
    def empty(self) -> bool:
        return self.profile is None and not self.recap


def memory_of(*, owner_hash: str) -> Memory:
    """The owner's newest profile and the recap of their latest session with spoken turns."""
    profile = (
        Profile.objects.filter(session__owner_hash=owner_hash)
        .select_related("session")
        .order_by("-created_at", "-id")
        .first()
    )
    spoken = (
        TranscriptTurn.objects.filter(
            session__owner_hash=owner_hash,
            role__in=CONVERSATION_ROLES,
            status__in=SPOKEN_STATUSES,
        )
        .exclude(Q(text__isnull=True) | Q(text=""))
        .select_related("session")
        .order_by("-session__created_at", "-position")
        .first()
    )
    recap_session = spoken.session if spoken is not None else None
    recap = recap_turns(session=recap_session, limit=recap_size()) if recap_session else []
    return Memory(profile=profile, recap=recap, recap_session=recap_session)


def memory_instructions(memory: Memory) -> str:
    """The first instructions of a session that starts with `memory` (its profile as v1)."""
    profile = memory.profile
    return instructions_build(
        base=settings.REALTIME_BASE_INSTRUCTIONS,
        profile=profile_from_data(profile.data) if profile is not None else None,
        version=1 if profile is not None else None,
        recap=memory.recap,
        budget=instructions_budget(),
    )


def memory_json(memory: Memory | None) -> dict[str, object]:
    """What the page is told was carried into its new session (`memory` of POST /session)."""
    if memory is None or memory.empty:
        return {"carried": False, "profile": None, "fromSessionId": None, "recapTurns": []}
    profile = memory.profile
    return {
        "carried": True,
        "profile": profile.data if profile is not None else None,
        "fromSessionId": str(profile.session.public_id) if profile is not None else None,
        "recapTurns": [{"role": turn.role, "text": turn.text} for turn in memory.recap],
    }
