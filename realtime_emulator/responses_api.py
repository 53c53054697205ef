"""`POST /v1/responses`: plain text (the assistant's reply rule) and strict structured outputs
(`text.format` = `json_schema`) filled by the rule-based extractor."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from .assistant import estimate_tokens, reply_text
from .errors import (
    ApiError,
    invalid_type,
    invalid_value,
    missing_parameter,
)
from .extractor import extract_facts
from .http_api import api_key_check, json_response, read_json
from .ids import new_hex_id
from .schema_fill import SchemaFiller, fill_schema

_ROLES = ("user", "assistant", "system", "developer")


def input_messages(raw: Any) -> list[tuple[str, str]]:
    """`input` (a string, or messages with string or `input_text` parts) as (role, text)."""
    if isinstance(raw, str):
        return [("user", raw)]
    if not isinstance(raw, list):
        raise invalid_type("input", "a string or an array", raw)
    messages = []
    for index, item in enumerate(raw):
        param = f"input[{index}]"
        if not isinstance(item, dict):
            raise invalid_type(param, "an object", item)
        if item.get("type", "message") != "message":
            continue  # function calls and outputs carry no user statements
        role = item.get("role")
        if role not in _ROLES:
            raise invalid_value(f"{param}.role", role, list(_ROLES))
        content = item.get("content")
        if isinstance(content, str):
            messages.append((role, content))
            continue
        if not isinstance(content, list):
            raise invalid_type(f"{param}.content", "a string or an array", content)
        texts = []
        for part_index, part in enumerate(content):
            if not isinstance(part, dict):
                raise invalid_type(f"{param}.content[{part_index}]", "an object", part)
            if part.get("type") in ("input_text", "output_text", "text"):
                text = part.get("text")
                if not isinstance(text, str):
                    raise invalid_type(f"{param}.content[{part_index}].text", "a string", text)
                texts.append(text)
        messages.append((role, "\n".join(texts)))
    return messages


def _format(body: dict[str, Any]) -> dict[str, Any]:
    text = body.get("text")
    if text is None:
        return {"type": "text"}
    if not isinstance(text, dict):
        raise invalid_type("text", "an object", text)
    fmt = text.get("format", {"type": "text"})
    if not isinstance(fmt, dict):
        raise invalid_type("text.format", "an object", fmt)
    kind = fmt.get("type")
    if kind not in ("text", "json_schema", "json_object"):
        raise invalid_value("text.format.type", kind, ["text", "json_schema", "json_object"])
    if kind == "json_schema":
        if not isinstance(fmt.get("name"), str) or not fmt["name"]:
            raise missing_parameter("text.format.name")
        if not isinstance(fmt.get("schema"), dict):
            raise missing_parameter("text.format.schema")
        return {
            "type": "json_schema",
            "description": fmt.get("description"),
            "name": fmt["name"],
            "schema": fmt["schema"],
            "strict": bool(fmt.get("strict", False)),
        }
    return {"type": kind}


def _output_text(
    fmt: dict[str, Any], messages: list[tuple[str, str]], instructions: str | None
) -> str:
    if fmt["type"] == "json_schema":
        return json.dumps(fill_schema(fmt["schema"], extract_facts(messages)))
    if fmt["type"] == "json_object":
        filler = SchemaFiller({}, extract_facts(messages))
        facts = {
            key: (fact.value if fact is not None and fact.value else None)
            for key, fact in filler.facts.items()
        }
        return json.dumps(facts)
    user_texts = [text for role, text in messages if role == "user"]
    return reply_text(
        user_texts[-1] if user_texts else None, heard_audio=False, instructions=instructions
    )


async def responses_create(request: web.Request) -> web.Response:
    api_key_check(request, endpoint="responses")
    body = await read_json(request)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise missing_parameter("model")
    if body.get("stream"):
        raise ApiError(
            "Streaming is not supported by the emulator; call without stream=true.",
            param="stream",
            code="unsupported_value",
        )
    if "input" not in body:
        raise missing_parameter("input")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise invalid_type("instructions", "a string", instructions)
    messages = input_messages(body["input"])
    fmt = _format(body)
    text = _output_text(fmt, messages, instructions)
    input_tokens = estimate_tokens(instructions or "") + sum(
        estimate_tokens(t) for _, t in messages
    )
    output_tokens = estimate_tokens(text)
    now = int(time.time())
    return json_response(
        {
            "id": new_hex_id("resp"),
            "object": "response",
            "created_at": now,
            "status": "completed",
            "background": False,
            "completed_at": now,
            "error": None,
            "incomplete_details": None,
            "instructions": instructions,
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": None,
            "model": model,
            "output": [
                {
                    "id": new_hex_id("msg"),
                    "type": "message",
                    "status": "completed",
                    "content": [
                        {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
                    ],
                    "role": "assistant",
                }
            ],
            "parallel_tool_calls": True,
            "previous_response_id": body.get("previous_response_id"),
            "prompt_cache_key": None,
            "reasoning": {"effort": None, "summary": None},
            "safety_identifier": None,
            "service_tier": "default",
            "store": bool(body.get("store", True)),
            "temperature": body.get("temperature", 1.0),
            "text": {"format": fmt, "verbosity": "medium"},
            "tool_choice": "auto",
            "tools": [],
            "top_logprobs": 0,
            "top_p": body.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            },
            "user": None,
            "metadata": body.get("metadata") or {},
        }
    )
