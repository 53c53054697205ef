"""Admin: sessions read as conversations (read-only), secrets masked, transcript export.

The session page shows the transcript as a conversation (speaker, time, typed or spoken, the
full text) instead of a table of turns, with its export buttons above; the list shows each
session's state as a person means it (live, idle, closed), its turn count and last turn.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import Count, Exists, OuterRef, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import truncatechars
from django.urls import URLPattern, path, reverse

from sessions_app import export, selectors
from sessions_app.models import Call, ClientSecret, Session, TranscriptTurn

MASK = "•••••••• (encrypted)"
PREVIEW_CHARS = 80


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
    classes = ("collapse",)


class ClientSecretInline(_ReadOnlyInline):
    model = ClientSecret
    # value_encrypted is never shown: the mask stands in for it.
    fields = ("kind", "masked_value", "expires_at", "upstream_session_id", "created_at")
    readonly_fields = fields
    classes = ("collapse",)

    @admin.display(description="value")
    def masked_value(self, obj: ClientSecret) -> str:
        return MASK


def _live_call() -> Exists:
    return Exists(Call.objects.filter(session=OuterRef("pk"), ended_at__isnull=True))


class StateFilter(admin.SimpleListFilter):
    """Active sessions whose page went away stay active (a reload may resume them): the filter
    tells those (idle) from the ones with a call going (live)."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("live", "Live (a call going)"), ("idle", "Idle (no call)"), ("closed", "Closed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == "closed":
            return queryset.filter(status=Session.Status.CLOSED)
        if value in ("live", "idle"):
            queryset = queryset.filter(status=Session.Status.ACTIVE).alias(live=_live_call())
            return queryset.filter(live=value == "live")
        return queryset


def _file_response(file: export.TranscriptFile) -> HttpResponse:
    response = HttpResponse(file.content, content_type=file.content_type)
    response["Content-Disposition"] = f'attachment; filename="{file.filename}"'
    return response


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = (
        "public_id",
        "state",
        "owner_subject",
        "turns",
        "last_turn",
        "model",
        "voice",
        "created_at",
    )
    list_filter = (StateFilter, "created_at", "model")
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
    fieldsets = (
        (None, {"fields": ("public_id", "status", "model", "voice", "created_at", "closed_at")}),
        (
            "Details",
            {
                "classes": ("collapse",),
                "fields": (
                    "transcription_enabled",
                    "current_generation",
                    "push_seq",
                    "replaces",
                    "updated_at",
                    "close_reason",
                ),
            },
        ),
    )
    inlines = (ClientSecretInline, CallInline)
    actions = ("export_transcript_json", "export_transcript_markdown")
    change_form_template = "admin/sessions_app/session/change_form.html"

    class Media:
        css = {"all": ("admin/sessions.css",)}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Session]:
        last = TranscriptTurn.objects.filter(session=OuterRef("pk")).order_by("-position")
        return (
            super()
            .get_queryset(request)
            .annotate(
                turn_count=Count("turns", distinct=True),
                last_text=Subquery(last.values("text")[:1]),
                live=_live_call(),
            )
        )

    @admin.display(description="state")
    def state(self, obj: Session) -> str:
        if obj.status == Session.Status.CLOSED:
            return "Closed"
        return "Live" if getattr(obj, "live", False) else "Idle"

    @admin.display(description="turns", ordering="turn_count")
    def turns(self, obj: Session) -> int:
        return int(getattr(obj, "turn_count", 0))

    @admin.display(description="last turn")
    def last_turn(self, obj: Session) -> str:
        text = getattr(obj, "last_text", None)
        return truncatechars(text, PREVIEW_CHARS) if text else "—"

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<path:object_id>/transcript.<str:kind>",
                self.admin_site.admin_view(self.transcript_file_view),
                name="sessions_app_session_transcript",
            )
        ]
        return own + super().get_urls()

    def transcript_file_view(self, request: HttpRequest, object_id: str, kind: str) -> HttpResponse:
        session = get_object_or_404(Session, pk=object_id)
        if not self.has_view_permission(request, session):
            raise Http404
        try:
            return _file_response(export.transcript_file(session, kind=kind))
        except ValueError:
            raise Http404 from None

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        session = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if session is not None:
            context["conversation"] = [
                {
                    "turn": turn,
                    "speaker": export.SPEAKER[TranscriptTurn.Role(turn.role)],
                    "body": turn.text if turn.role in ("user", "assistant") else None,
                    "code": export.turn_body(turn)
                    if turn.role not in ("user", "assistant")
                    else None,
                    "marks": export.turn_marks(turn),
                }
                for turn in selectors.turn_list(session=session)
            ]
            context["export_links"] = [
                (
                    label,
                    reverse(
                        "admin:sessions_app_session_transcript",
                        kwargs={"object_id": session.pk, "kind": kind},
                    ),
                )
                for label, kind in (("Export Markdown", "md"), ("Export JSON", "json"))
            ]
        return super().change_view(request, object_id, form_url, extra_context=context)

    @admin.action(description="Export transcript as JSON")
    def export_transcript_json(
        self, request: HttpRequest, queryset: QuerySet[Session]
    ) -> HttpResponse:
        data = [export.transcript_document(s) for s in queryset.order_by("created_at")]
        return _file_response(
            export.TranscriptFile(
                "transcripts.json",
                "application/json",
                json.dumps(data, indent=2, ensure_ascii=False),
            )
        )

    @admin.action(description="Export transcript as Markdown")
    def export_transcript_markdown(
        self, request: HttpRequest, queryset: QuerySet[Session]
    ) -> HttpResponse:
        text = "\n".join(export.transcript_markdown(s) for s in queryset.order_by("created_at"))
        return _file_response(
            export.TranscriptFile("transcripts.md", "text/markdown; charset=utf-8", text)
        )


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
