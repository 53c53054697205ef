"""The ids of seeded items: made from a stored turn's id, recognised by everyone who meets one."""

from __future__ import annotations

from sessions_app.seed_items import SEED_ITEM_PREFIX, is_seed_item, seed_item_id


def test_seed_item_ids_are_prefixed_stable_and_fit_openai_item_ids() -> None:
    first = seed_item_id("item_CXh2n4v7Lbq1Wmz9QkR0e")

    assert first.startswith(SEED_ITEM_PREFIX)
    assert len(first) <= 32
    assert first == seed_item_id("item_CXh2n4v7Lbq1Wmz9QkR0e")
    assert first != seed_item_id("item_CXh2n4v7Lbq1Wmz9QkR0f")
    assert is_seed_item(first)
    assert not is_seed_item("item_CXh2n4v7Lbq1Wmz9QkR0e")
    assert not is_seed_item(None)
