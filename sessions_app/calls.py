"""Writes of calls: registering a call as its session's newest generation.

A call's generation is the sideband's fencing number. The bump is a conditional UPDATE (it also
row-locks the session, so concurrent registrations take turns); the unique call id settles two
registrations of the same call. The call it supersedes is ended (sessions_app.hooks.calls_end)
and the new one handed to the sideband worker after commit (hooks.call_dispatch).
"""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from sessions_app import hooks, selectors
from sessions_app.models import Call, Session, TranscriptTurn

logger = logging.getLogger(__name__)


class SessionClosed(Exception):
    """The session is closed: it takes no new call and no new secret."""


class CallConflict(Exception):
    """The call id is already bound to another session."""


def call_register(*, session: Session, call_id: str) -> tuple[Call, bool]:
    """Record `call_id` as the session's newest generation; (call, created).

    Idempotent for a call already registered to this session; the previous live call is
    ended as superseded. Raises CallConflict, SessionClosed.
    """
    existing = Call.objects.filter(call_id=call_id).first()
    if existing is not None:
        return _call_existing(existing, session=session), False
    try:
        with transaction.atomic():
            call = call_add(session=session, call_id=call_id)
            if call is None:
                raise SessionClosed
    except IntegrityError:
        # Registered concurrently: the winner's row decides.
        existing = Call.objects.filter(call_id=call_id).first()
        if existing is None:
            raise
        return _call_existing(existing, session=session), False
    logger.info(
        "call registered session=%s call=%s generation=%s",
        session.public_id,
        call_id,
        call.generation,
    )
    return call, True


def call_add(*, session: Session, call_id: str) -> Call | None:
    """In the caller's transaction: `call_id` becomes the session's newest generation (None
    when the session is closed); the previous live call is ended as superseded; the new one
    is dispatched to the sideband worker on commit."""
    bumped = Session.objects.filter(pk=session.pk, status=Session.Status.ACTIVE).update(
        current_generation=F("current_generation") + 1, updated_at=timezone.now()
    )
    if bumped == 0:
        return None
    generation = (
        Session.objects.filter(pk=session.pk).values_list("current_generation", flat=True).get()
    )
    # The older call stops here: fenced out, its page told, hung up upstream.
    superseded = Call.objects.filter(session=session, ended_at__isnull=True)
    _live_turns_close(session=session, calls=superseded)
    hooks.calls_end(calls=superseded, reason=Call.EndReason.SUPERSEDED)
    call = Call.objects.create(
        call_id=call_id,
        session=session,
        generation=generation,
        secret=selectors.secret_newest(session=session),
    )
    transaction.on_commit(
        lambda: hooks.call_dispatch(call_id=call.call_id, generation=call.generation)
    )
    session.current_generation = generation
    return call


def _live_turns_close(*, session: Session, calls: QuerySet[Call]) -> None:
    """A Live turn grows until its segment closes; once its call has ended nothing can add to
    it (a new call starts new turns), so it is complete as stored."""
    if session.api != Session.Api.LIVE:
        return
    TranscriptTurn.objects.filter(call__in=calls, status=TranscriptTurn.Status.IN_PROGRESS).update(
        status=TranscriptTurn.Status.COMPLETED, completed_at=timezone.now()
    )


def _call_existing(call: Call, *, session: Session) -> Call:
    if call.session_id != session.pk:
        raise CallConflict
    return call
