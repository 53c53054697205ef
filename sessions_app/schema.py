"""OpenAPI (drf-spectacular) description of the API beyond the serializers: the client-cookie
credential, every error answer with its body, and the values the server enforces that only
settings know (models, voices).

The client cookie is optional on every operation (`security: [{clientCookie: []}, {}]`): a
browser without one may create a session (and gets a cookie), and any other request without
it is answered like a stranger's (404), never 401.

Two error bodies, both components of the schema (`schema_postprocess`):

- `ValidationError` (400): an object naming each field that is wrong, with its messages;
  `body` names the body as a whole (not JSON, not UTF-8, nested too deep, too large, not an
  object). Nothing was written.
- `Error` (every other error): `{detail, code?}`; `code` is a stable machine name where the
  server has one (`rate_limited`, `session_closed`, `upstream_error`, ...).

The schema is strict where the server is: request objects declare
`additionalProperties: false` (an unknown field is a 400) and strings have no surrounding
whitespace (the patterns and enums say so; `" marin"` is a 400, never trimmed).
"""

from __future__ import annotations

from typing import Any, Final

from django.conf import settings
from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes


class ClientCookieScheme(OpenApiAuthenticationExtension):
    target_class = "sessions_app.auth.ClientCookieAuthentication"
    name = "clientCookie"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "apiKey", "in": "cookie", "name": settings.CLIENT_COOKIE_NAME}

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[Any]]]:
        # Optional: with the cookie, or without it (see the module docstring).
        return [{self.name: []}, {}]


ERROR_COMPONENTS: Final[dict[str, dict[str, Any]]] = {
    "Error": {
        "type": "object",
        "properties": {
            "detail": {"type": "string", "description": "What went wrong, for a person."},
            "code": {"type": "string", "description": "What went wrong, for a program."},
        },
        "required": ["detail"],
    },
    "ValidationError": {
        "type": "object",
        "description": (
            "Each field that is wrong, with its messages; `body` stands for the body as a whole."
        ),
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
        "minProperties": 1,
    },
}

_ERROR = {"$ref": "#/components/schemas/Error"}
# The header of 429 and 503 answers (an operation lists it among its parameters).
RETRY_AFTER: Final = OpenApiParameter(
    "Retry-After",
    OpenApiTypes.INT,
    OpenApiParameter.HEADER,
    description="Seconds to wait before trying again.",
    response=[429, 503],
)

_ANSWERS: Final[dict[int, OpenApiResponse]] = {
    400: OpenApiResponse(
        {"$ref": "#/components/schemas/ValidationError"},
        description=(
            "Bad input, nothing written. Each wrong field is named: a path id that is not a "
            "UUID, a body field or query parameter that is missing, of the wrong type, not "
            "allowed, or unknown. `body` names the body as a whole: not UTF-8 JSON, nested "
            "too deep, not an object, or over MAX_REQUEST_BODY_BYTES (a 400, not a 413)."
        ),
    ),
    403: OpenApiResponse(
        _ERROR,
        description="The request carries the client cookie but not its CSRF token "
        "(send the csrftoken cookie's value as X-CSRFToken).",
    ),
    404: OpenApiResponse(
        _ERROR, description="Not found, or not the caller's (the two look the same)."
    ),
    409: OpenApiResponse(_ERROR, description="Conflict with the session's state."),
    415: OpenApiResponse(_ERROR, description="The body is not application/json."),
    429: OpenApiResponse(
        _ERROR, description="Too many requests from this client, or too many open sessions."
    ),
    502: OpenApiResponse(_ERROR, description="The upstream (OpenAI) failed; nothing written."),
    503: OpenApiResponse(
        _ERROR,
        description="The upstream cannot be reached or is rate-limited (with Retry-After); "
        "nothing written.",
    ),
    504: OpenApiResponse(_ERROR, description="The upstream did not answer in time."),
}

# The answers of each kind of operation.
UPSTREAM_ERRORS: Final = (502, 503, 504)
BODY_ERRORS: Final = (400, 403, 415)


def errors(*codes: int, conflict: str = "") -> dict[int, OpenApiResponse]:
    """The documented error answers `codes` of one operation (`conflict`: what its 409 means)."""
    answers = {code: _ANSWERS[code] for code in codes}
    if conflict:
        answers[409] = OpenApiResponse(_ERROR, description=conflict)
    return answers


def uuid_path(name: str, what: str) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.UUID, OpenApiParameter.PATH, description=what)


class SettingChoiceFieldExtension(OpenApiSerializerFieldExtension):
    """A `SettingChoiceField` is documented as the enum of its setting's values, read when the
    schema is generated: what this server accepts, not what the code's defaults say."""

    target_class = "sessions_app.api.fields.SettingChoiceField"

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        return {"type": "string", "enum": list(getattr(settings, self.target.setting))}


class ApiFieldExtension(OpenApiSerializerFieldExtension):
    """An `ApiField` is its body variant's one API (the create body is a oneOf per API)."""

    target_class = "sessions_app.api.fields.ApiField"

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        return {"type": "string", "enum": [self.target.api]}


def schema_postprocess(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook (config/settings.py): adds the error
    bodies, and closes every request body object (`additionalProperties: false`), as the API
    rejects unknown fields. A body whose every variant has required fields is required
    (drf-spectacular says so of a plain serializer, not of a oneOf)."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(ERROR_COMPONENTS)
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            body = operation.get("requestBody", {})
            for media in body.get("content", {}).values():
                objects = _request_objects(schemas, media.get("schema", {}))
                for component in objects:
                    component["additionalProperties"] = False
                if objects and all(component.get("required") for component in objects):
                    body["required"] = True
    return result


def _request_objects(schemas: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The object components a request body refers to: itself, or each of its oneOf."""
    component = schemas.get(schema.get("$ref", "").rsplit("/", 1)[-1])
    if component is None:
        return []
    if "oneOf" in component:
        return [obj for member in component["oneOf"] for obj in _request_objects(schemas, member)]
    return [component]
