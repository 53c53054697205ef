"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

from __future__ import annotations

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from sideband.origin import SameOriginValidator  # noqa: E402
from sideband.routing import websocket_urlpatterns  # noqa: E402

# /static/ (the page's ES modules, the admin's assets) straight from the finders, so neither
# `make run` nor the compose `web` service needs a separate file server.
http_app = ASGIStaticFilesHandler(django_asgi_app) if settings.SERVE_STATIC else django_asgi_app

websocket_app: Any = URLRouter(websocket_urlpatterns)
if settings.HOST_DJANGO_USERS:
    # Inside a host Django project its logged-in user owns sessions (sessions_app.identity).
    websocket_app = AuthMiddlewareStack(websocket_app)

application = ProtocolTypeRouter(
    {
        "http": http_app,
        # The origin on scheme, host and port (sideband.origin), then the routes.
        "websocket": SameOriginValidator(websocket_app),
    }
)
