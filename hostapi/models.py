"""API keys of the host app's backend, its webhook endpoints and their deliveries, the scan
cursors that turn committed rows into deliveries, and the log of data deletions.

Secrets never stay in the clear: an API key is stored as its sha256 (the key has 256 random
bits, so a fast hash is enough), a webhook secret encrypted (sessions_app.crypto), as it must
be read back to sign.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class ApiKey(models.Model):
    """A server-to-server credential, scoped read / write / delete, revocable."""

    name = models.CharField(max_length=100)
    # The key's public part (`rtk_<prefix>_...`): shown in the admin and logs, finds the row.
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scope_read = models.BooleanField(default=True)
    scope_write = models.BooleanField(default=False)
    scope_delete = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                name="apikey_has_a_scope",
                condition=Q(scope_read=True) | Q(scope_write=True) | Q(scope_delete=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (rtk_{self.prefix}_…)"

    def scopes(self) -> list[str]:
        return [
            scope
            for scope, granted in (
                ("read", self.scope_read),
                ("write", self.scope_write),
                ("delete", self.scope_delete),
            )
            if granted
        ]


class EventType(models.TextChoices):
    TURN_COMPLETED = "turn.completed", "turn.completed"
    CALL_ENDED = "call.ended", "call.ended"
    SESSION_CLOSED = "session.closed", "session.closed"
    PROFILE_EXTRACTED = "profile.extracted", "profile.extracted"


class WebhookEndpoint(models.Model):
    """Where the host app wants to hear about events, signed with its own secret."""

    url = models.URLField(max_length=500)
    description = models.CharField(max_length=200, blank=True)
    # Fernet token of the `whsec_<base64>` secret (Standard Webhooks); never logged.
    secret_encrypted = models.TextField(editable=False)
    # The EventType values this endpoint receives.
    event_types = models.JSONField(default=list)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One event for one endpoint: its payload, its attempts, its outcome."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    # The `webhook-id` header: the same event has the same id on every attempt and endpoint.
    event_id = models.CharField(max_length=64)
    event_type = models.CharField(max_length=32, choices=EventType.choices)
    # The session the event is about: deleting a user's data or purging it removes the payload.
    session_public_id = models.UUIDField()
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # When the next attempt may start; while an attempt runs, when it is presumed lost.
    next_attempt_at = models.DateTimeField()
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Idempotent by event id: a rescan or a second emission adds no delivery.
            models.UniqueConstraint(
                fields=["endpoint", "event_id"], name="webhookdelivery_endpoint_event_uniq"
            ),
            models.CheckConstraint(
                name="webhookdelivery_status_valid",
                condition=Q(status__in=["pending", "delivered", "failed"]),
            ),
            models.CheckConstraint(
                name="webhookdelivery_event_type_valid",
                condition=Q(
                    event_type__in=[
                        "turn.completed",
                        "call.ended",
                        "session.closed",
                        "profile.extracted",
                    ]
                ),
            ),
            models.CheckConstraint(
                name="webhookdelivery_delivered_at_iff_delivered",
                condition=Q(status="delivered", delivered_at__isnull=False)
                | (~Q(status="delivered") & Q(delivered_at__isnull=True)),
            ),
        ]
        indexes = [
            # Serves the sweep: pending deliveries whose attempt is due or presumed lost.
            models.Index(
                fields=["next_attempt_at"],
                name="webhookdelivery_due_idx",
                condition=Q(status="pending"),
            ),
            # Serves deleting a user's data and the retention purge.
            models.Index(fields=["session_public_id"], name="webhookdelivery_session_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} -> {self.endpoint_id}"


class WebhookScanCursor(models.Model):
    """How far the scan of one event type's source rows got: the (timestamp, pk) of the last
    row read, a keyset position, so rows sharing a timestamp are neither skipped nor re-read."""

    event_type = models.CharField(max_length=32, choices=EventType.choices, unique=True)
    scanned_until = models.DateTimeField()
    scanned_pk = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.event_type} until {self.scanned_until.isoformat()}"


class DataDeletion(models.Model):
    """The log of one deletion: whose data (the owner's hash, never content), how much, who."""

    class Reason(models.TextChoices):
        USER_REQUEST = "user_request", "A user's data deleted"
        RETENTION = "retention", "Retention purge"

    reason = models.CharField(max_length=16, choices=Reason.choices)
    # sha256 of the owner (Session.owner_hash); "" for a retention purge of many owners.
    owner_hash = models.CharField(max_length=64, blank=True)
    # Who asked: "api-key:<prefix>", "admin:<username>", "beat".
    requested_by = models.CharField(max_length=150)
    sessions = models.PositiveIntegerField()
    turns = models.PositiveIntegerField()
    profiles = models.PositiveIntegerField()
    secrets = models.PositiveIntegerField()
    deliveries = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                name="datadeletion_reason_valid",
                condition=Q(reason__in=["user_request", "retention"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reason} of {self.sessions} sessions at {self.created_at.isoformat()}"
