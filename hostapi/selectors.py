"""Reads of the server-to-server API: a user's sessions, transcripts by page, profiles,
extraction runs, and the export of everything a user has."""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from extraction.models import ExtractionRun, Profile
from sessions_app.models import Session
from sessions_app.selectors import iso, session_json, turn_json, turn_list

MAX_PAGE = 500


def sessions_of(*, owner_hash: str, limit: int, before: Session | None = None) -> list[Session]:
    """The owner's sessions, newest first; those older than `before` when given."""
    sessions = Session.objects.filter(owner_hash=owner_hash)
    if before is not None:
        sessions = sessions.filter(
            Q(created_at__lt=before.created_at) | Q(created_at=before.created_at, pk__lt=before.pk)
        )
    return list(sessions.order_by("-created_at", "-pk")[:limit])


def session_api_json(*, session: Session) -> dict[str, Any]:
    return session_json(session=session) | {"subject": session.owner_subject or None}


def transcript_page_json(*, session: Session, after: int | None, limit: int) -> dict[str, Any]:
    """`limit` turns past `after`; `next` is the `after` of the following page, or null."""
    turns = list(turn_list(session=session, after=after)[: limit + 1])
    more = len(turns) > limit
    turns = turns[:limit]
    return {
        "sessionId": str(session.public_id),
        "turns": [turn_json(turn) for turn in turns],
        "next": turns[-1].position if more else None,
    }


def profile_json(profile: Profile) -> dict[str, Any]:
    return {
        "version": profile.version,
        "profile": profile.data,
        "instructions": profile.instructions,
        "turnCount": profile.turn_count,
        "createdAt": iso(profile.created_at),
    }


def profiles_json(*, session: Session) -> list[dict[str, Any]]:
    return [profile_json(p) for p in Profile.objects.filter(session=session).order_by("version")]


def run_json(run: ExtractionRun) -> dict[str, Any]:
    return {
        "runId": str(run.public_id),
        "status": run.status,
        "error": run.error or None,
        "profileVersion": run.profile.version if run.profile is not None else None,
        "createdAt": iso(run.created_at),
        "finishedAt": iso(run.finished_at),
    }


def runs_json(*, session: Session) -> list[dict[str, Any]]:
    runs = ExtractionRun.objects.filter(session=session).select_related("profile")
    return [run_json(run) for run in runs.order_by("created_at")]


def export_json(*, owner_hash: str, subject: str) -> dict[str, Any]:
    """Everything stored about the owner: each session with its transcript, profiles, runs."""
    sessions = Session.objects.filter(owner_hash=owner_hash).order_by("created_at", "pk")
    return {
        "subject": subject,
        "sessions": [
            session_api_json(session=session)
            | {
                "turns": [turn_json(turn) for turn in turn_list(session=session)],
                "profiles": profiles_json(session=session),
                "extractions": runs_json(session=session),
            }
            for session in sessions
        ],
    }
