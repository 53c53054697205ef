"""Who is asking: `identity_resolve`, the one rule the views and the live socket both call.

Three sources, the first present wins:

1. `Authorization: Bearer <token>`: a short-lived JWT the host app's backend signs for its
   logged-in user. Claims: `sub` (the host's user id, a string), `exp` (at most
   HOST_TOKEN_MAX_AGE_S ahead), `aud` (HOST_TOKEN_AUDIENCE), `iss` when HOST_TOKEN_ISSUER is
   set. HS256 with HOST_TOKEN_SECRET, or RS256/ES256/EdDSA with HOST_TOKEN_PUBLIC_KEY. A
   present but bad token is refused (401), never ignored in favour of the cookie.
2. `request.user` of a host Django project (HOST_DJANGO_USERS=1): its pk is the subject.
3. The anonymous browser cookie (sessions_app.auth): no subject.

A host user's key is sha256("subject:<sub>"), so a token and request.user naming the same
user own the same sessions, and every rule keyed on `Session.owner_hash` (ownership, rate
limits, the open-session cap) keys on the user. A cookie's key is the sha256 of 256 random
bits, which no "subject:" string reaches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt
from django.conf import settings

from sessions_app.crypto import sha256_hex

SUBJECT_MAX_CHARS = 255
# Clock skew tolerated between the host backend and this server.
LEEWAY_S = 5
_ASYMMETRIC = ["RS256", "ES256", "EdDSA"]


class TokenInvalid(Exception):
    """A bearer token that does not name a user: bad signature, expired, wrong audience..."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Identity:
    """The owner a request acts as."""

    owner_hash: str
    # The host app's user id; "" for the anonymous browser cookie.
    subject: str
    # "token", "user" (request.user) or "cookie".
    source: str

    @property
    def is_host_user(self) -> bool:
        return self.subject != ""


def subject_owner_hash(subject: str) -> str:
    """`Session.owner_hash` of the host user `subject`."""
    return sha256_hex(f"subject:{subject}")


def subject_valid(subject: object) -> bool:
    return (
        isinstance(subject, str)
        and 0 < len(subject) <= SUBJECT_MAX_CHARS
        and subject.isprintable()
        and subject == subject.strip()
    )


def host_identity(subject: str, *, source: str) -> Identity:
    return Identity(owner_hash=subject_owner_hash(subject), subject=subject, source=source)


def bearer_of(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def host_token_subject(token: str) -> str:
    """The `sub` of a valid host token; raises TokenInvalid (with a reason safe to show)."""
    if settings.HOST_TOKEN_PUBLIC_KEY:
        key, algorithms = settings.HOST_TOKEN_PUBLIC_KEY, _ASYMMETRIC
    elif settings.HOST_TOKEN_SECRET:
        key, algorithms = settings.HOST_TOKEN_SECRET, ["HS256"]
    else:
        raise TokenInvalid("Bearer tokens are not enabled on this server.")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            audience=settings.HOST_TOKEN_AUDIENCE,
            issuer=settings.HOST_TOKEN_ISSUER or None,
            leeway=LEEWAY_S,
            options={"require": ["exp", "sub", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenInvalid("The token has expired.") from None
    except jwt.PyJWTError as exc:
        raise TokenInvalid(f"The token is invalid ({type(exc).__name__}).") from None
    if float(claims["exp"]) - time.time() > settings.HOST_TOKEN_MAX_AGE_S + LEEWAY_S:
        raise TokenInvalid("The token lives longer than this server accepts.")
    subject = claims["sub"]
    if not subject_valid(subject):
        raise TokenInvalid("The token's sub is not a user id.")
    return str(subject)


def identity_resolve(
    *, authorization: str | None, user: Any, cookie_owner_hash: str | None
) -> Identity | None:
    """The caller's identity (see the module docstring), or None for nobody.

    `user` is Django's request.user (or the socket scope's), `cookie_owner_hash` the sha256 of
    a well-formed client cookie. Raises TokenInvalid for a bearer token that is present but bad.
    """
    token = bearer_of(authorization)
    if token is not None:
        return host_identity(host_token_subject(token), source="token")
    if settings.HOST_DJANGO_USERS and getattr(user, "is_authenticated", False):
        return host_identity(str(user.pk), source="user")
    if cookie_owner_hash is not None:
        return Identity(owner_hash=cookie_owner_hash, subject="", source="cookie")
    return None
