"""Builders of Realtime server events for the pure capture tests (tests/sideband/test_capture_*.py).

Hand-written events in the shapes of the recorded corpus (GA names; beta shapes are written out
in the tests that need them), and small readers of what the capture made of them.
"""

from __future__ import annotations

import itertools
from typing import Any

from sideband.capture import CaptureState, Op, TurnUpsert, capture_event

_ids = itertools.count(1)


def ev(type_: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_, "event_id": f"event_{next(_ids):05d}", **fields}


def user_text(item_id: str, text: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_text", "text": text}],
    }


def user_audio(item_id: str, transcript: str | None = None) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_audio", "transcript": transcript}],
    }


def assistant(
    item_id: str, transcript: str | None = None, *, status: str = "completed"
) -> dict[str, Any]:
    content = [] if transcript is None else [{"type": "output_audio", "transcript": transcript}]
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def added(item: dict[str, Any], prev: str | None) -> dict[str, Any]:
    return ev("conversation.item.added", previous_item_id=prev, item=item)


def done(item: dict[str, Any], prev: str | None = None) -> dict[str, Any]:
    return ev("conversation.item.done", previous_item_id=prev, item=item)


def run(state: CaptureState, events: list[dict[str, Any]]) -> list[Op]:
    ops: list[Op] = []
    for event in events:
        ops.extend(capture_event(state, event))
    return ops


def upserts(ops: list[Op]) -> list[TurnUpsert]:
    return [op for op in ops if isinstance(op, TurnUpsert)]


def texts(state: CaptureState) -> list[tuple[str, str, str | None, str]]:
    return [(t.item_id, t.role, t.text, t.status) for t in state.turns()]


def answer(item_id: str, prev: str, text: str, response_id: str = "resp_1") -> list[dict]:
    """An in-band spoken answer, as the corpus shows it."""
    return [
        ev(
            "response.created",
            response={"id": response_id, "status": "in_progress", "conversation_id": "conv_1"},
        ),
        ev(
            "response.output_item.added",
            response_id=response_id,
            output_index=0,
            item=assistant(item_id, status="in_progress"),
        ),
        added(assistant(item_id, status="in_progress"), prev),
        ev(
            "response.output_audio_transcript.delta",
            response_id=response_id,
            item_id=item_id,
            content_index=0,
            delta=text[:3],
        ),
        ev(
            "response.output_audio_transcript.done",
            response_id=response_id,
            item_id=item_id,
            content_index=0,
            transcript=text,
        ),
        done(assistant(item_id, text), prev=None),
        ev(
            "response.done",
            response={
                "id": response_id,
                "status": "completed",
                "conversation_id": "conv_1",
                "output": [assistant(item_id, text)],
            },
        ),
    ]
