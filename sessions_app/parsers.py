"""The one parser of request bodies: UTF-8 JSON, bounded in depth, never a 500.

DRF's JSONParser lets a deeply nested body (`'[' * 1000 + ']' * 1000`) escape as a
RecursionError (a 500 on every POST endpoint), decodes any charset the client names, and
accepts lone surrogates (`"\\ud800"`) that no database can store. This parser answers each of
those with a ParseError naming the problem, which the API's exception handler turns into a 400
`{"body": [...]}`. The body's size is capped before anything parses it
(`sessions_app.api.base.ClientAPIView`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import IO, Any, Final

import orjson
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils.mediatypes import _MediaType

# The API's bodies are flat objects; a little room for clients that wrap things.
MAX_BODY_DEPTH: Final = 8
_UTF8: Final = frozenset({"utf-8", "utf8"})
_TOO_DEEP: Final = f"The body is nested deeper than {MAX_BODY_DEPTH} levels."


class StrictJSONParser(JSONParser):
    """`application/json` bodies in UTF-8 (RFC 8259), at most MAX_BODY_DEPTH levels deep."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        charset = _MediaType(media_type or "").params.get("charset")
        if charset is not None and charset.lower() not in _UTF8:
            raise ParseError(f"The body must be UTF-8 JSON, not charset={charset[:40]}.")
        raw = stream.read()
        try:
            # orjson: strict UTF-8 (no lone surrogates), no NaN, and its own depth limit
            # instead of Python's recursion.
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if "depth limit" in str(exc):  # orjson's own limit (1024), far past ours
                raise ParseError(_TOO_DEEP) from None
            raise ParseError(f"The body is not valid UTF-8 JSON: {exc}.") from None
        if json_depth(data) > MAX_BODY_DEPTH:
            raise ParseError(_TOO_DEEP)
        return data


def json_depth(value: Any) -> int:
    """How deeply arrays and objects nest in a parsed JSON value (a scalar: 0), without
    recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest
