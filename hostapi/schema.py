"""The OpenAPI security schemes of the two bearer credentials (drf-spectacular extensions,
loaded by HostapiConfig.ready)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "hostapi.keys.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "rtk_<prefix>_<secret>",
            "description": "A server-to-server API key (admin: Host API keys), scoped "
            "read / write / delete.",
        }


class HostTokenScheme(OpenApiAuthenticationExtension):
    target_class = "sessions_app.auth.HostUserAuthentication"
    name = "hostToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A short-lived token the host app signs for its user: sub (user "
            "id), exp, aud (HOST_TOKEN_AUDIENCE); HS256 or RS256/ES256/EdDSA.",
        }
