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

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from config.outages import BROKER_AWAY
from extraction.instructions import profile_carry_instructions, session_instructions
from extraction.memory import Memory, memory_instructions, memory_of
from extraction.services import profile_carry, profile_copy
from sessions_app import selectors, upstream
from sessions_app.crypto import secret_encrypt, sha256_hex
from sessions_app.models import Call, ClientSecret, Session, TranscriptTurn

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
    secret: ClientSecret
    # The plaintext secret, for the response only; the database holds it encrypted.
    secret_value: str
    # What the owner's earlier sessions gave this one (extraction.memory), when it asked.
    memory: Memory | None = None


@dataclass(frozen=True)
class Renewed:
    session: Session
    secret: ClientSecret
    secret_value: str
    instructions: str
    call: Call | None


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
    owner_subject: str = "",
    carry_memory: bool = False,
) -> Created:
    """Mint a client secret and record a new session owned by `owner_hash`.

    `reset` is the seed's Refresh: the caller's newest open session is closed (its transcript
    kept, never reused) and the new session `replaces` it, so refresh never hits the cap.
    `carry_profile` (with reset) starts the new session from the closed one's latest profile.
    `carry_memory` starts it from the owner's memory (extraction.memory: the newest profile of
    any of their sessions and the latest turns); it wins over `carry_profile`.
    `owner_subject` is the host app's user id when a host user owns the session.
    Raises OpenSessionsLimit, upstream.UpstreamError.
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
    minted = upstream.client_secret_mint(
        model=model,
        voice=voice,
        transcription=transcription,
        instructions=instructions,
        ttl_seconds=settings.CLIENT_SECRET_TTL_S,
    )
    with transaction.atomic():
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
            owner_subject=owner_subject,
            model=model,
            voice=voice,
            transcription_enabled=transcription,
            replaces=replaced,
        )
        secret = _secret_row(
            session=session, kind=ClientSecret.Kind.CREATE, minted=minted, instructions=instructions
        )
        if memory is not None and memory.profile is not None:
            profile_copy(source=memory.profile, to_session=session, instructions=instructions)
        elif carry_profile and replaced is not None:
            profile_carry(from_session=replaced, to_session=session)
    logger.info(
        "session created session=%s replaces=%s",
        session.public_id,
        replaced.public_id if replaced is not None else "-",
    )
    return Created(session=session, secret=secret, secret_value=minted.value, memory=memory)


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
            bumped = Session.objects.filter(pk=session.pk, status=Session.Status.ACTIVE).update(
                current_generation=F("current_generation") + 1, updated_at=timezone.now()
            )
            if bumped == 0:
                raise SessionClosed
            generation = (
                Session.objects.filter(pk=session.pk)
                .values_list("current_generation", flat=True)
                .get()
            )
            # The older call stops here: fenced out, its page told, hung up upstream.
            _calls_end(calls=Call.objects.filter(session=session), reason=Call.EndReason.SUPERSEDED)
            call = Call.objects.create(
                call_id=call_id,
                session=session,
                generation=generation,
                secret=selectors.secret_newest(session=session),
            )
            transaction.on_commit(lambda: _call_own_dispatch(call.call_id, call.generation))
    except IntegrityError:
        # Registered concurrently: the winner's row decides.
        existing = Call.objects.filter(call_id=call_id).first()
        if existing is None:
            raise
        return _call_existing(existing, session=session), False
    session.current_generation = generation
    logger.info(
        "call registered session=%s call=%s generation=%s", session.public_id, call_id, generation
    )
    return call, True


def _call_existing(call: Call, *, session: Session) -> Call:
    if call.session_id != session.pk:
        raise CallConflict
    return call


def session_renew(*, session: Session) -> Renewed:
    """Mint a new client secret for the same session, with the latest profile's instructions.

    Raises SessionClosed, upstream.UpstreamError.
    """
    if session.status != Session.Status.ACTIVE:
        raise SessionClosed
    instructions = session_instructions(session=session)
    minted = upstream.client_secret_mint(
        model=session.model,
        voice=session.voice,
        transcription=session.transcription_enabled,
        instructions=instructions,
        ttl_seconds=settings.CLIENT_SECRET_TTL_S,
    )
    with transaction.atomic():
        # Lock the session so a concurrent refresh cannot close it under the new secret.
        locked = Session.objects.select_for_update().filter(pk=session.pk).first()
        if locked is None or locked.status != Session.Status.ACTIVE:
            raise SessionClosed
        secret = _secret_row(
            session=locked, kind=ClientSecret.Kind.RENEW, minted=minted, instructions=instructions
        )
    logger.info("session renewed session=%s", session.public_id)
    return Renewed(
        session=locked,
        secret=secret,
        secret_value=minted.value,
        instructions=instructions,
        call=selectors.call_current(session=locked),
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
