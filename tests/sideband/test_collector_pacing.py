"""The worker's garbage-collector pacing (sideband.owner.gc_pacing.CollectorPacing)."""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Iterator

import pytest

from sideband.owner.gc_pacing import CollectorPacing


class Node:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_survivors_are_frozen_and_cyclic_garbage_waits_for_the_full_collection() -> None:
    pacing = CollectorPacing(full_every_s=60)
    node = Node()
    alive = weakref.ref(node)

    pacing.tick()
    del node
    gc.collect()

    assert gc.get_freeze_count() > 0
    assert alive() is not None  # frozen: ordinary collections do not walk it

    pacing.tick(now=time.monotonic() + 61)

    assert alive() is None  # the full collection freed it


def test_zero_leaves_the_collector_alone() -> None:
    gc.unfreeze()
    node = Node()
    alive = weakref.ref(node)

    CollectorPacing(full_every_s=0).tick()
    del node
    gc.collect()

    assert gc.get_freeze_count() == 0
    assert alive() is None
