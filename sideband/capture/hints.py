"""Gap fill from the page's hints: item ids the page saw, used to keep walking back a gap.

The GA `conversation.item.retrieved` event carries no `previous_item_id`, so a gap of more than
one item cannot be walked back from the upstream's answers alone. The page's data channel sees
every `conversation.item.added` with `item.id` and `previous_item_id`; the page reports those
ids (never any text), and for a recovered item whose predecessor is unknown the hint names the
next id to retrieve. What the item says still comes only from the upstream: a hinted id the
call does not have is answered with `item_retrieve_invalid_item_id` and dropped.

Pure: no I/O. The owner loads the hints (sideband.hints) and sends the retrievals.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

from sideband.capture.ops import CaptureState, ItemMissing, Op

logger = logging.getLogger(__name__)

# Hints kept per call (a call lasts at most 60 minutes; the page reports each item once).
HINTS_MAX: Final = 2000
# Items asked for at most in one look for trailing gaps (a page's hints are not trusted).
TRAILING_MAX: Final = 50
# The client event id of a retrieval names its item: the upstream echoes it in an `error`
# about that event (`error.event_id`), so an unknown id can be dropped.
RETRIEVE_EVENT_PREFIX: Final = "retrieve_"


def retrieve_event_id(item_id: str) -> str:
    return RETRIEVE_EVENT_PREFIX + item_id


def item_ask(
    state: CaptureState, item_id: str, anchor: str | None, nxt: str, ops: list[Op]
) -> None:
    """Ask the upstream for `item_id`, which goes after `anchor` and before `nxt` (once)."""
    if item_id in state.missing or item_id in state.items or item_id in state.hidden:
        return
    state.missing[item_id] = (anchor, nxt)
    ops.append(ItemMissing(item_id))


def recovered_predecessor(state: CaptureState, item_id: str, said: object) -> str | None:
    """The predecessor of a recovered item: what the event `said`, else the page's hint.

    None: the item's place is not known beyond its gap (no id, a root, or no hint yet; the
    item is then `unanchored` until a hint arrives).
    """
    if isinstance(said, str):
        return None if said == "root" else said
    if item_id not in state.hints:
        state.unanchored.add(item_id)
        return None
    return state.hints[item_id]


def hints_apply(state: CaptureState, hints: Mapping[str, str | None]) -> list[Op]:
    """Record the page's hints and continue the walk back from each unanchored item."""
    for item_id, prev in hints.items():
        if item_id in state.hints or len(state.hints) < HINTS_MAX:
            state.hints[item_id] = prev
    ops: list[Op] = []
    for item_id in sorted(state.unanchored):
        if item_id not in state.hints:
            continue
        state.unanchored.discard(item_id)
        prev = state.hints[item_id]
        if prev is None or prev == "root":
            continue
        rec = state.items.get(item_id)
        anchor = rec.previous_item_id if rec is not None else state.hidden.get(item_id)
        item_ask(state, prev, anchor, item_id, ops)
    return ops


def item_unknown(state: CaptureState, event_id: object) -> None:
    """The upstream does not know an item we asked for: stop waiting for it."""
    if not isinstance(event_id, str) or not event_id.startswith(RETRIEVE_EVENT_PREFIX):
        return
    item_id = event_id[len(RETRIEVE_EVENT_PREFIX) :]
    if state.missing.pop(item_id, None) is not None:
        state.unknown_items += 1
        logger.info("Upstream does not know item %s: dropped", item_id[:64])


def hints_trailing(state: CaptureState, hints: Mapping[str, str | None]) -> list[Op]:
    """Ask for hinted items missed at the end of a gap that nothing later names.

    After the sideband reconnects, items added while it was away and not followed by any it
    saw leave no trace in the stream. The hints show them: an unknown id whose hinted chain
    leads back to a known item. Each is asked for after its hinted predecessor, oldest first,
    so they are placed in order. Ids the upstream does not have are dropped as usual.
    """
    hints_apply(state, hints)
    known = state.items.keys() | state.hidden.keys() | state.missing.keys()
    asked: set[str] = set()
    ops: list[Op] = []
    for item_id, prev in state.hints.items():
        if item_id in known or item_id in asked or prev is None:
            continue
        chain = [item_id]
        cursor: str | None = prev
        while (
            cursor is not None
            and cursor not in known
            and cursor not in asked
            and len(chain) <= len(state.hints)
        ):
            chain.append(cursor)
            cursor = state.hints.get(cursor)
        if cursor is not None and (cursor in state.items or cursor in asked):
            anchor: str | None = cursor
        elif cursor is not None and cursor in state.hidden:
            anchor = state.hidden[cursor]
        else:
            continue  # the chain does not reach what this call knows: not ours to fill
        for missed in list(reversed(chain))[: TRAILING_MAX - len(ops)]:
            state.missing[missed] = (anchor, None)
            ops.append(ItemMissing(missed))
            asked.add(missed)
            anchor = missed
        if len(ops) >= TRAILING_MAX:
            break
    return ops
