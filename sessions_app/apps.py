from __future__ import annotations

from django.apps import AppConfig


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    verbose_name = "Realtime sessions"

    def ready(self) -> None:
        # Registers the OpenAPI description of the cookie credential.
        from sessions_app import schema  # noqa: F401
