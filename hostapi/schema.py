"""The OpenAPI security schemes of the two bearer credentials (drf-spectacular extensions,
loaded by HostapiConfig.ready)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class _BearerScheme(OpenApiAuthenticationExtension):
    bearer_format = ""
    description = ""

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": self.bearer_format,
            "description": self.description,
        }


class ApiKeyScheme(_BearerScheme):
    target_class = "hostapi.keys.ApiKeyAuthentication"
    name = "apiKey"
    bearer_format = "rtk_<prefix>_<secret>"
    description = "A server-to-server API key (admin: Api keys), scoped read / write / delete."


class HostTokenScheme(_BearerScheme):
    target_class = "sessions_app.auth.HostUserAuthentication"
    name = "hostToken"
    bearer_format = "JWT"
    description = (
        "A short-lived token the host app signs for its user: sub (user id), exp, aud "
        "(HOST_TOKEN_AUDIENCE); HS256 or RS256/ES256/EdDSA."
    )
