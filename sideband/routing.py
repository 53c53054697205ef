from __future__ import annotations

from django.urls import URLPattern, path

from sideband.consumers import SessionConsumer

websocket_urlpatterns: list[URLPattern] = [
    path("ws/session/<uuid:session_id>/", SessionConsumer.as_asgi()),
]
