from __future__ import annotations

from django.apps import AppConfig


class SidebandConfig(AppConfig):
    name = "sideband"
