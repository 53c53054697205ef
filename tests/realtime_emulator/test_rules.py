"""The pure rules: the assistant's reply, deltas, spoken transcripts, the VAD, the extractor."""

from __future__ import annotations

import array
import json
import math

import pytest

from realtime_emulator.assistant import reply_text, split_deltas, spoken_transcript
from realtime_emulator.extractor import extract_facts
from realtime_emulator.schema_fill import fill_schema
from realtime_emulator.vad import EnergyVad


@pytest.mark.parametrize(
    ("user_text", "heard", "instructions", "expected"),
    [
        ("hi", False, "Be nice.", 'You said: "hi".'),
        (
            "hi",
            False,
            "Be nice.\n  Marker: profile v2  \nMarker: later",
            'You said: "hi". (Marker: profile v2)',
        ),
        (None, True, "Marker: x", "I heard you. (Marker: x)"),
        (None, False, None, "Hello!"),
        ("hi", False, "No Marker: here", 'You said: "hi".'),
    ],
)
def test_reply_rule(
    user_text: str | None, heard: bool, instructions: str | None, expected: str
) -> None:
    assert reply_text(user_text, heard_audio=heard, instructions=instructions) == expected


def test_deltas_are_a_few_words_and_rebuild_the_text_exactly() -> None:
    text = 'You said: "hello   there".  (Marker: v2)'
    deltas = split_deltas(text)
    assert "".join(deltas) == text
    assert deltas[0] == "You said:"
    assert all(len(d.split()) <= 2 for d in deltas)


def test_spoken_transcript_rounds_to_whole_seconds() -> None:
    assert spoken_transcript(1, 400) == "Spoken turn 1, about 1 second."
    assert spoken_transcript(2, 2600) == "Spoken turn 2, about 3 seconds."


def _frame(amplitude: float) -> bytes:
    return array.array(
        "h",
        (round(amplitude * 32767 * math.sin(2 * math.pi * 440 * n / 48000)) for n in range(960)),
    ).tobytes()


def test_vad_detects_a_burst_with_padding_and_silence() -> None:
    vad = EnergyVad(silence_ms=200, prefix_padding_ms=300)
    events = []
    for amplitude, frames in ((0.0, 50), (0.5, 50), (0.0, 30)):
        for _ in range(frames):
            event = vad.feed(_frame(amplitude), duration_ms=20)
            if event is not None:
                events.append(event)
    started, stopped = events
    assert (started.kind, started.audio_ms) == ("started", 1000 - 300)
    assert (stopped.kind, stopped.audio_ms, stopped.speech_ms) == ("stopped", 2000 + 200, 1000)


def test_vad_ignores_a_click_shorter_than_the_minimum_speech() -> None:
    vad = EnergyVad(min_speech_ms=60)
    assert [vad.feed(_frame(a), duration_ms=20) for a in (0.5, 0.5, 0.0, 0.0)] == [None] * 4


TRANSCRIPT = [
    (
        "user",
        "\n".join(
            [
                "[turn 1] user: Hello, I'm Marcelo and I'm from Porto.",
                "[turn 2] assistant: My name is Assistant and I live in the cloud.",
                "[turn 3] user: Actually my name is Marcelo Silva. I'm in Berlin now.",
                "[turn 4] user: My goal is to run a marathon. I'd like to learn German.",
                "[turn 5] user: I really like techno, but I don't like crowds. "
                "I speak Portuguese and English.",
            ]
        ),
    ),
    ("system", "my name is Nobody"),
]


def test_extractor_reads_user_lines_only_and_keeps_turn_ids() -> None:
    facts = extract_facts(TRANSCRIPT)
    assert facts["name"] is not None
    assert (facts["name"].value, facts["name"].turn_ids) == ("Marcelo Silva", ["3"])
    assert facts["city"] is not None
    assert (facts["city"].value, facts["city"].turn_ids) == (
        "Berlin",
        ["3"],
    )
    assert [g.value for g in facts["goals"].items] == ["run a marathon", "learn German"]  # type: ignore[union-attr]
    assert [g.value for g in facts["likes"].items] == ["techno"]  # type: ignore[union-attr]
    assert [g.value for g in facts["dislikes"].items] == ["crowds"]  # type: ignore[union-attr]
    assert [g.value for g in facts["language"].items] == ["Portuguese", "English"]  # type: ignore[union-attr]


def test_schema_filling_handles_refs_nullable_type_lists_enums_and_evidence() -> None:
    schema = {
        "type": "object",
        "properties": {
            "profile": {"$ref": "#/$defs/Profile"},
            "location": {"type": ["string", "null"]},
            "preferences": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
            "dislikes": {
                "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]
            },
            "spoken_language": {"type": "string", "enum": ["English", "Portuguese", "unknown"]},
            "mood": {"type": "string", "enum": ["happy", "unknown"]},
            "nickname": {"type": ["string", "null"]},
            "age": {"type": ["integer", "null"]},
        },
        "required": [
            "profile",
            "location",
            "preferences",
            "dislikes",
            "spoken_language",
            "nickname",
            "age",
        ],
        "additionalProperties": False,
        "$defs": {
            "Fact": {
                "type": "object",
                "properties": {
                    "value": {"type": ["string", "null"]},
                    "sources": {"type": "array", "items": {"type": "string"}},
                },
            },
            "Item": {
                "type": "object",
                "properties": {
                    "text": {"type": "string"},
                    "turn_ids": {"type": "array", "items": {"type": "string"}},
                },
            },
            "Profile": {
                "type": "object",
                "properties": {
                    "name": {"$ref": "#/$defs/Fact"},
                    "goals": {
                        "type": "object",
                        "properties": {
                            "items": {"type": "array", "items": {"type": "string"}},
                            "evidence": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                },
            },
        },
    }
    filled = fill_schema(schema, extract_facts(TRANSCRIPT))
    assert filled == {
        "profile": {
            "name": {"value": "Marcelo Silva", "sources": ["3"]},
            "goals": {"items": ["run a marathon", "learn German"], "evidence": ["4"]},
        },
        "location": "Berlin",
        "preferences": [{"text": "techno", "turn_ids": ["5"]}],
        "dislikes": ["crowds"],
        "spoken_language": "Portuguese",
        "mood": "unknown",
        "nickname": None,
        "age": None,
    }
    json.dumps(filled)


def test_call_me_sets_the_preferred_name_and_nothing_said_gives_nulls() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": ["string", "null"]},
            "preferred_name": {"type": ["string", "null"]},
            "city": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "goals": {"type": "array", "items": {"type": "string"}},
        },
    }
    facts = extract_facts([("user", "My name is Robert, but call me Bob.")])
    assert fill_schema(schema, facts) == {
        "name": "Robert",
        "preferred_name": "Bob",
        "city": None,
        "goals": [],
    }
    assert fill_schema(schema, extract_facts([("user", "I'm tired.")])) == {
        "name": None,
        "preferred_name": None,
        "city": None,
        "goals": [],
    }


def _fact(description: str) -> dict[str, object]:
    return {
        "type": "object",
        "description": description,
        "properties": {
            "value": {"type": "string"},
            "evidence": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["value", "evidence"],
        "additionalProperties": False,
    }


def test_a_profile_schema_of_nullable_facts_and_fact_lists() -> None:
    scalars = ("name", "preferred_name", "language", "location", "time_zone")
    lists = ("goals", "preferences", "dislikes", "facts", "constraints", "follow_ups")
    schema = {
        "type": "object",
        "properties": {
            **{f: {"anyOf": [_fact(f), {"type": "null"}]} for f in scalars},
            **{f: {"type": "array", "items": _fact(f)} for f in lists},
        },
        "required": [*scalars, *lists],
        "additionalProperties": False,
    }
    transcript = [
        (
            "user",
            "[turn item_a] user: Hi, I'm Ana.\n"
            "[turn item_b] assistant: Hello Ana!\n"
            "[turn item_c] user: I live in Madrid and I speak Spanish. I want to learn piano.\n"
            "[turn item_d] user: I love cycling. I hate spam calls.",
        )
    ]
    assert fill_schema(schema, extract_facts(transcript)) == {
        "name": {"value": "Ana", "evidence": ["item_a"]},
        "preferred_name": None,
        "language": {"value": "Spanish", "evidence": ["item_c"]},
        "location": {"value": "Madrid", "evidence": ["item_c"]},
        "time_zone": None,
        "goals": [{"value": "learn piano", "evidence": ["item_c"]}],
        "preferences": [{"value": "cycling", "evidence": ["item_d"]}],
        "dislikes": [{"value": "spam calls", "evidence": ["item_d"]}],
        "facts": [],
        "constraints": [],
        "follow_ups": [],
    }
