"""A host app's users as the tests play them: the token the host backend signs for its user
(README "Use it from your app"), a page of the host app that carries it, and the sessions and
profiles such a user owns. The `host_tokens` fixture (tests/conftest.py) makes the server trust
these tokens."""

from __future__ import annotations

import time
from typing import Any, cast

import jwt
from django.test import Client

from extraction.models import Profile
from sessions_app.identity import subject_owner_hash
from sessions_app.models import Session
from tests.factories import ProfileFactory, SessionFactory

HOST_SECRET = "host-backend-signing-secret-0123456789abcdef"
AUDIENCE = "realtime-transcript"


def host_tokens_trusted(settings: Any) -> None:
    """The server's settings that trust `host_token`'s tokens (HS256 with HOST_SECRET)."""
    settings.HOST_TOKEN_SECRET = HOST_SECRET
    settings.HOST_TOKEN_PUBLIC_KEY = ""
    settings.HOST_TOKEN_AUDIENCE = AUDIENCE
    settings.HOST_TOKEN_ISSUER = ""


def host_token(subject: str, *, ttl: int = 300, key: str = HOST_SECRET, **claims: Any) -> str:
    """What the host backend signs for its user (README "Use it from your app")."""
    body = {"sub": subject, "aud": AUDIENCE, "exp": int(time.time()) + ttl, **claims}
    return jwt.encode(body, key, algorithm="HS256")


def user_client(subject: str, **claims: Any) -> Client:
    """A page of the host app whose user is `subject`: every request carries its token."""
    return Client(HTTP_AUTHORIZATION=f"Bearer {host_token(subject, **claims)}")


def a_session(subject: str = "", **fields: Any) -> Session:
    """A session of the host user `subject`, or of the factories' browser without one."""
    if subject:
        fields = {"owner_hash": subject_owner_hash(subject), "owner_subject": subject, **fields}
    return cast(Session, SessionFactory(**fields))


def a_profile(**fields: Any) -> Profile:
    return cast(Profile, ProfileFactory(**fields))
