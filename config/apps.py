from __future__ import annotations

from django.apps import AppConfig


class WiringConfig(AppConfig):
    """The top floor as an app (last in INSTALLED_APPS): once every app is loaded it connects
    the ground floor's hooks to the features (config.wiring)."""

    name = "config"

    def ready(self) -> None:
        from config.wiring import wire

        wire()
