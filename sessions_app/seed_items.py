"""The ids of seeded conversation items: copies of stored turns sent to a renewed call.

A renewed Realtime call is seeded with the session's latest turns (extraction.seeding); the
upstream echoes each back on the sideband as `conversation.item.added`. Their ids carry
SEED_ITEM_PREFIX so that everyone who meets one (the sideband's capture state and its
connection owner) tells it from a new turn here, and never stores it twice.
"""

from __future__ import annotations

import hashlib
from typing import TypeGuard

SEED_ITEM_PREFIX = "seed_"
# OpenAI's item ids are at most 32 characters: the prefix plus 24 hex digits (96 bits).
ITEM_ID_MAX_CHARS = 32
_HASH_CHARS = ITEM_ID_MAX_CHARS - len(SEED_ITEM_PREFIX) - 3


def seed_item_id(original_item_id: str) -> str:
    """A stable item id for the seed copy of a turn: same turn, same id, in any call."""
    digest = hashlib.sha256(original_item_id.encode()).hexdigest()[:_HASH_CHARS]
    return f"{SEED_ITEM_PREFIX}{digest}"


def is_seed_item(item_id: object) -> TypeGuard[str]:
    """Whether `item_id` names a seeded item (a copy of a stored turn, never a turn itself)."""
    return isinstance(item_id, str) and item_id.startswith(SEED_ITEM_PREFIX)
