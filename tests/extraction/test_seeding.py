"""Seeding a renewed call: the last K spoken turns from before it, as chained items."""

from __future__ import annotations

import pytest

from extraction.seeding import seed_events
from sessions_app.models import TranscriptTurn
from sessions_app.seed_items import seed_item_id
from tests.extraction.conftest import call_new, conversation_write

pytestmark = pytest.mark.django_db


def test_a_renewed_call_is_seeded_with_the_last_turns_before_it_in_order(session, settings):
    settings.SIDEBAND_SEED_TURNS = 3
    old = call_new(session=session, generation=1)
    new = call_new(session=session, generation=2)
    before = conversation_write(
        session,
        [
            ("user", "My name is Ada."),
            ("assistant", "Hello Ada."),
            ("user", "I live in Lyon."),
            ("assistant", 'You said: "I live in Lyon".'),
        ],
        call=old,
    )
    conversation_write(session, [("user", "Said on the new call.")], call=new, start=10)

    events = seed_events(call=new)

    seeded = before[1:]
    assert events == [
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Hello Ada."}],
                "id": seed_item_id(seeded[0].item_id),
            },
        },
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "I live in Lyon."}],
                "id": seed_item_id(seeded[1].item_id),
            },
            "previous_item_id": seed_item_id(seeded[0].item_id),
        },
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": 'You said: "I live in Lyon".'}],
                "id": seed_item_id(seeded[2].item_id),
            },
            "previous_item_id": seed_item_id(seeded[1].item_id),
        },
    ]


def test_turns_without_words_and_tool_turns_are_not_seeded(session, settings):
    settings.SIDEBAND_SEED_TURNS = 8
    old = call_new(session=session, generation=1)
    new = call_new(session=session, generation=2)
    spoken, failed, pending, tool = conversation_write(
        session,
        [("user", "Hi."), ("user", "lost"), ("user", "soon"), ("assistant", "x")],
        call=old,
    )
    TranscriptTurn.objects.filter(pk=failed.pk).update(
        text=None, status=TranscriptTurn.Status.FAILED, status_reason="transcription failed"
    )
    TranscriptTurn.objects.filter(pk=pending.pk).update(status=TranscriptTurn.Status.IN_PROGRESS)
    TranscriptTurn.objects.filter(pk=tool.pk).update(role=TranscriptTurn.Role.TOOL_CALL)

    events = seed_events(call=new)

    assert [event["item"]["id"] for event in events] == [seed_item_id(spoken.item_id)]


def test_seeding_is_off_when_the_setting_is_zero(session, settings):
    settings.SIDEBAND_SEED_TURNS = 0
    old = call_new(session=session, generation=1)
    new = call_new(session=session, generation=2)
    conversation_write(session, [("user", "My name is Ada.")], call=old)

    assert seed_events(call=new) == []
