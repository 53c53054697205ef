"""Fill a JSON schema (as pydantic and the OpenAI SDK emit it, strict) with extracted facts.

Property names map to facts by their words: `name`; `preferred_name`/`nickname`;
`city`/`location`/`place`/`town`/`where…`; `goals`/`objectives`; `likes`/`preferences`/
`interests`/`hobbies`/`favorites`; `dislikes`/`hates`; `language(s)`. Nothing said gives null
(nullable scalars and objects) or an empty list (arrays). An object holding a fact fills its
evidence array (`evidence`, `evidence_turn_ids`, `turn_ids`, `sources`) with the turn ids.
"""

from __future__ import annotations

from typing import Any

from .extractor import LIST_FACTS, Fact, ListFact

Context = Fact | ListFact | None

EVIDENCE_NAMES = {"evidence", "evidence_turn_ids", "turn_ids", "sources"}
VALUE_NAMES = {
    "value", "values", "text", "name", "content", "statement", "description", "item", "items",
    "label", "fact", "answer",
}  # fmt: skip
_MAX_DEPTH = 32
_UNKNOWN_OPTIONS = {"unknown", "none", "other", "unspecified", "not_stated", "n/a"}


def match_fact(prop: str) -> str | None:
    p = prop.lower()
    if p in EVIDENCE_NAMES:
        return None
    if ("prefer" in p or "nick" in p) and "name" in p:
        return "preferred_name"
    if "language" in p or "speak" in p:
        return "language"
    if any(w in p for w in ("dislike", "hate", "avoid", "aversion")):
        return "dislikes"
    if any(w in p for w in ("goal", "objective", "aspiration", "want")):
        return "goals"
    if any(
        w in p for w in ("like", "preference", "interest", "hobb", "favorite", "favourite", "love")
    ):
        return "likes"
    if any(w in p for w in ("city", "location", "place", "town", "where", "residence", "home")):
        return "city"
    if "name" in p:
        return "name"
    return None


def _has_value(ctx: Context) -> bool:
    if isinstance(ctx, ListFact):
        return bool(ctx.items)
    return ctx is not None and bool(ctx.value)


def _empty(key: str) -> Fact | ListFact:
    """The context of a fact nobody stated: fills as null / [] but keeps its key."""
    return ListFact(key) if key in LIST_FACTS else Fact(key, "")


class SchemaFiller:
    def __init__(self, root: dict[str, Any], facts: dict[str, Fact | ListFact | None]) -> None:
        self.root = root
        self.facts = facts

    def _resolve(self, schema: Any) -> dict[str, Any]:
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and seen < _MAX_DEPTH:
            ref = schema["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#/"):
                return {}
            target: Any = self.root
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            schema = target
            seen += 1
        return schema if isinstance(schema, dict) else {}

    def fill(self, schema: Any, ctx: Context = None, prop: str = "", depth: int = 0) -> Any:
        schema = self._resolve(schema)
        if depth > _MAX_DEPTH:
            return None
        if "const" in schema:
            return schema["const"]
        variants = schema.get("anyOf") or schema.get("oneOf")
        if isinstance(variants, list):
            branches = [self._resolve(v) for v in variants]
            concrete = [b for b in branches if b.get("type") != "null"]
            nullable = len(concrete) < len(branches)
            if not concrete or (nullable and ctx is not None and not _has_value(ctx)):
                if concrete and self._kind(concrete[0])[0] == "array":
                    return []
                return None
            wanted = "array" if isinstance(ctx, ListFact) else "string"
            chosen = next((b for b in concrete if self._kind(b)[0] == wanted), concrete[0])
            return self.fill(chosen, ctx, prop, depth + 1)
        kind, nullable = self._kind(schema)
        present = _has_value(ctx)
        if kind == "object":
            if nullable and ctx is not None and not present:
                return None
            return self._object(schema, ctx, depth)
        if kind == "array":
            return self._array(schema, ctx, depth)
        if kind == "string":
            return self._string(schema, ctx, prop, nullable)
        if kind in ("number", "integer"):
            if "confidence" in prop.lower() or "score" in prop.lower():
                value: float = 1.0 if present else 0.0
            elif nullable:
                return None
            else:
                value = 0.0
            return int(value) if kind == "integer" else value
        if kind == "boolean":
            if nullable and not present:
                return None
            return present
        return None

    @staticmethod
    def _kind(schema: dict[str, Any]) -> tuple[str, bool]:
        declared = schema.get("type")
        if isinstance(declared, list):
            rest = [t for t in declared if t != "null"]
            return (rest[0] if rest else "null"), "null" in declared
        if isinstance(declared, str):
            return declared, False
        if "properties" in schema:
            return "object", False
        if "items" in schema:
            return "array", False
        if "enum" in schema:
            return "string", None in schema["enum"]
        return "string", False

    def _object(self, schema: dict[str, Any], ctx: Context, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, sub in (schema.get("properties") or {}).items():
            result[name] = self._property(name, sub, ctx, depth)
        return result

    def _property(self, name: str, sub: Any, ctx: Context, depth: int) -> Any:
        lowered = name.lower()
        fact_key = match_fact(name)
        if ctx is not None:
            if lowered in EVIDENCE_NAMES:
                return self._evidence(sub, ctx, depth)
            if lowered in VALUE_NAMES or fact_key == ctx.key:
                return self.fill(sub, ctx, name, depth + 1)
            if fact_key is not None:
                fact = self.facts.get(fact_key) or _empty(fact_key)
                return self.fill(sub, fact, name, depth + 1)
            return self.fill(sub, ctx if self._scalar_flag(sub) else None, name, depth + 1)
        if fact_key is not None:
            return self.fill(sub, self.facts.get(fact_key) or _empty(fact_key), name, depth + 1)
        if lowered in EVIDENCE_NAMES:
            return self._evidence(sub, None, depth)
        resolved = self._resolve(sub)
        kind, nullable = self._main_kind(resolved)
        if "summary" in lowered and kind == "string":
            return self.summary() or (None if nullable else "")
        if kind == "object" and not self._is_fact_shaped(resolved):
            return self.fill(sub, None, name, depth + 1)  # a wrapper: its properties match facts
        return self.fill(sub, _empty(""), name, depth + 1)  # a fact nobody stated

    def _main_kind(self, schema: dict[str, Any]) -> tuple[str, bool]:
        """The kind of the first non-null branch, and whether null is allowed."""
        variants = schema.get("anyOf") or schema.get("oneOf")
        if isinstance(variants, list):
            branches = [self._resolve(v) for v in variants]
            concrete = [b for b in branches if b.get("type") != "null"]
            kind = self._kind(concrete[0])[0] if concrete else "null"
            return kind, len(concrete) < len(branches)
        return self._kind(schema)

    def _is_fact_shaped(self, schema: dict[str, Any]) -> bool:
        variants = schema.get("anyOf") or schema.get("oneOf")
        if isinstance(variants, list):
            return any(self._is_fact_shaped(self._resolve(v)) for v in variants)
        names = {n.lower() for n in schema.get("properties") or {}}
        if names & EVIDENCE_NAMES:
            return True
        return not any(match_fact(n) for n in names) and bool(names & VALUE_NAMES)

    def _scalar_flag(self, sub: Any) -> bool:
        return self._kind(self._resolve(sub))[0] in ("number", "integer", "boolean")

    def _evidence(self, sub: Any, ctx: Context, depth: int) -> Any:
        schema = self._resolve(sub)
        ids = list(ctx.turn_ids) if ctx is not None and _has_value(ctx) else []
        kind, nullable = self._kind(schema)
        if kind == "array":
            item_kind = self._kind(self._resolve(schema.get("items", {})))[0]
            if item_kind == "integer":
                return [int(i) for i in ids if i.isdigit()]
            return ids
        if kind == "string":
            return ", ".join(ids) if ids else (None if nullable else "")
        return self.fill(schema, None, "", depth + 1)

    def _array(self, schema: dict[str, Any], ctx: Context, depth: int) -> list[Any]:
        items_schema = schema.get("items", {})
        if isinstance(ctx, ListFact):
            return [self.fill(items_schema, item, "", depth + 1) for item in ctx.items]
        if isinstance(ctx, Fact) and ctx.value:
            return [self.fill(items_schema, ctx, "", depth + 1)]
        return []

    def _string(self, schema: dict[str, Any], ctx: Context, prop: str, nullable: bool) -> Any:
        enum = schema.get("enum")
        value = ctx.value if ctx is not None and _has_value(ctx) else None
        if isinstance(enum, list):
            return self._enum(
                [e for e in enum if isinstance(e, str)], ctx, nullable or None in enum
            )
        if value is None:
            return None if nullable else ""
        return value

    @staticmethod
    def _enum(options: list[str], ctx: Context, nullable: bool) -> str | None:
        """The first stated value that is an option; else null, an 'unknown'-like option, or
        the first option."""
        if isinstance(ctx, ListFact):
            candidates = [i.value for i in ctx.items]
        else:
            candidates = [ctx.value] if ctx is not None and ctx.value else []
        for candidate in candidates:
            for option in options:
                if option.lower() == candidate.lower():
                    return option
        if nullable:
            return None
        for option in options:
            if option.lower() in _UNKNOWN_OPTIONS:
                return option
        return options[0] if options else None

    def summary(self) -> str:
        parts = []
        for key, label in (
            ("name", "Name"),
            ("preferred_name", "Preferred name"),
            ("city", "Place"),
            ("language", "Languages"),
            ("goals", "Goals"),
            ("likes", "Likes"),
            ("dislikes", "Dislikes"),
        ):
            fact = self.facts.get(key)
            if fact is not None and _has_value(fact) and fact.value:
                parts.append(f"{label}: {fact.value}.")
        return " ".join(parts)


def fill_schema(schema: dict[str, Any], facts: dict[str, Fact | ListFact | None]) -> Any:
    return SchemaFiller(schema, facts).fill(schema)
