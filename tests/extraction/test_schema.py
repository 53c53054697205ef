"""The profile schema: the strict JSON Schema and the pydantic model agree; validation and merge."""

from __future__ import annotations

import json

import pytest

from extraction.schema import (
    LIST_FIELDS,
    MAX_VALUE_CHARS,
    PROFILE_JSON_SCHEMA,
    SCALAR_FIELDS,
    ExtractedProfile,
    Fact,
    ProfileInvalid,
    profile_empty,
    profile_from_data,
    profile_merge,
    profile_parse,
    profile_to_data,
)


def _output(**facts: object) -> str:
    body = profile_empty().model_dump(mode="json")
    body.update(facts)
    return json.dumps(body)


def _strict_objects(schema: object) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            found.append(schema)
        for value in schema.values():
            found.extend(_strict_objects(value))
    elif isinstance(schema, list):
        for value in schema:
            found.extend(_strict_objects(value))
    return found


def test_json_schema_fields_are_the_models_fields():
    assert list(PROFILE_JSON_SCHEMA["properties"]) == [*SCALAR_FIELDS, *LIST_FIELDS]
    assert set(PROFILE_JSON_SCHEMA["properties"]) == set(ExtractedProfile.model_fields)


def test_json_schema_is_strict_every_object_closed_and_fully_required():
    objects = _strict_objects(PROFILE_JSON_SCHEMA)
    assert len(objects) == 1 + len(SCALAR_FIELDS) + len(LIST_FIELDS)
    for obj in objects:
        assert obj["additionalProperties"] is False
        assert obj["required"] == list(obj["properties"])  # type: ignore[call-overload]


def test_parse_accepts_a_valid_output_with_known_evidence():
    raw = _output(
        name={"value": "Ada", "evidence": ["item_1"]},
        goals=[{"value": "learn Italian", "evidence": ["item_1", "item_3"]}],
    )

    profile = profile_parse(raw, known_turn_ids={"item_1", "item_3"})

    assert profile.name == Fact(value="Ada", evidence=["item_1"])
    assert profile.goals == [Fact(value="learn Italian", evidence=["item_1", "item_3"])]
    assert profile.evidence_ids() == {"item_1", "item_3"}


def test_parse_rejects_text_that_is_not_json():
    with pytest.raises(ProfileInvalid, match="output is not JSON"):
        profile_parse("I cannot help with that.", known_turn_ids={"item_1"})


def test_parse_rejects_a_missing_field_naming_it():
    body = json.loads(_output())
    del body["goals"]

    with pytest.raises(ProfileInvalid) as caught:
        profile_parse(json.dumps(body), known_turn_ids=set())

    assert caught.value.reason == "output does not match the profile schema: goals: missing"


def test_parse_rejects_evidence_of_a_turn_the_model_was_not_shown():
    raw = _output(name={"value": "Ada", "evidence": ["item_1", "item_forged"]})

    with pytest.raises(ProfileInvalid) as caught:
        profile_parse(raw, known_turn_ids={"item_1"})

    assert caught.value.reason == "evidence cites turns that are not in the transcript: item_forged"


def test_parse_rejects_a_fact_without_evidence():
    raw = _output(location={"value": "Lyon", "evidence": []})

    with pytest.raises(ProfileInvalid, match=r"location\.evidence: too_short"):
        profile_parse(raw, known_turn_ids={"item_1"})


def test_parse_rejects_a_value_longer_than_the_bound():
    raw = _output(goals=[{"value": "x" * (MAX_VALUE_CHARS + 1), "evidence": ["item_1"]}])

    with pytest.raises(ProfileInvalid, match=r"goals\.0\.value: string_too_long"):
        profile_parse(raw, known_turn_ids={"item_1"})


def test_stored_data_is_versioned_and_reads_back():
    profile = profile_empty().model_copy(update={"name": Fact(value="Ada", evidence=["item_1"])})

    data = profile_to_data(profile)

    assert data["schema_version"] == 1
    assert data["name"] == {"value": "Ada", "evidence": ["item_1"]}
    assert profile_from_data(data) == profile


def test_merge_keeps_previous_facts_replaces_corrected_ones_and_unions_duplicates():
    previous = profile_empty().model_copy(
        update={
            "name": Fact(value="Ada", evidence=["t1"]),
            "location": Fact(value="Paris", evidence=["t1"]),
            "goals": [Fact(value="Learn Italian", evidence=["t2"])],
        }
    )
    update = profile_empty().model_copy(
        update={
            "name": Fact(value="ada", evidence=["t5"]),
            "location": Fact(value="Lyon", evidence=["t6"]),
            "goals": [
                Fact(value="learn  italian", evidence=["t5"]),
                Fact(value="run a marathon", evidence=["t6"]),
            ],
        }
    )

    merged = profile_merge(previous=previous, update=update)

    assert merged.name == Fact(value="Ada", evidence=["t1", "t5"])
    assert merged.location == Fact(value="Lyon", evidence=["t6"])
    assert merged.goals == [
        Fact(value="Learn Italian", evidence=["t2", "t5"]),
        Fact(value="run a marathon", evidence=["t6"]),
    ]
    assert merged.preferences == []


def test_parse_replaces_text_postgres_cannot_store_as_the_capture_does():
    raw = _output(name={"value": "A\u0000da\ud800", "evidence": ["item_1"]})

    profile = profile_parse(raw, known_turn_ids={"item_1"})

    assert profile.name is not None
    assert profile.name.value == "A\ufffdda\ufffd"


def test_parse_refuses_an_output_nested_too_deep():
    with pytest.raises(ProfileInvalid, match=r"nested too deep|not JSON"):
        profile_parse("[" * 100_000 + "]" * 100_000, known_turn_ids=set())
