"""Writes of the session API: create (and refresh), call registration, renew.

Every service that spends money upstream mints the client secret BEFORE opening its write
transaction: a failed mint writes nothing, and no session ever exists without its secret.
Races are settled in the database: the per-client lock (open-session cap, refresh), the
conditional generation bump (call registration) and the unique call id.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from config.outages import BROKER_AWAY
from extraction.instructions import profile_carry_instructions, session_instructions
from extraction.memory import Memory, memory_instructions, memory_of
from extraction.selectors import live_history
from extraction.services import profile_carry, profile_copy
from sessions_app import selectors, upstream, upstream_live
from sessions_app.crypto import secret_encrypt, sha256_hex
from sessions_app.models import Call, ClientSecret, Session, TranscriptTurn
from sessions_app.voice import Started, voice_start

logger = logging.getLogger(__name__)


class SessionClosed(Exception):
    """The session is closed: it takes no new call and no new secret."""


class CallConflict(Exception):
    """The call id is already bound to another session."""


class OpenSessionsLimit(Exception):
    """The client already holds settings.MAX_OPEN_SESSIONS_PER_CLIENT open sessions."""


@dataclass(frozen=True)
class Created:
    session: Session
    # Realtime: the secret row and the plaintext secret, for the response only (the database
    # holds it encrypted). Live: None; the call is registered and `answer_sdp` is for the page.
    secret: ClientSecret | None
    secret_value: str | None
    expires_at: dt.datetime
    call: Call | None = None
    answer_sdp: str | None = None
    # What the owner's earlier sessions gave this one (extraction.memory), when it asked.
    memory: Memory | None = None


@dataclass(frozen=True)
class Renewed:
    session: Session
    secret: ClientSecret | None
    secret_value: str | None
    instructions: str
    call: Call | None
    expires_at: dt.datetime
    answer_sdp: str | None = None


def _client_lock(owner_hash: str) -> None:
    """Serialise one client's session writes until the transaction ends.

    On Postgres a transaction-scoped advisory lock keyed by the owner hash; SQLite (the
    embedded mode) serialises every write transaction already.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [owner_hash])


def _secret_row(
    *, session: Session, kind: str, minted: upstream.MintedSecret, instructions: str
) -> ClientSecret:
    return ClientSecret.objects.create(
        session=session,
        kind=kind,
        value_encrypted=secret_encrypt(minted.value),
        value_hash=sha256_hex(minted.value),
        expires_at=minted.expires_at,
        upstream_session_id=minted.upstream_session_id,
        instructions=instructions,
    )


def session_create(
    *,
    owner_hash: str,
    model: str,
    voice: str,
    transcription: bool,
    reset: bool = False,
    carry_profile: bool = False,
    api: str = Session.Api.REALTIME,
    offer_sdp: str | None = None,
    owner_subject: str = "",
    carry_memory: bool = False,
) -> Created:
    """Start a session upstream on `api` and record it, owned by `owner_hash`.

    Realtime mints a client secret; Live creates the upstream session with the browser's
    `offer_sdp`, and its call (generation 1) is registered here and dispatched on commit.
    `reset` is the seed's Refresh: the caller's newest open session is closed (its transcript
    kept, never reused) and the new session `replaces` it, so refresh never hits the cap.
    `carry_profile` (with reset) starts the new session from the closed one's latest profile.
    `carry_memory` starts it from the owner's memory (extraction.memory: the newest profile of
    any of their sessions and the latest turns); it wins over `carry_profile`.
    `owner_subject` is the host app's user id when a host user owns the session.
    Raises OpenSessionsLimit, sessions_app.voice.OfferMismatch, upstream.UpstreamError.
    """
    previous = selectors.session_newest_open(owner_hash=owner_hash) if reset else None
    if previous is None and selectors.session_open_count(owner_hash=owner_hash) >= (
        settings.MAX_OPEN_SESSIONS_PER_CLIENT
    ):
        # Checked before minting so an over-cap client spends nothing; re-checked under the lock.
        raise OpenSessionsLimit
    memory = memory_of(owner_hash=owner_hash) if carry_memory else None
    if memory is not None and not memory.empty:
        instructions = memory_instructions(memory)
    elif carry_profile and previous is not None:
        instructions = profile_carry_instructions(from_session=previous)
    else:
        instructions = settings.REALTIME_BASE_INSTRUCTIONS
    started = voice_start(
        api=api,
        model=model,
        voice=voice,
        transcription=transcription,
        instructions=instructions,
        history=[],
        offer_sdp=offer_sdp,
        ttl_seconds=settings.CLIENT_SECRET_TTL_S,
    )
    with _hangup_if_unrecorded(started), transaction.atomic():
        _client_lock(owner_hash)
        replaced: Session | None = None
        if previous is not None:
            replaced = _session_close_locked(session=previous, reason="refreshed")
        if replaced is None and selectors.session_open_count(owner_hash=owner_hash) >= (
            settings.MAX_OPEN_SESSIONS_PER_CLIENT
        ):
            raise OpenSessionsLimit
        session = Session.objects.create(
            owner_hash=owner_hash,
            api=api,
            owner_subject=owner_subject,
            model=model,
            voice=voice,
            transcription_enabled=transcription or api == Session.Api.LIVE,
            replaces=replaced,
        )
        secret = _started_secret(session=session, started=started, instructions=instructions)
        call = _started_call(session=session, started=started)
        if memory is not None and memory.profile is not None:
            profile_copy(source=memory.profile, to_session=session, instructions=instructions)
        elif carry_profile and replaced is not None:
            profile_carry(from_session=replaced, to_session=session)
    logger.info(
        "session created session=%s api=%s replaces=%s",
        session.public_id,
        api,
        replaced.public_id if replaced is not None else "-",
    )
    return Created(
        session=session,
        secret=secret,
        secret_value=started.secret.value if started.secret is not None else None,
        expires_at=started.expires_at,
        call=call,
        answer_sdp=started.answer_sdp,
        memory=memory,
    )


class _hangup_if_unrecorded:
    """A Live session created upstream whose recording then failed (the cap, a closed
    session) is hung up, so nothing runs upstream that no row points at. Best effort."""

    def __init__(self, started: Started) -> None:
        self.started = started

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is not None and self.started.call_id is not None:
            upstream_live.live_session_hangup_quietly(self.started.call_id)


def _started_secret(
    *, session: Session, started: Started, instructions: str, kind: str = ClientSecret.Kind.CREATE
) -> ClientSecret | None:
    if started.secret is None:
        return None
    return _secret_row(session=session, kind=kind, minted=started.secret, instructions=instructions)


def _started_call(*, session: Session, started: Started) -> Call | None:
    """Live: the upstream session is the session's newest call, registered now."""
    if started.call_id is None:
        return None
    call = _call_add(session=session, call_id=started.call_id)
    if call is None:
        raise SessionClosed
    return call


def _session_close_locked(*, session: Session, reason: str) -> Session | None:
    """Close an open session and end its live calls; None when it was closed meanwhile."""
    now = timezone.now()
    closed = Session.objects.filter(pk=session.pk, status=Session.Status.ACTIVE).update(
        status=Session.Status.CLOSED, closed_at=now, close_reason=reason, updated_at=now
    )
    if closed == 0:
        return None
    _calls_end(
        calls=Call.objects.filter(session_id=session.pk), reason=Call.EndReason.SESSION_CLOSED
    )
    session.refresh_from_db()
    return session


def _calls_end(*, calls: QuerySet[Call], reason: str) -> None:
    """End the live calls of `calls`: the page is told and the upstream hangs them up, after
    commit (what a call end does is the sideband app's one rule: sideband.services.calls_end)."""
    from sideband.services import calls_end

    calls_end(calls=calls, reason=reason)


def _call_own_dispatch(call_id: str, generation: int) -> None:
    """Hand the call to the sideband worker. A lost dispatch is recovered by the reconciler
    (a live call without a lease), so a broker hiccup must not fail the registration."""
    from sideband.tasks import call_own

    try:
        call_own.delay(call_id, generation)
    except BROKER_AWAY as exc:
        logger.warning(
            "call_own not dispatched, broker away (the reconciler dispatches it when it is "
            "back) call=%s generation=%s: %r",
            call_id,
            generation,
            exc,
        )
    except Exception:
        logger.exception("dispatch of call_own failed call=%s generation=%s", call_id, generation)


def call_register(*, session: Session, call_id: str) -> tuple[Call, bool]:
    """Record `call_id` as the session's newest generation; (call, created).

    Idempotent for a call already registered to this session. The generation bump is a
    conditional UPDATE (it also row-locks the session, so concurrent registrations take
    turns); the previous live call is ended as superseded; the unique call id settles two
    registrations of the same call. Raises CallConflict, SessionClosed.
    """
    existing = Call.objects.filter(call_id=call_id).first()
    if existing is not None:
        return _call_existing(existing, session=session), False
    try:
        with transaction.atomic():
            call = _call_add(session=session, call_id=call_id)
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


def _call_add(*, session: Session, call_id: str) -> Call | None:
    """In the caller's transaction: `call_id` becomes the session's newest generation (None
    when the session is closed); the previous live call is ended as superseded; the new one
    is dispatched to the sideband worker on commit.

    The generation bump is a conditional UPDATE (it also row-locks the session, so
    concurrent registrations take turns); the unique call id settles two registrations of
    the same call.
    """
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
    _calls_end(calls=superseded, reason=Call.EndReason.SUPERSEDED)
    call = Call.objects.create(
        call_id=call_id,
        session=session,
        generation=generation,
        secret=selectors.secret_newest(session=session),
    )
    transaction.on_commit(lambda: _call_own_dispatch(call.call_id, call.generation))
    session.current_generation = generation
    return call


def _live_turns_close(*, session: Session, calls: Any) -> None:
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


def session_renew(*, session: Session, offer_sdp: str | None = None) -> Renewed:
    """Start the session's next upstream session with the latest profile's instructions.

    Realtime: a new client secret (the page registers its new call). Live: a new upstream
    session created with the browser's `offer_sdp`, seeded with `input` = the newest turns
    that fit Live's limits, registered as the session's newest call (the previous one is
    superseded) and dispatched on commit.
    Raises SessionClosed, sessions_app.voice.OfferMismatch, upstream.UpstreamError.
    """
    if session.status != Session.Status.ACTIVE:
        raise SessionClosed
    instructions = session_instructions(session=session)
    history = (
        live_history(
            session=session,
            max_messages=settings.LIVE_INPUT_MAX_MESSAGES,
            max_tokens=settings.LIVE_INPUT_MAX_TOKENS,
        )
        if session.api == Session.Api.LIVE
        else []
    )
    started = voice_start(
        api=session.api,
        model=session.model,
        voice=session.voice,
        transcription=session.transcription_enabled,
        instructions=instructions,
        history=history,
        offer_sdp=offer_sdp,
        ttl_seconds=settings.CLIENT_SECRET_TTL_S,
    )
    with _hangup_if_unrecorded(started), transaction.atomic():
        # Lock the session so a concurrent refresh cannot close it under the new secret.
        locked = Session.objects.select_for_update().filter(pk=session.pk).first()
        if locked is None or locked.status != Session.Status.ACTIVE:
            raise SessionClosed
        secret = _started_secret(
            session=locked, started=started, instructions=instructions, kind=ClientSecret.Kind.RENEW
        )
        call = _started_call(session=locked, started=started)
    logger.info("session renewed session=%s api=%s", session.public_id, session.api)
    return Renewed(
        session=locked,
        secret=secret,
        secret_value=started.secret.value if started.secret is not None else None,
        instructions=instructions,
        call=call if call is not None else selectors.call_current(session=locked),
        expires_at=started.expires_at,
        answer_sdp=started.answer_sdp,
    )


def sessions_close_idle(*, limit: int = 500) -> int:
    """Close sessions idle for SESSION_IDLE_CLOSE_S (reason "idle", transcript kept); how many.

    Idle: no live call, and nothing happened since the cutoff (no session change such as a
    call registration, no call ended, no turn written). The close is one conditional UPDATE
    re-checking all of it, so a session that comes alive meanwhile stays open.
    """
    cutoff = timezone.now() - dt.timedelta(seconds=settings.SESSION_IDLE_CLOSE_S)
    busy_call = Call.objects.filter(session=OuterRef("pk")).filter(
        Q(ended_at__isnull=True) | Q(ended_at__gte=cutoff)
    )
    recent_turn = TranscriptTurn.objects.filter(session=OuterRef("pk"), updated_at__gte=cutoff)
    idle = (
        Session.objects.filter(status=Session.Status.ACTIVE, updated_at__lt=cutoff)
        .exclude(Exists(busy_call))
        .exclude(Exists(recent_turn))
    )
    closed = 0
    for pk in idle.order_by("updated_at").values_list("pk", flat=True)[:limit]:
        now = timezone.now()
        closed += idle.filter(pk=pk).update(
            status=Session.Status.CLOSED, closed_at=now, close_reason="idle", updated_at=now
        )
    if closed:
        logger.info("closed %d idle sessions", closed)
    return closed
