"""Encryption of client secrets at rest.

SECRET_ENCRYPTION_KEYS is a list of Fernet keys: the first encrypts, every key decrypts, so a
key rotates by putting the new one first and dropping the old one once re-encrypted.
"""

from __future__ import annotations

import hashlib
from functools import cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def _current() -> MultiFernet:
    return _fernet(tuple(settings.SECRET_ENCRYPTION_KEYS))


def secret_encrypt(value: str) -> str:
    return _current().encrypt(value.encode()).decode()


def secret_decrypt(token: str) -> str:
    return _current().decrypt(token.encode()).decode()


def secret_reencrypt(token: str) -> str:
    """Re-encrypt under the first (newest) key; used when rotating keys."""
    return _current().rotate(token.encode()).decode()


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
