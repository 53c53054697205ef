"""What every API view for the page shares: the body-size cap and a JSON-object body
(`ClientAPIView`), and the answers of the session API's domain errors (`exception_handler`,
settings.REST_FRAMEWORK)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from sessions_app import ratelimit, services, upstream
from sessions_app.calls import CallConflict, SessionClosed
from sessions_app.voice import OfferMismatch


def _error(detail: str, *, code: str, status_code: int, retry_after: int | None = None) -> Response:
    response = Response({"detail": detail, "code": code}, status=status_code)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler plus the domain errors of the session API (settings.REST_FRAMEWORK)."""
    if isinstance(exc, upstream.UpstreamError):
        return _error(
            exc.message, code="upstream_error", status_code=exc.status, retry_after=exc.retry_after
        )
    if isinstance(exc, ratelimit.RateLimited):
        return _error(
            f"Too many requests; retry in {exc.retry_after} seconds.",
            code="rate_limited",
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            retry_after=exc.retry_after,
        )
    if isinstance(exc, services.OpenSessionsLimit):
        return _error(
            f"This client already has {settings.MAX_OPEN_SESSIONS_PER_CLIENT} open sessions; "
            "refresh one (reset: true) instead of opening another.",
            code="open_sessions_limit",
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
        )
    if isinstance(exc, OfferMismatch):
        return Response({"sdp": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, SessionClosed):
        return _error("The session is closed.", code="session_closed", status_code=409)
    if isinstance(exc, CallConflict):
        return _error(
            "callId is already registered to another session.",
            code="call_conflict",
            status_code=409,
        )
    if isinstance(exc, exceptions.ParseError):
        # A body that is not JSON: name the field that is wrong, the body itself.
        return Response({"body": [str(exc.detail)]}, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)


# --- Base view ----------------------------------------------------------------------------


class ClientAPIView(APIView):
    """Caps the body size before anything parses it, and hands out a JSON-object body."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if request.method in ("POST", "PUT", "PATCH"):
            _body_size_check(request._request)

    def body(self, request: Request) -> dict[str, Any]:
        data = request.data
        if not isinstance(data, dict):
            raise exceptions.ValidationError({"body": ["Expected a JSON object."]})
        return dict(data)


def _body_size_check(request: HttpRequest) -> None:
    limit = settings.MAX_REQUEST_BODY_BYTES
    too_big = exceptions.ValidationError({"body": [f"Request body exceeds {limit} bytes."]})
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise too_big
    try:
        body = request.body
    except RequestDataTooBig:  # a body without a Content-Length past Django's own cap
        raise too_big from None
    if len(body) > limit:
        raise too_big


def no_store(response: Response) -> Response:
    # Responses carrying a client secret must not be cached anywhere.
    response["Cache-Control"] = "no-store"
    return response
