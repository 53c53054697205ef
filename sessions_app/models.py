"""Sessions, their client secrets, calls and transcript turns (profiles: extraction.models).

Invariants live in the database as named constraints; services rely on them to settle races
(a second registration of a call, a stale sideband writing after a newer call took over).
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q


class Session(models.Model):
    """One conversation the server keeps the authoritative transcript of.

    A session outlives client secrets and calls: renew mints a new secret and the page
    registers a new call on the same session. Refresh (reset) creates a new session that
    points at the one it replaced.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        CLOSED = "closed", "Closed"

    class Api(models.TextChoices):
        """OpenAI's voice API the session runs on: its calls, sideband and wire protocol."""

        REALTIME = "realtime", "Realtime"
        LIVE = "live", "Live (GPT-Live)"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    api = models.CharField(max_length=16, choices=Api.choices, default=Api.REALTIME)
    model = models.CharField(max_length=64)
    voice = models.CharField(max_length=32)
    transcription_enabled = models.BooleanField(default=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # Who owns the session (sessions_app.identity): sha256 of the anonymous browser's credential
    # (never stored itself), or of "subject:<id>" for a host-app user.
    owner_hash = models.CharField(max_length=64)
    # The host app's user id (a token's `sub`, or request.user's pk); "" for a browser cookie.
    owner_subject = models.CharField(max_length=255, blank=True, default="")
    # The fencing number: the generation of the newest registered call. A sideband writes only
    # while its call's generation equals this value.
    current_generation = models.PositiveIntegerField(default=0)
    # Sequence number of live messages pushed to the page; lets the page spot a gap.
    push_seq = models.PositiveBigIntegerField(default=0)
    replaces = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="replaced_by",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                name="session_status_valid",
                condition=Q(status__in=["active", "closed"]),
            ),
            models.CheckConstraint(
                name="session_api_valid", condition=Q(api__in=["realtime", "live"])
            ),
            models.CheckConstraint(
                name="session_closed_at_iff_closed",
                condition=(Q(status="closed", closed_at__isnull=False))
                | (Q(status="active", closed_at__isnull=True)),
            ),
        ]
        indexes = [
            # Serves the per-client cap and the "close my previous session" query of refresh.
            models.Index(
                fields=["owner_hash", "created_at"],
                name="session_owner_active_idx",
                condition=Q(status="active"),
            ),
            # Serves the idle sweep (sessions_close_idle): open sessions untouched since a cutoff.
            models.Index(
                fields=["updated_at"],
                name="session_active_updated_idx",
                condition=Q(status="active"),
            ),
            # Serves a user's sessions in every state: the server API's listing and export,
            # the memory a new session starts with, and the deletion of a user's data.
            models.Index(fields=["owner_hash", "-created_at"], name="session_owner_idx"),
            # Serves the retention purge: sessions untouched since the cutoff, oldest first.
            models.Index(fields=["updated_at"], name="session_updated_idx"),
            # Serves the webhook scan of session.closed (hostapi.webhooks): closed since a time.
            models.Index(
                fields=["closed_at"], name="session_closed_at_idx", condition=Q(status="closed")
            ),
        ]

    def __str__(self) -> str:
        return str(self.public_id)


class ClientSecret(models.Model):
    """An ephemeral Realtime client secret minted upstream. The value is encrypted at rest."""

    class Kind(models.TextChoices):
        CREATE = "create", "Create"
        RENEW = "renew", "Renew"

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="secrets")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    # Fernet token (sessions_app.crypto); never logged, masked in admin.
    value_encrypted = models.TextField()
    # sha256 of the value: lets a call be matched to the secret it was made with.
    value_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    # The upstream Realtime session id (sess_...) the secret was minted for.
    upstream_session_id = models.CharField(max_length=64, blank=True)
    instructions = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                name="clientsecret_kind_valid", condition=Q(kind__in=["create", "renew"])
            ),
        ]
        indexes = [
            # Serves "the session's newest secret" (renew, sideband auth).
            models.Index(fields=["session", "-created_at"], name="clientsecret_session_idx"),
        ]

    def __str__(self) -> str:
        return f"secret {self.pk} of {self.session_id} (masked)"


class Call(models.Model):
    """A WebRTC call upstream: a Realtime call (`rtc_...`) the page registers after its SDP
    exchange, or a Live session (`live_...`) this server created with the page's offer."""

    class EndReason(models.TextChoices):
        SUPERSEDED = "superseded", "Superseded by a newer call"
        HANGUP = "hangup", "Hung up"
        SESSION_EXPIRED = "session_expired", "Session hit its maximum duration"
        SECRET_EXPIRED = "secret_expired", "Client secret expired"
        SESSION_CLOSED = "session_closed", "Session closed"
        UPSTREAM_ERROR = "upstream_error", "Upstream error"
        ABANDONED = "abandoned", "Abandoned: no upstream event and no page for a while"

    call_id = models.CharField(max_length=64, unique=True)
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="calls")
    # Increases per session; the sideband's fencing number.
    generation = models.PositiveIntegerField()
    secret = models.ForeignKey(
        ClientSecret, on_delete=models.PROTECT, related_name="calls", null=True, blank=True
    )
    registered_at = models.DateTimeField(auto_now_add=True)
    attached_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=32, choices=EndReason.choices, blank=True)
    # The sideband lease: who owns the socket and until when. A live call whose lease expired
    # is re-dispatched by the reconciler.
    lease_owner = models.CharField(max_length=128, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["session", "generation"]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "generation"], name="call_session_generation_uniq"
            ),
            models.CheckConstraint(name="call_generation_positive", condition=Q(generation__gte=1)),
            models.CheckConstraint(
                name="call_end_reason_iff_ended",
                condition=(Q(ended_at__isnull=True, end_reason=""))
                | (Q(ended_at__isnull=False) & ~Q(end_reason="")),
            ),
        ]
        indexes = [
            # Serves the reconciler: live calls whose lease has expired.
            models.Index(
                fields=["lease_expires_at"],
                name="call_live_lease_idx",
                condition=Q(ended_at__isnull=True),
            ),
            # Serves the webhook scan of call.ended (hostapi.webhooks): ended since a time.
            models.Index(
                fields=["ended_at"], name="call_ended_at_idx", condition=Q(ended_at__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return self.call_id


class TranscriptTurn(models.Model):
    """One conversation item, as the server's authoritative transcript records it."""

    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"
        TOOL_CALL = "tool_call", "Function call"
        TOOL_OUTPUT = "tool_output", "Function output"

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"
        INCOMPLETE = "incomplete", "Incomplete"
        FAILED = "failed", "Failed"
        # A spoken turn whose transcript never came (not even after asking upstream again).
        UNTRANSCRIBED = "untranscribed", "Not transcribed"

    class InputMode(models.TextChoices):
        TYPED = "text", "Typed"
        SPOKEN = "audio", "Spoken"
        NONE = "", "Not a user turn (or not known)"

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="turns")
    call = models.ForeignKey(
        Call, on_delete=models.SET_NULL, related_name="turns", null=True, blank=True
    )
    item_id = models.CharField(max_length=64)
    previous_item_id = models.CharField(max_length=64, blank=True)
    role = models.CharField(max_length=16, choices=Role.choices)
    # null = no text (yet): a spoken turn whose transcript has not arrived, or never will.
    text = models.TextField(null=True, blank=True)  # noqa: DJ001 - null is "no transcript"
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.IN_PROGRESS)
    status_reason = models.CharField(max_length=255, blank=True)
    # Orders the conversation across calls; sparse so an item can be placed between two others.
    position = models.BigIntegerField()
    # Function calls and outputs.
    name = models.CharField(max_length=128, blank=True)
    arguments = models.TextField(blank=True)
    tool_call_id = models.CharField(max_length=64, blank=True)
    output = models.TextField(blank=True)
    # How a user turn was given: its content's `input_text` or `input_audio` part.
    input_mode = models.CharField(
        max_length=8, choices=InputMode.choices, blank=True, default="", db_default=""
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["session", "position"]
        constraints = [
            models.UniqueConstraint(fields=["session", "item_id"], name="turn_session_item_uniq"),
            models.UniqueConstraint(
                fields=["session", "position"], name="turn_session_position_uniq"
            ),
            models.CheckConstraint(
                name="turn_role_valid",
                condition=Q(role__in=["user", "assistant", "tool_call", "tool_output"]),
            ),
            models.CheckConstraint(
                name="turn_status_valid",
                condition=Q(
                    status__in=["in_progress", "completed", "incomplete", "failed", "untranscribed"]
                ),
            ),
            models.CheckConstraint(
                name="turn_failed_has_reason",
                condition=~Q(status="failed") | ~Q(status_reason=""),
            ),
            models.CheckConstraint(
                name="turn_input_mode_of_user",
                condition=Q(input_mode="") | Q(role="user", input_mode__in=["text", "audio"]),
            ),
        ]
        indexes = [
            # Serves the webhook scan of turn.completed (hostapi.webhooks): completed since a time.
            models.Index(
                fields=["completed_at"],
                name="turn_completed_at_idx",
                condition=Q(completed_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role} {self.item_id}"
