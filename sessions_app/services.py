"""Writes of sessions: create (and refresh), renew, the idle close (calls: sessions_app.calls).

Every service that spends money upstream mints the client secret BEFORE opening its write
transaction: a failed mint writes nothing, and no session ever exists without its secret.
Races are settled in the database: the per-client lock (open-session cap, refresh), the
session's row lock (renew) and, for the call a Live session starts with, the call's own rules.
What a new session carries over (a profile, the owner's memory) and the instructions a renewed
one gets are the extraction's to say, through sessions_app.hooks.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from sessions_app import hooks, selectors, upstream, upstream_live
from sessions_app.calls import SessionClosed, call_add
from sessions_app.crypto import secret_encrypt, sha256_hex
from sessions_app.models import Call, ClientSecret, Session, TranscriptTurn
from sessions_app.voice import Started, voice_start

logger = logging.getLogger(__name__)


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
    # What the page is told was carried from the owner's earlier sessions, when it asked
    # (sessions_app.hooks.SessionStart.memory).
    memory: object | None = None


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
    start = hooks.session_start(
        owner_hash=owner_hash,
        previous=previous,
        carry_profile=carry_profile,
        carry_memory=carry_memory,
    )
    started = voice_start(
        api=api,
        model=model,
        voice=voice,
        transcription=transcription,
        instructions=start.instructions,
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
        secret = _started_secret(session=session, started=started, instructions=start.instructions)
        call = _started_call(session=session, started=started)
        if start.carry is not None:
            start.carry(session)
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
        memory=start.memory,
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
    call = call_add(session=session, call_id=started.call_id)
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
    hooks.calls_end(
        calls=Call.objects.filter(session_id=session.pk), reason=Call.EndReason.SESSION_CLOSED
    )
    session.refresh_from_db()
    return session


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
    instructions = hooks.session_instructions(session=session)
    history = (
        selectors.live_history(
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
