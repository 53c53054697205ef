"""Admin: API keys (shown once, revocable), webhook endpoints (secret shown once, rotatable),
the delivery log (read-only), and deleting a user's data (logged without content)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from hostapi.keys import api_key_issue, api_key_revoke
from hostapi.models import ApiKey, DataDeletion, EventType, WebhookDelivery, WebhookEndpoint
from hostapi.retention import owner_data_delete
from hostapi.webhooks import webhook_secret_rotate
from sessions_app.crypto import secret_encrypt
from sessions_app.identity import subject_owner_hash, subject_valid
from sessions_app.models import Session


class _NoChange:
    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "prefix",
        "scope_read",
        "scope_write",
        "scope_delete",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    list_filter = ("revoked_at",)
    fields = (
        "name",
        "scope_read",
        "scope_write",
        "scope_delete",
        "prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke",)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        raw = api_key_issue(key=obj)
        messages.warning(request, f"The API key, shown only now: {raw}")

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = sum(api_key_revoke(key=key) for key in queryset)
        messages.info(request, f"{revoked} key(s) revoked.")


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        choices=EventType.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("url", "description", "event_types", "is_active")


class WebhookDeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    extra = 0
    can_delete = False
    fields = (
        "event_type",
        "event_id",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "created_at",
        "delivered_at",
    )
    readonly_fields = fields
    ordering = ("-created_at",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ("url", "is_active", "event_types", "created_at")
    actions = ("rotate_secret",)

    def save_model(
        self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool
    ) -> None:
        if not change:
            from hostapi.webhooks import webhook_secret_new

            secret = webhook_secret_new()
            obj.secret_encrypted = secret_encrypt(secret)
            messages.warning(request, f"The signing secret, shown only now: {secret}")
        super().save_model(request, obj, form, change)

    @admin.action(description="Rotate the signing secret")
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            secret = webhook_secret_rotate(endpoint=endpoint)
            messages.warning(request, f"New secret of {endpoint.url}, shown only now: {secret}")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(_NoChange, admin.ModelAdmin):
    list_display = (
        "event_type",
        "event_id",
        "endpoint",
        "status",
        "attempts",
        "last_status_code",
        "created_at",
        "delivered_at",
    )
    list_filter = ("status", "event_type")
    search_fields = ("event_id",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class DataDeletionForm(forms.ModelForm):
    subject = forms.CharField(required=False, help_text="The host app's user id (a token's sub).")
    session_id = forms.UUIDField(
        required=False, help_text="Or any session of the owner (e.g. an anonymous browser)."
    )

    class Meta:
        model = DataDeletion
        fields: tuple[str, ...] = ()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        subject, session_id = data.get("subject"), data.get("session_id")
        if bool(subject) == bool(session_id):
            raise forms.ValidationError("Give a subject or a session id.")
        if subject:
            if not subject_valid(subject):
                raise forms.ValidationError({"subject": "Not a user id."})
            data["owner_hash"] = subject_owner_hash(subject)
        else:
            owner = (
                Session.objects.filter(public_id=str(session_id))
                .values_list("owner_hash", flat=True)
                .first()
            )
            if owner is None:
                raise forms.ValidationError({"session_id": "No such session."})
            data["owner_hash"] = owner
        return data


@admin.register(DataDeletion)
class DataDeletionAdmin(_NoChange, admin.ModelAdmin):
    """Add = delete an owner's data; the list is the deletion log."""

    list_display = (
        "created_at",
        "reason",
        "owner_hash",
        "requested_by",
        "sessions",
        "turns",
        "profiles",
        "secrets",
        "deliveries",
    )
    list_filter = ("reason",)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = DataDeletionForm
        return super().get_form(request, obj, change, **kwargs)

    def save_model(self, request: HttpRequest, obj: DataDeletion, form: Any, change: bool) -> None:
        user = getattr(request, "user", None)
        deletion = owner_data_delete(
            owner_hash=form.cleaned_data["owner_hash"],
            requested_by=f"admin:{getattr(user, 'username', '?')}",
        )
        obj.pk = deletion.pk
        obj.created_at = deletion.created_at
        obj._state.adding = False
