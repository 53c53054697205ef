"""Who may open the page's live socket: pages of this site, by exact origin.

A WebSocket handshake carries the browser's cookies whatever page opened it, so the origin is
what stops another site's page from reading a transcript through the visitor's cookie. The
rule (`origin_allowed`), compared on scheme, host AND port (Channels' AllowedHostsOriginValidator
compared the host only, so `http://localhost:9999` passed for a server on port 8000):

- the socket's own origin: `http` for `ws`, `https` for `wss`, and the request's Host header,
  which must be one of ALLOWED_HOSTS; or
- one of CSRF_TRUSTED_ORIGINS, exactly (`https://app.example.com`: the same list Django's
  CSRF check trusts; behind a TLS-terminating proxy the socket arrives as `ws`, so list the
  public `https://` origin there).

A handshake without an Origin header (not a browser) is refused like a foreign one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_normal(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin, the port made explicit; None when it is not an
    http(s) origin."""
    try:
        parts = urlsplit(origin.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port or _DEFAULT_PORTS[parts.scheme]


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def origin_allowed(scope: dict[str, Any]) -> bool:
    """Whether the handshake's Origin is this site's (see the module docstring)."""
    origin = _header(scope, b"origin")
    parsed = origin_normal(origin) if origin is not None else None
    if parsed is None:
        return False
    trusted = {origin_normal(o) for o in settings.CSRF_TRUSTED_ORIGINS}
    if parsed in trusted:
        return True
    host = _header(scope, b"host")
    if host is None:
        return False
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    return parsed == origin_normal(f"{scheme}://{host}")


class SameOriginValidator:
    """ASGI middleware for WebSocket routes: `origin_allowed` or the handshake is denied."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)
