"""A call's conversation: ordered items in the API's shape, and client item validation."""

from __future__ import annotations

from typing import Any

from .errors import ApiError, invalid_type, invalid_value, missing_parameter
from .ids import new_id

_PART_TYPES = {
    "user": ("input_text", "input_audio", "input_image"),
    "system": ("input_text",),
    "assistant": ("output_text", "output_audio"),
}


def _normalise_part(part: Any, role: str, param: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise invalid_type(param, "an object", part)
    kind = part.get("type")
    allowed = _PART_TYPES[role]
    if kind not in allowed:
        raise invalid_value(f"{param}.type", kind, list(allowed))
    if kind in ("input_text", "output_text"):
        text = part.get("text")
        if not isinstance(text, str):
            raise invalid_type(f"{param}.text", "a string", text)
        return {"type": kind, "text": text}
    if kind in ("input_audio", "output_audio"):
        transcript = part.get("transcript")
        if transcript is not None and not isinstance(transcript, str):
            raise invalid_type(f"{param}.transcript", "a string", transcript)
        return {"type": kind, "transcript": transcript}
    return {"type": kind, "image_url": part.get("image_url"), "detail": part.get("detail", "auto")}


def normalise_item(raw: Any, param: str = "item") -> dict[str, Any]:
    """A client-supplied item (conversation.item.create) in the server's shape, with an id."""
    if not isinstance(raw, dict):
        raise invalid_type(param, "an object", raw)
    kind = raw.get("type")
    item_id = raw.get("id") or new_id("item")
    if not isinstance(item_id, str):
        raise invalid_type(f"{param}.id", "a string", item_id)
    if kind == "message":
        role = raw.get("role")
        if role not in _PART_TYPES:
            raise invalid_value(f"{param}.role", role, list(_PART_TYPES))
        content = raw.get("content")
        if not isinstance(content, list):
            raise invalid_type(f"{param}.content", "an array", content)
        parts = [_normalise_part(p, role, f"{param}.content[{i}]") for i, p in enumerate(content)]
        return {
            "id": item_id,
            "type": "message",
            "status": "completed",
            "role": role,
            "content": parts,
        }
    if kind == "function_call":
        for key in ("call_id", "name", "arguments"):
            if not isinstance(raw.get(key), str):
                raise missing_parameter(f"{param}.{key}")
        return {
            "id": item_id,
            "type": "function_call",
            "status": "completed",
            "call_id": raw["call_id"],
            "name": raw["name"],
            "arguments": raw["arguments"],
        }
    if kind == "function_call_output":
        for key in ("call_id", "output"):
            if not isinstance(raw.get(key), str):
                raise missing_parameter(f"{param}.{key}")
        return {
            "id": item_id,
            "type": "function_call_output",
            "call_id": raw["call_id"],
            "output": raw["output"],
        }
    raise invalid_value(f"{param}.type", kind, ["message", "function_call", "function_call_output"])


def message_text(item: dict[str, Any]) -> str | None:
    """The text of a message item: its text parts, else its audio transcripts."""
    texts = [
        p.get("text") if p["type"] in ("input_text", "output_text") else p.get("transcript")
        for p in item.get("content", [])
    ]
    present = [t for t in texts if t]
    return " ".join(present) if present else None


class Conversation:
    """Items in conversation order; `previous_item_id` is the item before, or None at the root."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.by_id: dict[str, dict[str, Any]] = {}

    def last_id(self) -> str | None:
        return self.items[-1]["id"] if self.items else None

    def previous_id(self, item_id: str) -> str | None:
        for index, item in enumerate(self.items):
            if item["id"] == item_id:
                return self.items[index - 1]["id"] if index > 0 else None
        return None

    def insert(
        self, item: dict[str, Any], previous_item_id: str | None = None, *, at_end: bool = True
    ) -> str | None:
        """Insert `item` after `previous_item_id` ("root" = first), or at the end.

        Returns the id of the item now before it.
        """
        if item["id"] in self.by_id:
            raise ApiError(
                f"Item with id '{item['id']}' already exists.",
                param="item.id",
                code="item_already_exists",
            )
        if at_end:
            index = len(self.items)
        elif previous_item_id == "root":
            index = 0
        else:
            positions = [i for i, it in enumerate(self.items) if it["id"] == previous_item_id]
            if not positions:
                raise ApiError(
                    f"Previous item with item_id '{previous_item_id}' not found.",
                    param="previous_item_id",
                    code="previous_item_not_found",
                )
            index = positions[0] + 1
        self.items.insert(index, item)
        self.by_id[item["id"]] = item
        return self.items[index - 1]["id"] if index > 0 else None

    def delete(self, item_id: str) -> bool:
        item = self.by_id.pop(item_id, None)
        if item is None:
            return False
        self.items.remove(item)
        return True

    def last_user_message(self) -> dict[str, Any] | None:
        for item in reversed(self.items):
            if item.get("type") == "message" and item.get("role") == "user":
                return item
        return None
