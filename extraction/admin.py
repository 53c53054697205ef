from __future__ import annotations

from django.contrib import admin

from extraction.models import ExtractionRun


@admin.register(ExtractionRun)
class ExtractionRunAdmin(admin.ModelAdmin):
    """Read-only: runs are written by the extraction service only."""

    list_display = ("public_id", "session", "status", "attempts", "created_at", "finished_at")
    list_filter = ("status", "created_at")
    search_fields = ("public_id", "session__public_id")
    readonly_fields = (
        "public_id",
        "session",
        "status",
        "profile",
        "error",
        "attempts",
        "created_at",
        "finished_at",
    )

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False
