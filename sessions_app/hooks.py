"""The ground floor's hooks: where a session flow hands over to a feature app.

sessions_app is the ground floor (models, upstream clients, identity, the session API): it
imports no feature app (extraction, sideband, hostapi); they import it. Where one of its flows
needs a feature (the instructions and profile a new session starts with, the profile and
capture state its reads show, ending calls and handing a new one to the sideband worker) it
calls one of the hooks below. config/wiring.py connects each to the feature's function once
per process, when Django is ready; tests/test_layers.py keeps every import pointing down.

A hook is declared as a function: its signature and docstring are the contract, its body what
happens when nothing is connected (a loud error, never a skipped step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, NoReturn, ParamSpec, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet

from sessions_app.models import Call, Session

P = ParamSpec("P")
R = TypeVar("R")


class Hook(Generic[P, R]):
    """One hook: calling it calls the function connected to it."""

    def __init__(self, declared: Callable[P, R]) -> None:
        self.name = declared.__name__
        self.__doc__ = declared.__doc__
        self._declared = declared
        self._connected: Callable[P, R] = declared

    def connect(self, function: Callable[P, R]) -> None:
        """Serve the hook with `function` (config.wiring)."""
        self._connected = function

    @property
    def connected(self) -> bool:
        return self._connected is not self._declared

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._connected(*args, **kwargs)


def _not_connected(name: str) -> NoReturn:
    raise ImproperlyConfigured(f"sessions_app.hooks.{name} is not connected (config/wiring.py)")


@dataclass(frozen=True)
class SessionStart:
    """What a new session starts with."""

    # The first upstream session's instructions.
    instructions: str
    # Called with the new session in the creating transaction: copies what it carries over
    # (a profile). None: nothing to copy.
    carry: Callable[[Session], object] | None = None
    # What the page is told was carried, when it asked (the `memory` of POST /session,
    # sessions_app.api.writes.MemorySerializer); None when it did not ask.
    memory: object | None = None


@Hook
def session_start(
    *, owner_hash: str, previous: Session | None, carry_profile: bool, carry_memory: bool
) -> SessionStart:
    """What a session created by `owner_hash` starts with: the owner's memory when
    `carry_memory`, else with `carry_profile` the latest profile of `previous` (the session a
    refresh closes), else the base instructions. Served by extraction.memory.session_start."""
    _not_connected("session_start")


@Hook
def session_instructions(*, session: Session) -> str:
    """The instructions of the session's next upstream session (renew): its latest profile and
    a recap of its latest turns. Served by extraction.selectors.session_instructions."""
    _not_connected("session_instructions")


@Hook
def session_profile_json(*, session: Session) -> dict[str, object] | None:
    """The profile in force as GET /session/{id} shows it (`profile`), or None. Served by
    extraction.selectors.profile_latest_payload."""
    _not_connected("session_profile_json")


@Hook
def call_capture(*, call: Call) -> str:
    """Whether the call's transcript is being captured, as the session reads show it
    ("active", "starting", "pending", "ended"). Served by sideband.selectors.call_capture."""
    _not_connected("call_capture")


@Hook
def calls_end(*, calls: QuerySet[Call], reason: str) -> object:
    """In the caller's transaction: end the live calls of `calls` with `reason`
    (Call.EndReason); after commit their pages are told and the upstream hangs them up. What a
    call's end does is the sideband's one rule: served by sideband.services.calls_end."""
    _not_connected("calls_end")


@Hook
def call_dispatch(*, call_id: str, generation: int) -> None:
    """After commit: hand a registered call to the sideband worker, which captures its
    transcript. Never raises: a lost dispatch is recovered by the reconciler. Served by
    sideband.tasks.call_own_dispatch."""
    _not_connected("call_dispatch")
