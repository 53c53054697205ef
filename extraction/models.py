"""Profiles and the extraction runs that make them.

A profile version is what an extraction made of a session's transcript (its facts, and the
instructions built from them). A run is one request for a new version, from queued to done:
what the status URL of a 202 points at, what a second concurrent request joins, and where a
failed extraction reports its error (nothing else is written when it fails).
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from sessions_app.models import Session


class Profile(models.Model):
    """A structured profile extracted from a session's transcript; versions only increase."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="profiles")
    version = models.PositiveIntegerField()
    data = models.JSONField()
    instructions = models.TextField()
    # How many completed turns the profile was built from, and the last one's position:
    # the next extraction sends only the turns after it.
    turn_count = models.PositiveIntegerField()
    last_position = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # The table it had in sessions_app, kept when the model moved here (no data moved).
        db_table = "sessions_app_profile"
        ordering = ["session", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "version"], name="profile_session_version_uniq"
            ),
            models.CheckConstraint(name="profile_version_positive", condition=Q(version__gte=1)),
        ]
        indexes = [
            # Serves the webhook scan of profile.extracted and a user's newest profile (memory).
            models.Index(fields=["created_at"], name="profile_created_at_idx"),
        ]

    def __str__(self) -> str:
        return f"profile v{self.version} of {self.session_id}"


class ExtractionRun(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="extraction_runs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # The profile the run produced, or the unchanged latest one when there was nothing new.
    profile = models.ForeignKey(
        Profile, on_delete=models.SET_NULL, null=True, blank=True, related_name="runs"
    )
    # Why it failed, in words safe to show: never transcript text, never a secret.
    error = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Two concurrent requests make one run, hence one version: the second joins the first.
            models.UniqueConstraint(
                fields=["session"],
                condition=Q(status="pending"),
                name="extractionrun_one_pending_per_session",
            ),
            models.CheckConstraint(
                name="extractionrun_status_valid",
                condition=Q(status__in=["pending", "succeeded", "failed"]),
            ),
            models.CheckConstraint(
                name="extractionrun_finished_iff_done",
                condition=Q(status="pending", finished_at__isnull=True)
                | (~Q(status="pending") & Q(finished_at__isnull=False)),
            ),
            models.CheckConstraint(
                name="extractionrun_failed_has_error",
                condition=~Q(status="failed") | ~Q(error=""),
            ),
        ]

    def __str__(self) -> str:
        return f"extraction {self.public_id} ({self.status})"
