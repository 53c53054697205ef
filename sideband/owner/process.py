"""The process's one owner: started on first use, only in worker processes."""

from __future__ import annotations

import threading

from sideband.owner.owner import SidebandOwner

_owner: SidebandOwner | None = None
_owner_lock = threading.Lock()


def owner_get() -> SidebandOwner:
    """This process's owner, started on first use (only worker processes ever own calls)."""
    global _owner
    with _owner_lock:
        if _owner is None:
            _owner = SidebandOwner()
            _owner.start()
        return _owner


def owner_current() -> SidebandOwner | None:
    return _owner


def owner_reset() -> None:
    """Stop this process's owner without handing calls back (tests, embedded runner)."""
    global _owner
    with _owner_lock:
        owner, _owner = _owner, None
    if owner is not None:
        owner.shutdown(handback=False)
