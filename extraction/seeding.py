"""Seeding a renewed call with the session's latest turns, as conversation items.

Instructions carry a profile and a recap; seeding gives the new Realtime session the real
words. When the sideband attaches to a renewed call (generation > 1) it sends these events
first: the last K spoken turns from before the call, user turns as `input_text`, assistant
turns as `output_text` (assistant audio cannot be replayed as audio), chained with
`previous_item_id` so they keep their order.

The seeded items come back on the sideband as `conversation.item.added`; their ids
(sessions_app.seed_items) tell them from new turns, so they are never stored twice.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from extraction.selectors import seed_turns
from sessions_app import upstream
from sessions_app.models import Call
from sessions_app.seed_items import seed_item_id

# Bounds one seeded item; a very long turn is cut, not dropped.
SEED_TEXT_MAX_CHARS = 4000


def seed_turn_count() -> int:
    """settings.SIDEBAND_SEED_TURNS; 0 turns seeding off."""
    return settings.SIDEBAND_SEED_TURNS


def seed_events(*, call: Call) -> list[dict[str, Any]]:
    """`conversation.item.create` events for the last K spoken turns before `call`."""
    events: list[dict[str, Any]] = []
    previous: str | None = None
    for turn in seed_turns(call=call, limit=seed_turn_count()):
        item_id = seed_item_id(turn.item_id)
        events.append(
            upstream.message_item_create_event(
                role=turn.role,
                text=(turn.text or "")[:SEED_TEXT_MAX_CHARS],
                item_id=item_id,
                previous_item_id=previous,
            )
        )
        previous = item_id
    return events
