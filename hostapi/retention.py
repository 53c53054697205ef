"""Retention and deletion: a user's data on request, every owner's old sessions on schedule.

Deleting a session removes, by cascade, its client secrets, calls, turns, profiles and
extraction runs; the webhook deliveries about it (they hold its words) go too. What is kept is
a DataDeletion row: whose (the owner's hash), how many rows, who asked, never any content.
Work goes in batches of RETENTION_BATCH sessions, each its own transaction, so a large owner or
a long backlog never holds one long lock.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, fields

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from extraction.models import ExtractionRun, Profile
from hostapi.models import DataDeletion, WebhookDelivery
from sessions_app.models import Call, ClientSecret, Session, TranscriptTurn

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Counts:
    sessions: int = 0
    turns: int = 0
    profiles: int = 0
    secrets: int = 0
    deliveries: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )


def _batch_delete(session_ids: list[int]) -> Counts:
    """Delete these sessions and everything about them, in one transaction.

    Children go first, leaves before what they point at (a call PROTECTs its secret, turns
    and runs point at calls and profiles), so each DELETE is one statement and nothing is
    left for the cascade collector to order.
    """
    with transaction.atomic():
        # Lock what this batch deletes; rows another purge holds are its to delete.
        locked = list(
            Session.objects.select_for_update(skip_locked=True)
            .filter(pk__in=session_ids)
            .values_list("pk", "public_id")
        )
        session_ids = [pk for pk, _ in locked]
        public_ids = [public_id for _, public_id in locked]
        deliveries = WebhookDelivery.objects.filter(session_public_id__in=public_ids).delete()[0]
        turns = TranscriptTurn.objects.filter(session_id__in=session_ids).delete()[0]
        ExtractionRun.objects.filter(session_id__in=session_ids).delete()
        profiles = Profile.objects.filter(session_id__in=session_ids).delete()[0]
        Call.objects.filter(session_id__in=session_ids).delete()
        secrets = ClientSecret.objects.filter(session_id__in=session_ids).delete()[0]
        Session.objects.filter(pk__in=session_ids).delete()
    return Counts(
        sessions=len(public_ids),
        turns=turns,
        profiles=profiles,
        secrets=secrets,
        deliveries=deliveries,
    )


def _delete_all(sessions: QuerySet[Session]) -> Counts:
    total = Counts()
    while True:
        batch = list(
            sessions.order_by("pk").values_list("pk", flat=True)[: settings.RETENTION_BATCH]
        )
        if not batch:
            return total
        done = _batch_delete(batch)
        if done.sessions == 0:
            return total  # the batch is locked by a concurrent purge, which will finish it
        total = total + done


def _log(*, reason: str, owner_hash: str, requested_by: str, counts: Counts) -> DataDeletion:
    deletion = DataDeletion.objects.create(
        reason=reason,
        owner_hash=owner_hash,
        requested_by=requested_by[:150],
        sessions=counts.sessions,
        turns=counts.turns,
        profiles=counts.profiles,
        secrets=counts.secrets,
        deliveries=counts.deliveries,
    )
    logger.info(
        "data deleted reason=%s owner=%s by=%s sessions=%d turns=%d profiles=%d secrets=%d "
        "deliveries=%d",
        reason,
        owner_hash[:12] or "-",
        requested_by,
        counts.sessions,
        counts.turns,
        counts.profiles,
        counts.secrets,
        counts.deliveries,
    )
    return deletion


def owner_data_delete(*, owner_hash: str, requested_by: str) -> DataDeletion:
    """Delete every session of an owner (a host user's or a browser's) and what hangs on it."""
    counts = _delete_all(Session.objects.filter(owner_hash=owner_hash))
    return _log(
        reason=DataDeletion.Reason.USER_REQUEST,
        owner_hash=owner_hash,
        requested_by=requested_by,
        counts=counts,
    )


def retention_cutoff(*, now: dt.datetime | None = None) -> dt.datetime | None:
    """Sessions untouched since this moment are purged; None when retention is off."""
    days = settings.TRANSCRIPT_RETENTION_DAYS
    if days <= 0:
        return None
    return (now or timezone.now()) - dt.timedelta(days=days)


def retention_purge(*, now: dt.datetime | None = None) -> DataDeletion | None:
    """Purge sessions whose last lifecycle change (create, call, close: `updated_at`) is older
    than TRANSCRIPT_RETENTION_DAYS. Safe to run twice: the second finds nothing."""
    cutoff = retention_cutoff(now=now)
    if cutoff is None:
        return None
    old = Session.objects.filter(Q(updated_at__lt=cutoff))
    counts = _delete_all(old)
    if counts.sessions == 0:
        return None
    return _log(
        reason=DataDeletion.Reason.RETENTION, owner_hash="", requested_by="beat", counts=counts
    )
