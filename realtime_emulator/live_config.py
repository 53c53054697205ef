"""A Live session's configuration: the strict startup object, checked as OpenAI checks it.

`POST /v1/live/sessions` carries `session` (MediaSessionConfig): unknown fields are refused,
`model` is required, `input` seeds the conversation (at most 128 developer, user or assistant
messages, one text part each, 8,192 tokens by default), and `instructions` are fixed after
start. `resolved_session` is the SessionResource that `session.started` reports.
"""

from __future__ import annotations

from typing import Any, Final

from .assistant import estimate_tokens
from .errors import ApiError, invalid_type, invalid_value, missing_parameter, unknown_parameter

LIVE_MODELS: Final = ("gpt-live-1", "gpt-live-1.1")
DEFAULT_VOICE: Final = "marin"
DEFAULT_INSTRUCTIONS: Final = "You are a helpful voice assistant. Keep replies short."
INPUT_MAX_ITEMS: Final = 128
INPUT_MAX_TOKENS: Final = 8192
INSTRUCTIONS_MAX_TOKENS: Final = 16_384
APPEND_MAX_TOKENS: Final = 500  # session.instructions.append / session.commentary.append

_SESSION_FIELDS: Final = frozenset(
    {
        "model",
        "audio",
        "client",
        "delegation",
        "idle_timeout_s",
        "input",
        "instructions",
        "safety_identifier",
        "store",
        "triggers",
        "wake_policy",
    }
)
_FORK_FIELDS: Final = frozenset({"client", "delegation", "store"})
_PART_TYPES: Final = {
    "developer": ("input_text",),
    "user": ("input_text",),
    "assistant": ("output_text", "text"),
}
_ITEM_FIELDS: Final = frozenset({"role", "content", "id", "status", "type"})


def _object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid_type(param, "an object", value)
    return value


def checked_input(raw: Any, param: str = "session.input") -> list[dict[str, Any]]:
    """The `input` history, normalised to `{role, content: [{type, text}]}` messages."""
    if not isinstance(raw, list):
        raise invalid_type(param, "an array", raw)
    if len(raw) > INPUT_MAX_ITEMS:
        raise ApiError(
            f"Invalid '{param}': array too long. Expected at most {INPUT_MAX_ITEMS} items, "
            f"but got {len(raw)} instead.",
            param=param,
            code="array_above_max_length",
        )
    items: list[dict[str, Any]] = []
    tokens = 0
    for index, value in enumerate(raw):
        where = f"{param}[{index}]"
        item = _object(value, where)
        for key in item:
            if key not in _ITEM_FIELDS:
                raise unknown_parameter(f"{where}.{key}")
        if item.get("type", "message") != "message":
            raise invalid_value(f"{where}.type", item.get("type"), ["message"])
        role = item.get("role")
        if role not in _PART_TYPES:
            raise invalid_value(f"{where}.role", role, list(_PART_TYPES))
        content = item.get("content")
        if not isinstance(content, list) or len(content) != 1:
            raise ApiError(
                f"Invalid '{where}.content': expected exactly one text part.",
                param=f"{where}.content",
                code="invalid_value",
            )
        part = _object(content[0], f"{where}.content[0]")
        part_type = part.get("type", _PART_TYPES[role][0])
        if part_type not in _PART_TYPES[role]:
            raise invalid_value(f"{where}.content[0].type", part_type, list(_PART_TYPES[role]))
        text = part.get("text")
        if not isinstance(text, str):
            raise invalid_type(f"{where}.content[0].text", "a string", text)
        tokens += estimate_tokens(text)
        items.append({"role": role, "content": [{"type": part_type, "text": text}]})
    if tokens > INPUT_MAX_TOKENS:
        raise ApiError(
            f"Invalid '{param}': the messages render to about {tokens} tokens, above the limit "
            f"of {INPUT_MAX_TOKENS}.",
            param=param,
            code="input_too_long",
        )
    return items


def checked_session(raw: Any) -> dict[str, Any]:
    """Validate a create request's `session`; the startup config, unknown fields refused."""
    session = _object(raw, "session")
    for key in session:
        if key not in _SESSION_FIELDS:
            raise unknown_parameter(f"session.{key}")
    model = session.get("model")
    if model is None:
        raise missing_parameter("session.model")
    if model not in LIVE_MODELS:
        raise invalid_value("session.model", model, list(LIVE_MODELS))
    instructions = session.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise invalid_type("session.instructions", "a string", instructions)
        if estimate_tokens(instructions) > INSTRUCTIONS_MAX_TOKENS:
            raise ApiError(
                "Invalid 'session.instructions': above the limit of "
                f"{INSTRUCTIONS_MAX_TOKENS} tokens.",
                param="session.instructions",
                code="string_above_max_length",
            )
    store = session.get("store")
    if store is not None and not isinstance(store, bool):
        raise invalid_type("session.store", "a boolean", store)
    audio = _object(session.get("audio", {}), "session.audio")
    output = _object(audio.get("output", {}), "session.audio.output")
    voice = output.get("voice", DEFAULT_VOICE)
    if not isinstance(voice, str | dict):
        raise invalid_type("session.audio.output.voice", "a string or an object", voice)
    checked = dict(session)
    if "input" in session:
        checked["input"] = checked_input(session["input"])
    return checked


def checked_fork_overrides(raw: Any) -> dict[str, Any]:
    session = _object(raw if raw is not None else {}, "session")
    for key in session:
        if key not in _FORK_FIELDS:
            raise unknown_parameter(f"session.{key}")
    store = session.get("store")
    if store is not None and not isinstance(store, bool):
        raise invalid_type("session.store", "a boolean", store)
    return dict(session)


def resolved_session(config: dict[str, Any], *, session_id: str, expires_at: int) -> dict[str, Any]:
    """The SessionResource of `session.started` / `.updated` / `.closed`."""
    voice = ((config.get("audio") or {}).get("output") or {}).get("voice", DEFAULT_VOICE)
    resource: dict[str, Any] = {
        "id": session_id,
        "expires_at": expires_at,
        "model": config["model"],
        "instructions": config.get("instructions") or DEFAULT_INSTRUCTIONS,
        "audio": {"output": {"voice": voice}},
        "status": "active",
        "input": config.get("input", []),
    }
    for key in ("delegation", "client", "store", "safety_identifier", "idle_timeout_s"):
        if key in config:
            resource[key] = config[key]
    return resource


def transport_offer(raw: Any) -> str:
    """The SDP offer of `transport: {type: "webrtc", sdp}`."""
    transport = _object(raw, "transport")
    if transport.get("type") != "webrtc":
        raise invalid_value("transport.type", transport.get("type"), ["webrtc"])
    sdp = transport.get("sdp")
    if not isinstance(sdp, str):
        raise missing_parameter("transport.sdp")
    if "v=0" not in sdp or "m=" not in sdp:
        raise ApiError("Invalid SDP offer.", param="transport.sdp", code="invalid_offer")
    return sdp
