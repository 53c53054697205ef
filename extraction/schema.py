"""The profile: what a voice assistant should remember about its user.

Two views of one shape, kept side by side so they cannot drift apart (a test checks it):

- `PROFILE_JSON_SCHEMA`, the strict JSON Schema sent to the Responses API as a structured
  output. Strict mode wants every property required, `additionalProperties: false`, and
  supports no string lengths; a field the model has no value for is `null` or `[]`.
- `ExtractedProfile`, the pydantic model the server validates the output with. It enforces
  what the JSON Schema cannot: bounded sizes, and evidence that points at turns the model was
  actually shown (`profile_parse`).

Every fact is `{"value": ..., "evidence": [turn ids]}`; a turn id is the transcript turn's
`item_id`. Stored profiles carry `schema_version`; bump `PROFILE_SCHEMA_VERSION` when the shape
changes and keep old rows readable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from sessions_app.storable import json_storable

PROFILE_SCHEMA_VERSION = 1
PROFILE_SCHEMA_NAME = "user_profile"

# Bounds that keep a profile (and the instructions built from it) small.
MAX_VALUE_CHARS = 200
MAX_EVIDENCE = 20
MAX_ITEMS = 20

# Single-valued facts, then lists of facts, in the order the instructions render them.
SCALAR_FIELDS: tuple[str, ...] = (
    "name",
    "preferred_name",
    "language",
    "location",
    "time_zone",
)
LIST_FIELDS: tuple[str, ...] = (
    "goals",
    "preferences",
    "dislikes",
    "facts",
    "constraints",
    "follow_ups",
)

_FIELD_DESCRIPTIONS: dict[str, str] = {
    "name": "The user's name, as they stated it.",
    "preferred_name": "What the user asked to be called, if different from their name.",
    "language": "The language the user speaks or wants to be answered in.",
    "location": "Where the user lives or is (city, region or country).",
    "time_zone": "The user's time zone, only if stated or unambiguous from the location.",
    "goals": "What the user wants to achieve.",
    "preferences": "Things the user likes or prefers.",
    "dislikes": "Things the user dislikes or wants avoided.",
    "facts": "Other stable facts about the user worth remembering.",
    "constraints": "Limits the assistant must respect (diet, schedule, accessibility...).",
    "follow_ups": "Open questions or promises to come back to in a later conversation.",
}

TurnId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
FactValue = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_VALUE_CHARS)
]


class Fact(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    value: FactValue
    evidence: Annotated[list[TurnId], Field(min_length=1, max_length=MAX_EVIDENCE)]


FactList = Annotated[list[Fact], Field(max_length=MAX_ITEMS)]


class ExtractedProfile(BaseModel):
    """The structured output of one extraction, and the `data` of a stored Profile."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: Fact | None
    preferred_name: Fact | None
    language: Fact | None
    location: Fact | None
    time_zone: Fact | None
    goals: FactList
    preferences: FactList
    dislikes: FactList
    facts: FactList
    constraints: FactList
    follow_ups: FactList

    def evidence_ids(self) -> set[str]:
        ids: set[str] = set()
        for fact in self.all_facts():
            ids.update(fact.evidence)
        return ids

    def all_facts(self) -> list[Fact]:
        facts: list[Fact] = []
        for field in SCALAR_FIELDS:
            fact = getattr(self, field)
            if fact is not None:
                facts.append(fact)
        for field in LIST_FIELDS:
            facts.extend(getattr(self, field))
        return facts


def _fact_schema(description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "properties": {
            "value": {"type": "string", "description": "The fact, short, in the user's words."},
            "evidence": {
                "type": "array",
                "description": "Ids of the transcript turns that support the fact.",
                "items": {"type": "string"},
            },
        },
        "required": ["value", "evidence"],
        "additionalProperties": False,
    }


def _build_json_schema() -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for field in SCALAR_FIELDS:
        properties[field] = {
            "anyOf": [_fact_schema(_FIELD_DESCRIPTIONS[field]), {"type": "null"}],
        }
    for field in LIST_FIELDS:
        properties[field] = {
            "type": "array",
            "description": _FIELD_DESCRIPTIONS[field],
            "items": _fact_schema(_FIELD_DESCRIPTIONS[field]),
        }
    return {
        "type": "object",
        "properties": properties,
        "required": [*SCALAR_FIELDS, *LIST_FIELDS],
        "additionalProperties": False,
    }


PROFILE_JSON_SCHEMA: dict[str, Any] = _build_json_schema()


class ProfileInvalid(Exception):
    """The model's output is not a valid profile; `reason` is safe to show and store."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _is_blank_fact(item: object) -> bool:
    return (
        isinstance(item, dict) and isinstance(item.get("value"), str) and not item["value"].strip()
    )


def _blank_facts_dropped(payload: object) -> object:
    """A fact whose value is blank is no fact: null for a single value, left out of a list.

    Models (and the emulator) sometimes fill an unknown fact with "" instead of null; that is
    harmless, unlike a stated fact without evidence, which validation still rejects.
    """
    if not isinstance(payload, dict):
        return payload
    cleaned = dict(payload)
    for field in SCALAR_FIELDS:
        if _is_blank_fact(cleaned.get(field)):
            cleaned[field] = None
    for field in LIST_FIELDS:
        items = cleaned.get(field)
        if isinstance(items, list):
            cleaned[field] = [item for item in items if not _is_blank_fact(item)]
    return cleaned


def profile_parse(raw: str, *, known_turn_ids: Iterable[str]) -> ExtractedProfile:
    """Validate the model's output text; evidence must cite turns the model was shown.

    Raises ProfileInvalid with a short reason (field paths, never the transcript's text).
    """
    try:
        # Text Postgres cannot store (NUL, lone surrogates) is replaced, as in the capture.
        payload = json_storable(json.loads(raw))
    except json.JSONDecodeError as exc:
        raise ProfileInvalid(f"output is not JSON ({exc.msg} at {exc.pos})") from exc
    except RecursionError:
        raise ProfileInvalid("output is nested too deep") from None
    try:
        profile = ExtractedProfile.model_validate(_blank_facts_dropped(payload))
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in error['loc']) or '(root)'}: {error['type']}"
            for error in exc.errors()[:5]
        ]
        reason = "output does not match the profile schema: " + "; ".join(problems)
        raise ProfileInvalid(reason) from exc
    unknown = profile.evidence_ids() - set(known_turn_ids)
    if unknown:
        shown = ", ".join(sorted(unknown)[:5])
        raise ProfileInvalid(f"evidence cites turns that are not in the transcript: {shown}")
    return profile


def profile_empty() -> ExtractedProfile:
    return ExtractedProfile(
        name=None,
        preferred_name=None,
        language=None,
        location=None,
        time_zone=None,
        goals=[],
        preferences=[],
        dislikes=[],
        facts=[],
        constraints=[],
        follow_ups=[],
    )


def profile_from_data(data: dict[str, Any]) -> ExtractedProfile:
    """A stored Profile.data back as a model (its `schema_version` key dropped)."""
    body = {key: value for key, value in data.items() if key != "schema_version"}
    return ExtractedProfile.model_validate(body)


def profile_to_data(profile: ExtractedProfile) -> dict[str, Any]:
    """What Profile.data stores and the API returns: the facts plus `schema_version`."""
    return {"schema_version": PROFILE_SCHEMA_VERSION, **profile.model_dump(mode="json")}


def _normalised(value: str) -> str:
    return " ".join(value.casefold().split())


def _with_evidence(fact: Fact, evidence: list[str]) -> Fact:
    combined = list(dict.fromkeys([*fact.evidence, *evidence]))[:MAX_EVIDENCE]
    return Fact(value=fact.value, evidence=combined)


def profile_merge(*, previous: ExtractedProfile, update: ExtractedProfile) -> ExtractedProfile:
    """Fold the facts extracted from the new turns into the previous profile.

    Deterministic: a single-valued fact the new turns state replaces the old one (the user
    corrected it); a list gains the new facts, and a fact already present (same value, case and
    spacing aside) gains the new evidence instead of a duplicate. Lists keep their first
    MAX_ITEMS entries. Nothing is ever dropped by omission, so the model only has to report
    what the new turns say.
    """
    merged: dict[str, Any] = {}
    for field in SCALAR_FIELDS:
        old, new = getattr(previous, field), getattr(update, field)
        if new is None:
            merged[field] = old
        elif old is not None and _normalised(old.value) == _normalised(new.value):
            merged[field] = _with_evidence(old, new.evidence)
        else:
            merged[field] = new
    for field in LIST_FIELDS:
        facts: list[Fact] = list(getattr(previous, field))
        index = {_normalised(fact.value): position for position, fact in enumerate(facts)}
        for fact in getattr(update, field):
            key = _normalised(fact.value)
            if key in index:
                facts[index[key]] = _with_evidence(facts[index[key]], fact.evidence)
            else:
                index[key] = len(facts)
                facts.append(fact)
        merged[field] = facts[:MAX_ITEMS]
    return ExtractedProfile(**merged)
