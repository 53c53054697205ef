"""Validation of emulator events against the official SDK's own types."""

from __future__ import annotations

from typing import Any

from openai import BaseModel
from openai.types.live import ConnectServerEvent
from openai.types.realtime import RealtimeServerEvent
from pydantic import TypeAdapter

SERVER_EVENT = TypeAdapter(RealtimeServerEvent)
# Fields OpenAI sends that the SDK does not declare (all seen in the recorded sessions).
KNOWN_EXTRAS = {"obfuscation"}
KNOWN_SESSION_EXTRAS = {"object", "id", "expires_at"}


def problems(model: Any, path: str = "") -> list[str]:
    """Required fields the payload left out, and fields the SDK does not know, recursively."""
    found: list[str] = []
    if isinstance(model, BaseModel):
        for name, field in type(model).model_fields.items():
            if field.is_required() and name not in model.model_fields_set:
                found.append(f"{path}.{name} missing")
            found.extend(problems(getattr(model, name), f"{path}.{name}"))
        allowed = KNOWN_EXTRAS | (KNOWN_SESSION_EXTRAS if path.endswith(".session") else set())
        found.extend(
            f"{path}.{key} unknown" for key in (model.model_extra or {}) if key not in allowed
        )
    elif isinstance(model, list):
        for index, value in enumerate(model):
            found.extend(problems(value, f"{path}[{index}]"))
    return found


def validate_server_event(event: dict[str, Any]) -> Any:
    """Parse `event` with the SDK's server-event union; fail on any gap or unknown field."""
    model = SERVER_EVENT.validate_python(event)
    assert model.type == event["type"], f"{event['type']} parsed as {type(model).__name__}"
    found = problems(model, event["type"])
    assert not found, found
    return model


LIVE_SERVER_EVENT = TypeAdapter(ConnectServerEvent)


def validate_live_event(event: dict[str, Any]) -> Any:
    """Parse a Live event with the SDK's sideband union (a superset of the data channel's);
    fail on a missing required field or a field the SDK does not declare."""
    model = LIVE_SERVER_EVENT.validate_python(event)
    assert model.type == event["type"], f"{event['type']} parsed as {type(model).__name__}"
    found = [p for p in problems(model, event["type"]) if not p.endswith(".obfuscation unknown")]
    assert not found, found
    return model
