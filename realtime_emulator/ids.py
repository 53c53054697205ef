"""OpenAI-like opaque identifiers (`item_…`, `resp_…`, `event_…`, `rtc_…`, `ek_…`)."""

from __future__ import annotations

import random
import secrets

_ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Random bytes -> base62 characters in one `translate` (ids are opaque, not secrets: the small
# bias of 256 % 62 does not matter; every event gets one, so this must be cheap).
_TO_BASE62 = bytes(_ALPHABET[i % len(_ALPHABET)] for i in range(256))
_ID_CHARS = 21  # OpenAI's realtime ids carry 21 base62 characters after the prefix
# Not a secret: a seeded PRNG spares a syscall per event id (client secrets use `secrets`).
_RANDOM = random.Random(secrets.randbits(128))  # noqa: S311


def new_id(prefix: str) -> str:
    """`<prefix>_` followed by 21 random base62 characters, like `item_E6mH8gMSHj8w5w9SzpiLj`."""
    raw = _RANDOM.getrandbits(8 * _ID_CHARS).to_bytes(_ID_CHARS, "little")
    return f"{prefix}_{raw.translate(_TO_BASE62).decode()}"


def new_live_session_id() -> str:
    """`live_u1_` and 32 base62 characters, the shape of the recorded Live session ids."""
    raw = _RANDOM.getrandbits(8 * 32).to_bytes(32, "little")
    return f"live_u1_{raw.translate(_TO_BASE62).decode()}"


def new_call_id() -> str:
    return f"rtc_{secrets.token_hex(16)}"


def new_client_secret() -> str:
    return f"ek_{secrets.token_hex(16)}"


def new_hex_id(prefix: str) -> str:
    """Responses API ids (`resp_…`, `msg_…`) are long hex strings."""
    return f"{prefix}_{secrets.token_hex(24)}"
