from __future__ import annotations

from django.urls import URLPattern, path, re_path

from sideband.consumers import RouteNotFoundConsumer, SessionConsumer

websocket_urlpatterns: list[URLPattern] = [
    path("ws/session/<uuid:session_id>/", SessionConsumer.as_asgi()),
    # Last: any other path (a session id that is not a UUID, a route that does not exist) is
    # refused with a close, not a "No route found" traceback.
    re_path(r"", RouteNotFoundConsumer.as_asgi()),
]
