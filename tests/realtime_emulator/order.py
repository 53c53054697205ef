"""Comparing event-type sequences with the recorded sessions."""

from __future__ import annotations

from typing import Any

TRANSCRIPTION = {
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.failed",
}
# Only on WebSocket sessions: a WebRTC call's audio travels on the media track.
NOT_ON_WEBRTC = {"response.output_audio.delta"}
FLOATING = {"output_audio_buffer.started"}


def types_of(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def collapsed(types: list[str], keep: set[str]) -> list[str]:
    """`types` restricted to `keep`, consecutive repeats (delta runs) folded into one."""
    result: list[str] = []
    for t in types:
        if t in keep and (not result or result[-1] != t):
            result.append(t)
    return result


def slice_between(events: list[dict[str, Any]], first: str, last: str) -> list[dict[str, Any]]:
    """From the first event of type `first` to the first `last` after it (inclusive)."""
    start = next(i for i, e in enumerate(events) if e["type"] == first)
    end = next(i for i in range(start, len(events)) if events[i]["type"] == last)
    return events[start : end + 1]


def assert_same_order(ours: list[str], reference: list[str], *, ignore: set[str]) -> None:
    """Same sequence over the types both have (runs folded), every reference type present."""
    applicable = set(reference) - ignore
    missing = applicable - set(ours)
    assert not missing, f"types the recording has and we lack: {missing}"
    keep = applicable & set(ours)
    assert collapsed(ours, keep) == collapsed(reference, keep)


# The project's own fixtures, in the shape of the recordings (folded type sequences), for runs
# where ../shared/realtime-corpus/ is absent. Where it exists, tests read the recordings.
TEXT_TURN_ON_WEBRTC = [
    "conversation.item.added",
    "conversation.item.done",
    "response.created",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
    "response.output_audio_transcript.delta",
    "output_audio_buffer.started",
    "response.output_audio.done",
    "response.output_audio_transcript.done",
    "response.content_part.done",
    "conversation.item.done",
    "response.output_item.done",
    "response.done",
    "rate_limits.updated",
    "output_audio_buffer.stopped",
]
SPOKEN_TURN = [
    "input_audio_buffer.speech_started",
    "conversation.item.input_audio_transcription.delta",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "conversation.item.added",
    "conversation.item.done",
    "response.created",
    "conversation.item.input_audio_transcription.delta",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
    "response.output_audio_transcript.delta",
    "conversation.item.input_audio_transcription.completed",
    "response.output_audio_transcript.delta",
    "response.output_audio.done",
    "response.output_audio_transcript.done",
    "response.content_part.done",
    "conversation.item.done",
    "response.output_item.done",
    "response.done",
    "rate_limits.updated",
]
