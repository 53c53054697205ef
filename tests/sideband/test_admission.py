"""The queue-consumer switch: one sender (the lease thread), the wanted state sent at once on a
change and again every CONSUMER_REAPPLY_S, so a lost or overtaken control message heals."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

from sideband.owner.admission import CONSUMER_REAPPLY_S, consumer_switch_due
from sideband.owner.lease import ConsumerApplied, consumer_apply

if TYPE_CHECKING:
    from sideband.owner.owner import SidebandOwner


def test_the_first_state_is_sent() -> None:
    assert consumer_switch_due(admitting=True, applied=None, applied_age_s=0.0) is True
    assert consumer_switch_due(admitting=False, applied=None, applied_age_s=0.0) is False


def test_a_change_is_sent_at_once() -> None:
    assert consumer_switch_due(admitting=False, applied=True, applied_age_s=0.0) is False
    assert consumer_switch_due(admitting=True, applied=False, applied_age_s=0.0) is True


def test_an_unchanged_state_is_sent_again_only_when_the_last_is_old() -> None:
    for state in (True, False):
        assert consumer_switch_due(admitting=state, applied=state, applied_age_s=0.1) is None
        assert (
            consumer_switch_due(admitting=state, applied=state, applied_age_s=CONSUMER_REAPPLY_S)
            is state
        )


def _owner(sent: list[bool], *, ready: bool = True) -> SimpleNamespace:
    def switch(consuming: bool) -> bool:
        if ready:
            sent.append(consuming)
        return ready

    return SimpleNamespace(admitting=True, closing=False, consumer_switch=switch)


def test_a_refusal_and_a_resume_in_quick_succession_end_in_the_resumed_state() -> None:
    # The race this design removes: a refusal (pool thread) and a resume (lease thread) a few
    # ms apart. Both only change `admitting`; the lease thread sends what it reads last.
    sent: list[bool] = []
    owner = _owner(sent)
    applied = ConsumerApplied()
    consumer_apply(cast("SidebandOwner", owner), applied)
    owner.admitting = False  # refused
    owner.admitting = True  # resumed before the lease thread woke
    consumer_apply(cast("SidebandOwner", owner), applied)
    assert sent == [True]
    owner.admitting = False
    consumer_apply(cast("SidebandOwner", owner), applied)
    consumer_apply(cast("SidebandOwner", owner), applied)
    assert sent == [True, False]
    assert applied.consuming is False


def test_a_lost_switch_is_sent_again() -> None:
    sent: list[bool] = []
    owner = _owner(sent)
    applied = ConsumerApplied()
    consumer_apply(cast("SidebandOwner", owner), applied)
    applied.at -= CONSUMER_REAPPLY_S  # the message may have been lost; time passes
    consumer_apply(cast("SidebandOwner", owner), applied)
    assert sent == [True, True]


def test_nothing_counts_as_sent_before_the_worker_is_ready_or_while_closing() -> None:
    sent: list[bool] = []
    owner = _owner(sent, ready=False)
    applied = ConsumerApplied()
    consumer_apply(cast("SidebandOwner", owner), applied)
    assert applied.consuming is None
    closing = _owner(sent)
    closing.closing = True
    consumer_apply(cast("SidebandOwner", closing), applied)
    assert sent == []
    assert applied.consuming is None
