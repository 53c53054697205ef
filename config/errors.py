"""The answers Django itself gives before any view runs, in the API's JSON shape."""

from __future__ import annotations

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, JsonResponse


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """handler400: a request Django refused itself (a Host header not in ALLOWED_HOSTS, …)
    gets a JSON 400 naming the field, as every other bad input does, never an HTML page."""
    if isinstance(exception, DisallowedHost):
        return JsonResponse({"Host": ["This host is not served here."]}, status=400)
    return JsonResponse({"detail": "Bad request.", "code": "bad_request"}, status=400)
