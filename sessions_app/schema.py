"""OpenAPI (drf-spectacular) description of the client-cookie credential."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ClientCookieScheme(OpenApiAuthenticationExtension):
    target_class = "sessions_app.auth.ClientCookieAuthentication"
    name = "clientCookie"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "apiKey", "in": "cookie", "name": settings.CLIENT_COOKIE_NAME}
