"""Who may act: the browser that created a session owns it.

The browser holds a random credential in an HttpOnly, SameSite cookie
(settings.CLIENT_COOKIE_NAME); the server stores only its sha256 (`Session.owner_hash`). A
session the caller does not own is answered exactly like one that does not exist (404).

Because the credential is ambient (the browser sends the cookie by itself), every unsafe
request that carries it must also pass Django's CSRF check; DRF's APIView is csrf-exempt, so
`ClientCookieAuthentication` enforces it. Views in other apps import the helpers here.

A host app's user may own sessions instead (a bearer token, or request.user): who the caller
is comes from `request_identity`, i.e. sessions_app.identity.identity_resolve, the one rule.
"""

from __future__ import annotations

import re
import secrets
import uuid

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.middleware.csrf import CsrfViewMiddleware
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from sessions_app.crypto import sha256_hex
from sessions_app.identity import Identity, TokenInvalid, identity_resolve
from sessions_app.models import Session

# token_urlsafe(32) makes 43 characters; accept only that shape so junk never reaches a query.
_CREDENTIAL_RE = re.compile(r"^[A-Za-z0-9_-]{32,128}$")


def _django_request(request: HttpRequest | Request) -> HttpRequest:
    return request._request if isinstance(request, Request) else request


def client_credential(request: HttpRequest | Request) -> str | None:
    """The raw client credential from the cookie, or None when absent or malformed."""
    return credential_well_formed(_django_request(request).COOKIES.get(settings.CLIENT_COOKIE_NAME))


def credential_well_formed(raw: str | None) -> str | None:
    """`raw` when it has a credential's shape, else None."""
    if raw is None or not _CREDENTIAL_RE.fullmatch(raw):
        return None
    return raw


def identity_of(*, authorization: str | None, user: object, cookie: str | None) -> Identity | None:
    """Who a caller acts as, from what it sent: an `Authorization` header (a host app's
    token), the host project's `user`, or the client cookie's raw value (`cookie`, checked for
    a credential's shape before it is hashed). The one rule for a request (`request_identity`)
    and the live socket (sideband.consumers); raises TokenInvalid for a bad token."""
    credential = credential_well_formed(cookie)
    return identity_resolve(
        authorization=authorization,
        user=user,
        cookie_owner_hash=client_hash_of(credential) if credential is not None else None,
    )


def request_identity(request: HttpRequest | Request) -> Identity | None:
    """Who the request acts as (`identity_of`); a bad bearer token is a 401."""
    if isinstance(request, Request) and isinstance(request.auth, Identity):
        return request.auth  # HostUserAuthentication resolved it already
    django_request = _django_request(request)
    try:
        return identity_of(
            authorization=django_request.headers.get("Authorization"),
            user=getattr(django_request, "user", None),
            cookie=django_request.COOKIES.get(settings.CLIENT_COOKIE_NAME),
        )
    except TokenInvalid as exc:
        raise exceptions.AuthenticationFailed(exc.reason) from None


def client_hash_of(credential: str) -> str:
    return sha256_hex(credential)


def client_credential_new() -> str:
    return secrets.token_urlsafe(32)


def client_cookie_set(response: HttpResponseBase, *, credential: str) -> None:
    """Bind the browser to its credential: HttpOnly (no script reads it), SameSite=Lax."""
    response.set_cookie(
        settings.CLIENT_COOKIE_NAME,
        credential,
        max_age=settings.CLIENT_COOKIE_MAX_AGE_S,
        httponly=True,
        samesite="Lax",
        secure=settings.CLIENT_COOKIE_SECURE,
    )


def client_rate_key(request: HttpRequest | Request) -> str:
    """What rate limits count against: the caller's identity, else the remote address."""
    identity = request_identity(request)
    if identity is not None:
        return f"client:{identity.owner_hash}"
    return _address_rate_key(request)


def _address_rate_key(request: HttpRequest | Request) -> str:
    return f"ip:{_django_request(request).META.get('REMOTE_ADDR', 'unknown')}"


def client_create_rate_keys(request: HttpRequest | Request) -> list[str]:
    """What a session creation counts against: the credential's budget, and the address's as
    well while the credential owns no session.

    A credential is any well-formed cookie value, so a client may invent one (the server
    cannot tell it from one it issued, and need not: an invented credential owns only the
    sessions it creates, and reaches no one else's, whose hashes it would have to reverse).
    What it must not buy is a fresh rate-limit budget per invented value: until a credential
    owns a session, its creations also spend its address's budget, as a client without a
    cookie does.
    """
    keys = [client_rate_key(request)]
    identity = request_identity(request)
    # A host user's token is signed by the host: nobody invents one.
    if (
        identity is not None
        and identity.source == "cookie"
        and not Session.objects.filter(owner_hash=identity.owner_hash).exists()
    ):
        keys.append(_address_rate_key(request))
    return keys


def session_id_parse(raw: object) -> uuid.UUID | None:
    """A session id is a canonical UUID string; anything else is malformed."""
    if not isinstance(raw, str) or len(raw) != 36:
        return None
    try:
        value = uuid.UUID(raw)
    except ValueError:
        return None
    return value if str(value) == raw.lower() else None


def session_owned(*, public_id: uuid.UUID | str, identity: Identity | None) -> Session | None:
    """The session with this public id when `identity` owns it, else None: a session that is
    someone else's and one that does not exist look the same. The one ownership rule of the
    API's views (`owned_session_or_404`) and the live socket (sideband.consumers)."""
    parsed = public_id if isinstance(public_id, uuid.UUID) else session_id_parse(public_id)
    if identity is None or parsed is None:
        return None
    return Session.objects.filter(public_id=parsed, owner_hash=identity.owner_hash).first()


def owned_session_or_404(request: HttpRequest | Request, public_id: uuid.UUID | str) -> Session:
    """The caller's session with this public id; 404 when missing or owned by someone else."""
    session = session_owned(public_id=public_id, identity=request_identity(request))
    if session is None:
        raise exceptions.NotFound("Session not found.")
    return session


def _no_response(request: HttpRequest) -> HttpResponseBase:  # pragma: no cover - never called
    raise AssertionError("CSRF check does not call the view")


def _csrf_enforce(request: HttpRequest) -> None:
    check = CsrfViewMiddleware(_no_response)
    check.process_request(request)
    reason = check.process_view(request, _no_response, (), {})
    if reason is not None:
        raise exceptions.PermissionDenied(
            "CSRF failed: send the csrftoken cookie's value as X-CSRFToken."
        )


def _unsafe(request: Request) -> bool:
    return request.method not in ("GET", "HEAD", "OPTIONS", "TRACE")


class HostUserAuthentication(BaseAuthentication):
    """The host app's user (sessions_app.identity): a bearer token, or request.user.

    Runs first, and only sets `request.auth` to the Identity (DRF then replaces Django's
    request.user, which is why the user is read here, before it does). A token carries no
    ambient authority, so it needs no CSRF token; the host's Django login is a cookie, so it
    does. A bad token is a 401, never a fallback to the browser cookie.
    """

    def authenticate(self, request: Request) -> tuple[None, Identity] | None:
        identity = request_identity(request._request)
        if identity is None or not identity.is_host_user:
            return None
        if identity.source == "user" and _unsafe(request):
            _csrf_enforce(request._request)
        return None, identity

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="sessions"'


class ClientCookieAuthentication(BaseAuthentication):
    """Enforces CSRF on unsafe requests carrying the client cookie; never logs anybody in.

    Requests without the cookie hold no ambient authority (they can only create a fresh
    session for a fresh credential), so they pass; the page sends `X-CSRFToken` from the
    `csrftoken` cookie that `/` sets.
    """

    def authenticate(self, request: Request) -> None:
        if _unsafe(request) and settings.CLIENT_COOKIE_NAME in request._request.COOKIES:
            _csrf_enforce(request._request)
        return None
