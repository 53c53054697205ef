"""The rule for text entering the transcript: what Postgres cannot store is replaced, once,
where the text enters (the sideband's capture; the profile extraction's model output too), so
every database and every path sees the same text. A rule of what the models can store, so on
the ground floor: both features apply it.

The rule: in every string of a server event (item ids, transcripts, tool arguments and
outputs, error messages...), each character Postgres refuses in a `text` column becomes
U+FFFD (the Unicode replacement character):

- U+0000 (NUL): Postgres text cannot hold it (psycopg refuses the whole statement, and with
  it every other record of a batched write);
- U+D800..U+DFFF (lone UTF-16 surrogates, which JSON's `\\ud800` escapes can produce): they
  have no UTF-8 encoding, so they cannot reach the server at all.

Nothing else is touched (other control characters, huge strings: Postgres stores them), and
nothing is dropped: a turn with a NUL in its text is recorded with a U+FFFD where the NUL was.
The embedded database (SQLite would store both) gets the same replaced text, so tests in
embedded mode see what production stores.
"""

from __future__ import annotations

import re
from typing import Any, Final

REPLACEMENT: Final = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# How a NUL appears in a JSON text (surrogates need the slower parser: see `frame_is_clean`).
_NUL_ESCAPE_STR: Final = "\\u0000"
_NUL_ESCAPE_BYTES: Final = b"\\u0000"


def text_storable(value: str) -> str:
    """`value` with each character Postgres cannot store replaced by U+FFFD."""
    return _UNSTORABLE.sub(REPLACEMENT, value)


def json_storable(value: Any) -> Any:
    """Every string in a parsed JSON value (dict values, list items) made storable: a server
    event here, the extraction's model output in extraction.schema.profile_parse."""
    if isinstance(value, str):
        return text_storable(value)
    if isinstance(value, dict):
        return {key: json_storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_storable(item) for item in value]
    return value


def frame_is_clean(raw: str | bytes) -> bool:
    """True when a frame that orjson parsed holds no unstorable character, so the walk of
    `json_storable` can be skipped (almost every frame): orjson refuses lone surrogates and
    raw control characters, so only a `\\u0000` escape can bring one in."""
    if isinstance(raw, bytes):
        return _NUL_ESCAPE_BYTES not in raw
    return _NUL_ESCAPE_STR not in raw
