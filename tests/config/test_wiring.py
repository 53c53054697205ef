"""config/wiring.py: every hook of the ground floor is served once Django is ready, and a hook
nobody connected fails loudly instead of skipping its step."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from sessions_app import hooks
from sessions_app.models import Session


def test_every_hook_of_the_ground_floor_is_connected() -> None:
    declared = {name: value for name, value in vars(hooks).items() if isinstance(value, hooks.Hook)}

    assert sorted(declared) == [
        "call_capture",
        "call_dispatch",
        "calls_end",
        "session_instructions",
        "session_profile_json",
        "session_start",
    ]
    assert [name for name, hook in declared.items() if not hook.connected] == []


def test_a_hook_nobody_connected_raises_naming_itself() -> None:
    @hooks.Hook
    def unwired(*, session: Session) -> str:
        hooks._not_connected("unwired")

    with pytest.raises(ImproperlyConfigured, match=r"sessions_app\.hooks\.unwired"):
        unwired(session=Session())
