"""OpenAI's error shapes: the HTTP envelope and the Realtime `error` event payload."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .ids import new_hex_id

INVALID_REQUEST = "invalid_request_error"


class ApiError(Exception):
    """An error as OpenAI reports it: `{"message", "type", "param", "code"}`.

    The same exception serves HTTP endpoints (`http_response`) and Realtime client events
    (`event_payload`), so a validation rule is written once for both.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        type: str = INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def http_response(self) -> web.Response:
        headers = {"x-request-id": new_hex_id("req"), **self.headers}
        return web.Response(
            status=self.status,
            text=json.dumps(self.body()),
            content_type="application/json",
            headers=headers,
        )

    def event_payload(self, client_event_id: str | None = None) -> dict[str, Any]:
        """The `error` field of a Realtime `error` server event."""
        return {
            "type": self.type,
            "code": self.code,
            "message": self.message,
            "param": self.param,
            "event_id": client_event_id,
        }


def invalid_value(param: str, value: Any, allowed: list[str] | None = None) -> ApiError:
    message = f"Invalid value: {json.dumps(value)}."
    if allowed:
        message += " Supported values are: " + ", ".join(f"'{a}'" for a in allowed) + "."
    return ApiError(message, param=param, code="invalid_value")


def invalid_type(param: str, expected: str, value: Any) -> ApiError:
    return ApiError(
        f"Invalid type for '{param}': expected {expected}, but got {type(value).__name__} instead.",
        param=param,
        code="invalid_type",
    )


def missing_parameter(param: str) -> ApiError:
    return ApiError(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def unknown_parameter(param: str) -> ApiError:
    return ApiError(f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter")


def invalid_api_key(key: str | None) -> ApiError:
    if not key:
        return ApiError(
            "You didn't provide an API key. You need to provide your API key in an Authorization "
            "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            status=401,
            code="invalid_api_key",
        )
    shown = key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 8 else "***"
    return ApiError(
        f"Incorrect API key provided: {shown}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        status=401,
        code="invalid_api_key",
    )


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
