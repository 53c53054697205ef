from __future__ import annotations

from django.apps import AppConfig


class HostapiConfig(AppConfig):
    """The host app's side: API keys, the server-to-server API, webhooks, retention."""

    name = "hostapi"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from hostapi import schema  # noqa: F401 - registers the OpenAPI security schemes
