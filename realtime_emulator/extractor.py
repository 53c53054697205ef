"""A rule-based fact extractor that fills a JSON schema deterministically from a transcript.

Facts come from the user's own lines only: a stated name ("my name is X", "I'm X"), a preferred
name ("call me X"), a place ("I live in X", "I'm from X", "I'm in X"), goals ("I want to …",
"my goal is …", "I'd like to …"), likes ("I like/love/enjoy …", "my favorite … is …"),
dislikes ("I don't like …", "I hate …") and languages ("I speak X"). A line written
`[turn <id>] user: …` makes `<id>` the evidence of every fact it states; an object that holds a
fact and has an array property named `evidence`, `evidence_turn_ids`, `turn_ids` or `sources`
gets those ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TURN_LINE = re.compile(
    r"^\s*\[turn\s+([^\]]+?)\]\s*(?:(user|assistant|system|developer)\s*:)?\s*(.*)$", re.I
)
_ROLE_LINE = re.compile(r"^\s*(user|assistant|system|developer)\s*:\s*(.*)$", re.I)
_END = r"(?=\s*,?\s+(?:but|although|though|because|since|except|while)\b|[.!?;\n]|$)"
_PHRASE = r"([^.!?;\n]+?)" + _END
_PLACE = (
    r"([^.,!?;\n]+?)(?=\s+(?:and|but|because|so|where|which|with|for|since|now|currently|"
    r"these days|at the moment|right now)\b|[.,!?;\n]|$)"
)
_NAME_ANY = r"([A-Za-z][A-Za-z'\-]*(?:\s+[A-Z][A-Za-z'\-]*)?)"
_NAME_CAP = r"([A-Z][A-Za-z'\-]*(?:\s+[A-Z][A-Za-z'\-]*)?)"
_I_AM = r"\bI(?:'m| am)"

_NAME_RULES = [
    re.compile(r"\b(?i:my name(?: is|'s))\s+" + _NAME_ANY),
    re.compile(_I_AM + r"\s+" + _NAME_CAP),  # case-sensitive: "I'm Alice", not "I'm tired"
]
_PREFERRED_RULES = [re.compile(r"\b(?i:call me|I go by|I prefer to be called)\s+" + _NAME_ANY)]
_PLACE_RULES = [
    re.compile(r"\bI live in\s+" + _PLACE, re.I),
    re.compile(r"\bI(?:'m| am) (?:from|based in)\s+" + _PLACE, re.I),
    re.compile(r"\bI come from\s+" + _PLACE, re.I),
    re.compile(r"\bI(?:'m| am) in\s+(?=[A-Z])" + _PLACE),  # "I'm in Paris", not "I'm in love"
]
_GOAL_RULES = [
    re.compile(
        r"\b(?:I want to|I wanna|I'd like to|I would like to|I hope to|I plan to|"
        r"my goal is(?: to)?|my goals are(?: to)?)\s+" + _PHRASE,
        re.I,
    )
]
_LIKE_RULES = [
    re.compile(r"\bI (?:really |also |just |do )?(?:like|love|enjoy|adore)\s+" + _PHRASE, re.I),
    re.compile(r"\bmy favou?rite [a-z ]{1,30}? is\s+" + _PHRASE, re.I),
]
_DISLIKE_RULES = [
    re.compile(
        r"\bI (?:really )?(?:don't|do not|dont) (?:really )?(?:like|enjoy|love)\s+" + _PHRASE,
        re.I,
    ),
    re.compile(
        r"\bI (?:really )?(?:hate|dislike|detest|can't stand|cannot stand)\s+" + _PHRASE, re.I
    ),
]
_LANGUAGE_RULES = [
    re.compile(r"\bI speak\s+" + _PHRASE, re.I),
    re.compile(r"\bmy (?:native |first |mother )?(?:language|tongue) is\s+" + _PHRASE, re.I),
]
_NOT_NAMES = {
    "from", "in", "a", "an", "the", "not", "so", "very", "really", "going", "here", "fine",
    "good", "ok", "okay", "sure", "glad", "happy", "sorry", "just", "also", "interested",
    "looking", "trying", "learning", "working", "living", "based", "currently", "still",
}  # fmt: skip
_LIST_SPLIT = re.compile(r"\s*(?:,\s*(?:and\s+|or\s+)?|\s+and\s+|\s+or\s+)\s*", re.I)
_LANGUAGE_NOISE = re.compile(r"^(?:a little|a bit of|some|fluent|fluently|basic)\s+", re.I)


@dataclass
class Fact:
    """One value and the turns that stated it (for a list fact: one entry of the list)."""

    key: str
    value: str
    turn_ids: list[str] = field(default_factory=list)


@dataclass
class ListFact:
    key: str
    items: list[Fact] = field(default_factory=list)

    @property
    def turn_ids(self) -> list[str]:
        ids: list[str] = []
        for item in self.items:
            ids.extend(t for t in item.turn_ids if t not in ids)
        return ids

    @property
    def value(self) -> str | None:
        return ", ".join(i.value for i in self.items) if self.items else None


@dataclass
class Statement:
    text: str
    turn_id: str | None


SCALAR_FACTS = ("name", "preferred_name", "city")
LIST_FACTS = ("goals", "likes", "dislikes", "language")


def user_statements(messages: list[tuple[str, str]]) -> list[Statement]:
    """The user's lines, with their turn ids, from `(role, text)` input messages."""
    statements = []
    for role, text in messages:
        if role not in ("user",):
            continue
        for line in text.splitlines():
            turn = _TURN_LINE.match(line)
            if turn:
                line_role = (turn.group(2) or "user").lower()
                if line_role == "user" and turn.group(3).strip():
                    statements.append(Statement(turn.group(3).strip(), turn.group(1).strip()))
                continue
            labelled = _ROLE_LINE.match(line)
            if labelled:
                if labelled.group(1).lower() == "user" and labelled.group(2).strip():
                    statements.append(Statement(labelled.group(2).strip(), None))
                continue
            if line.strip():
                statements.append(Statement(line.strip(), None))
    return statements


def _clean(value: str) -> str:
    return value.strip().strip("\"'").strip()


def _split_items(value: str) -> list[str]:
    parts = [_clean(p) for p in _LIST_SPLIT.split(value)]
    return [p[3:] if p.lower().startswith("to ") else p for p in parts if p]


def extract_facts(messages: list[tuple[str, str]]) -> dict[str, Fact | ListFact | None]:
    scalars: dict[str, Fact | None] = dict.fromkeys(SCALAR_FACTS)
    lists = {key: ListFact(key) for key in LIST_FACTS}

    def set_scalar(key: str, value: str, turn_id: str | None) -> None:
        value = _clean(value)
        if not value:
            return
        current = scalars[key]
        if current is not None and current.value.lower() == value.lower():
            if turn_id and turn_id not in current.turn_ids:
                current.turn_ids.append(turn_id)
            return
        scalars[key] = Fact(key, value, [turn_id] if turn_id else [])

    def add_items(key: str, raw: str, turn_id: str | None) -> None:
        for value in _split_items(raw):
            if key == "language":
                value = _LANGUAGE_NOISE.sub("", value)
                value = value[:1].upper() + value[1:]
            existing = next((i for i in lists[key].items if i.value.lower() == value.lower()), None)
            if existing is None:
                lists[key].items.append(Fact(key, value, [turn_id] if turn_id else []))
            elif turn_id and turn_id not in existing.turn_ids:
                existing.turn_ids.append(turn_id)

    for statement in user_statements(messages):
        text = statement.text.replace("\u2019", "'")
        tid = statement.turn_id
        for rule in _NAME_RULES:
            for match in rule.finditer(text):
                if match.group(1).split()[0].lower() not in _NOT_NAMES:
                    set_scalar("name", match.group(1), tid)
        for rule in _PREFERRED_RULES:
            for match in rule.finditer(text):
                set_scalar("preferred_name", match.group(1), tid)
        for rule in _PLACE_RULES:
            for match in rule.finditer(text):
                set_scalar("city", " ".join(match.group(1).split()[:5]), tid)
        for key, rules in (
            ("goals", _GOAL_RULES),
            ("dislikes", _DISLIKE_RULES),
            ("likes", _LIKE_RULES),
            ("language", _LANGUAGE_RULES),
        ):
            for rule in rules:
                for match in rule.finditer(text):
                    add_items(key, match.group(1), tid)
    facts: dict[str, Fact | ListFact | None] = dict(scalars)
    facts.update(lists)
    return facts
