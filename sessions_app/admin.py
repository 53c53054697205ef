"""Admin: sessions with their calls and turns (read-only), secrets masked, transcript export."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from sessions_app import selectors
from sessions_app.models import Call, ClientSecret, Session, TranscriptTurn

MASK = "•••••••• (encrypted)"


class _ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CallInline(_ReadOnlyInline):
    model = Call
    fields = ("call_id", "generation", "registered_at", "attached_at", "ended_at", "end_reason")
    readonly_fields = fields
    ordering = ("generation",)


class TranscriptTurnInline(_ReadOnlyInline):
    model = TranscriptTurn
    fields = ("position", "role", "text", "status", "status_reason", "item_id", "call")
    readonly_fields = fields
    ordering = ("position",)


class ClientSecretInline(_ReadOnlyInline):
    model = ClientSecret
    # value_encrypted is never shown: the mask stands in for it.
    fields = ("kind", "masked_value", "expires_at", "upstream_session_id", "created_at")
    readonly_fields = fields

    @admin.display(description="value")
    def masked_value(self, obj: ClientSecret) -> str:
        return MASK


def transcript_markdown(session: Session) -> str:
    lines = [
        f"# Session {session.public_id}",
        "",
        f"- model: {session.model}, voice: {session.voice}",
        f"- status: {session.status}, created: {session.created_at.isoformat()}",
        "",
    ]
    for turn in selectors.turn_list(session=session):
        who = {
            TranscriptTurn.Role.USER: "User",
            TranscriptTurn.Role.ASSISTANT: "Assistant",
            TranscriptTurn.Role.TOOL_CALL: "Function call",
            TranscriptTurn.Role.TOOL_OUTPUT: "Function output",
        }[TranscriptTurn.Role(turn.role)]
        if turn.role == TranscriptTurn.Role.TOOL_CALL:
            body = f"`{turn.name}({turn.arguments})`"
        elif turn.role == TranscriptTurn.Role.TOOL_OUTPUT:
            body = f"`{turn.output}`"
        else:
            body = turn.text if turn.text is not None else "_(no transcript)_"
        status = "" if turn.status == TranscriptTurn.Status.COMPLETED else f" _[{turn.status}]_"
        lines.append(f"**{who}:** {body}{status}")
        lines.append("")
    return "\n".join(lines)


def _attachment(content: str, *, filename: str, content_type: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = (
        "public_id",
        "owner_subject",
        "status",
        "model",
        "voice",
        "current_generation",
        "created_at",
    )
    list_filter = ("status", "created_at")
    # owner_subject: the host app's user id (sessions_app.identity); "" for a browser cookie.
    search_fields = ("public_id", "calls__call_id", "owner_subject")
    date_hierarchy = "created_at"
    readonly_fields = (
        "public_id",
        "owner_subject",
        "model",
        "voice",
        "transcription_enabled",
        "status",
        "current_generation",
        "push_seq",
        "replaces",
        "created_at",
        "updated_at",
        "closed_at",
        "close_reason",
    )
    exclude = ("owner_hash",)
    inlines = (ClientSecretInline, CallInline, TranscriptTurnInline)
    actions = ("export_transcript_json", "export_transcript_markdown")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Export transcript as JSON")
    def export_transcript_json(
        self, request: HttpRequest, queryset: QuerySet[Session]
    ) -> HttpResponse:
        data = [
            {
                "sessionId": str(session.public_id),
                "model": session.model,
                "voice": session.voice,
                "status": session.status,
                "turns": [selectors.turn_json(t) for t in selectors.turn_list(session=session)],
            }
            for session in queryset.order_by("created_at")
        ]
        return _attachment(
            json.dumps(data, indent=2, ensure_ascii=False),
            filename="transcripts.json",
            content_type="application/json",
        )

    @admin.action(description="Export transcript as Markdown")
    def export_transcript_markdown(
        self, request: HttpRequest, queryset: QuerySet[Session]
    ) -> HttpResponse:
        text = "\n".join(transcript_markdown(s) for s in queryset.order_by("created_at"))
        return _attachment(text, filename="transcripts.md", content_type="text/markdown")


@admin.register(Call)
class CallAdmin(admin.ModelAdmin):
    list_display = ("call_id", "session", "generation", "registered_at", "ended_at", "end_reason")
    list_filter = ("end_reason", "registered_at")
    search_fields = ("call_id", "session__public_id")
    readonly_fields = (
        "call_id",
        "session",
        "generation",
        "secret",
        "registered_at",
        "attached_at",
        "ended_at",
        "end_reason",
        "lease_owner",
        "lease_expires_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
