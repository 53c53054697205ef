"""API keys: creating, revoking and checking them, and the DRF classes of the host API.

A key reads `rtk_<prefix>_<secret>`: the prefix (public, 12 hex digits) names the key in the
admin and the logs, the whole key's sha256 finds its row. Keys are made in the admin and shown
once; the database never holds one in the clear.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import re
import secrets
from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from hostapi.models import ApiKey
from sessions_app import ratelimit
from sessions_app.crypto import sha256_hex
from sessions_app.identity import bearer_of

logger = logging.getLogger(__name__)

_KEY_RE = re.compile(r"^rtk_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$")
# last_used_at is written at most this often per key, not on every request.
LAST_USED_EVERY = dt.timedelta(minutes=1)
SCOPES = ("read", "write", "delete")


def api_key_create(
    *, name: str, read: bool = True, write: bool = False, delete: bool = False
) -> tuple[ApiKey, str]:
    """A new key row and the key itself (to show once)."""
    key = ApiKey(name=name, scope_read=read, scope_write=write, scope_delete=delete)
    return key, api_key_issue(key=key)


def api_key_issue(*, key: ApiKey) -> str:
    """Give an unsaved key its secret and save it; the key itself (to show once)."""
    key.prefix = secrets.token_hex(6)
    raw = f"rtk_{key.prefix}_{secrets.token_urlsafe(32)}"
    key.key_hash = sha256_hex(raw)
    key.save()
    logger.info("api key created prefix=%s scopes=%s", key.prefix, ",".join(key.scopes()))
    return raw


def api_key_revoke(*, key: ApiKey) -> bool:
    """Revoke the key (conditional: revoking twice changes nothing); whether it was live."""
    revoked = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if revoked:
        logger.info("api key revoked prefix=%s", key.prefix)
    return bool(revoked)


def api_key_check(raw: str) -> ApiKey | None:
    """The live key `raw` is, else None (malformed, unknown or revoked)."""
    match = _KEY_RE.fullmatch(raw)
    if match is None:
        return None
    key = ApiKey.objects.filter(key_hash=sha256_hex(raw), revoked_at__isnull=True).first()
    if key is None or not hmac.compare_digest(key.prefix, match.group(1)):
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_EVERY:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer rtk_...`; `request.auth` is the ApiKey. Counts the key's rate."""

    def authenticate(self, request: Request) -> tuple[None, ApiKey] | None:
        raw = bearer_of(request._request.headers.get("Authorization"))
        if raw is None:
            return None
        key = api_key_check(raw)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        ratelimit.rate_limit_hit(
            scope="apikey", key=key.prefix, limit=settings.API_KEY_RATE_LIMIT_PER_MINUTE
        )
        return None, key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class KeyHasScope(BasePermission):
    """The view's `required_scope` (read, write or delete) must be one of the key's."""

    def has_permission(self, request: Request, view: Any) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            raise exceptions.NotAuthenticated("Send an API key as Authorization: Bearer rtk_...")
        scope = view.required_scope(request)
        if scope not in key.scopes():
            raise exceptions.PermissionDenied(f"This API key lacks the {scope} scope.")
        return True
