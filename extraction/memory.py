"""What a new session starts with from the owner's earlier sessions (`session_start`, the
ground floor's hook sessions_app.hooks.session_start).

Memory follows a user across sessions: a new session of an owner (a host-app user by default, a
browser cookie when it asks) starts from what the owner's earlier sessions left, the newest
profile of any of them and a recap of the newest spoken turns of the latest one that has any,
both inside the instructions builder's budget (the upstream's limit on instructions). A refresh
with carryProfile starts from the refreshed session's latest profile only. A carried profile is
copied as version 1 of the new session, so extraction there continues from it; the recap is
read, never copied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q

from extraction.instructions import (
    RecapTurn,
    carried_instructions,
    instructions_budget,
    instructions_build,
    recap_size,
)
from extraction.models import Profile
from extraction.schema import profile_from_data
from extraction.selectors import profile_latest, recap_turns
from extraction.services import profile_copy
from sessions_app.hooks import SessionStart
from sessions_app.models import Session, TranscriptTurn
from sessions_app.selectors import CONVERSATION_ROLES, SPOKEN_STATUSES


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

    @property
    def carried(self) -> bool:
        return not self.empty


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


def session_start(
    *, owner_hash: str, previous: Session | None, carry_profile: bool, carry_memory: bool
) -> SessionStart:
    """What a new session of `owner_hash` starts with (sessions_app.hooks.session_start): the
    owner's memory when `carry_memory` finds any; else, with `carry_profile`, the latest
    profile of `previous` (the session a refresh closes, its transcript not carried); else the
    base instructions. The instructions are built once, here; the profile they were built
    from is the one copied into the new session (`carry`)."""
    memory = memory_of(owner_hash=owner_hash) if carry_memory else None
    source: Profile | None = None
    if memory is not None and not memory.empty:
        instructions = memory_instructions(memory)
        source = memory.profile
    elif carry_profile and previous is not None:
        source = profile_latest(session=previous)
        instructions = (
            carried_instructions(profile=profile_from_data(source.data))
            if source is not None
            else settings.REALTIME_BASE_INSTRUCTIONS
        )
    else:
        instructions = settings.REALTIME_BASE_INSTRUCTIONS
    return SessionStart(
        instructions=instructions,
        carry=_profile_carry(source, instructions) if source is not None else None,
        memory=memory,
    )


def _profile_carry(source: Profile, instructions: str) -> Callable[[Session], Profile]:
    """Copies `source` as version 1 of the session it is given, with `instructions`."""
    return lambda session: profile_copy(
        source=source, to_session=session, instructions=instructions
    )
