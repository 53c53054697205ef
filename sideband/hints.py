"""The page's item-id hints: validated at the live socket, kept per call for its owner.

The page reports the conversation items its data channel saw (`conversation.item.added`: the
item's id and the id before it), never their content. The owner reads them when its capture
has a gap it cannot walk back from the upstream's answers alone (sideband.capture.hints).

Kept in Django's cache (Redis, or process memory in the embedded mode, where the page's socket
and the owner share one process), per call, bounded, for the length of a session.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from django.conf import settings
from django.core.cache import cache

from sideband.capture.hints import HINTS_MAX

# At most this many items in one message (the page sends what it saw since its last report).
HINTS_PER_MESSAGE: Final = 100
# Realtime ids: a prefix and random characters (item_…, msg_…); what can be a stored turn's.
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class HintsInvalid(ValueError):
    """A hint message the server refuses; `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ItemsSeen:
    """A validated report: the call and (item id, previous item id or None) pairs."""

    call_id: str
    items: tuple[tuple[str, str | None], ...]


def _id(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise HintsInvalid(field, f"{field} must be an id (letters, digits, _ or -; 1 to 64)")
    return value


def items_seen_parse(content: Any) -> ItemsSeen:
    """Validate `{"type": "items.seen", "callId", "items": [{"id", "previousItemId"}]}`."""
    if not isinstance(content, dict):
        raise HintsInvalid("message", "the message must be a JSON object")
    call_id = _id(content.get("callId"), "callId")
    raw_items = content.get("items")
    if not isinstance(raw_items, list) or not 1 <= len(raw_items) <= HINTS_PER_MESSAGE:
        raise HintsInvalid("items", f"items must be a list of 1 to {HINTS_PER_MESSAGE} items")
    items: list[tuple[str, str | None]] = []
    for index, raw in enumerate(raw_items):
        field = f"items[{index}]"
        if not isinstance(raw, dict) or set(raw) - {"id", "previousItemId"}:
            raise HintsInvalid(field, f"{field} must be {{id, previousItemId}}")
        item_id = _id(raw.get("id"), f"{field}.id")
        prev = raw.get("previousItemId")
        items.append((item_id, None if prev is None else _id(prev, f"{field}.previousItemId")))
    return ItemsSeen(call_id=call_id, items=tuple(items))


def _key(call_id: str) -> str:
    return f"sideband:hints:{call_id}"


def hints_store(*, seen: ItemsSeen) -> int:
    """Add a report to its call's hints (at most HINTS_MAX per call); the count kept.

    A report never changes what an earlier one said about an item: the first word stands.
    """
    hints: dict[str, str | None] = cache.get(_key(seen.call_id)) or {}
    for item_id, prev in seen.items:
        if item_id not in hints and len(hints) < HINTS_MAX:
            hints[item_id] = prev
    cache.set(_key(seen.call_id), hints, timeout=settings.REALTIME_SESSION_MAX_S * 2)
    return len(hints)


def hints_load(*, call_id: str) -> dict[str, str | None]:
    """The call's hints: item id -> previous item id (None: the first item)."""
    hints: dict[str, str | None] = cache.get(_key(call_id)) or {}
    return hints
