"""Synthetic calls: real calls in the engine, without media, that play a scripted conversation.

Each is a `Call` (same events, same sideband endpoint and auth) plus, while it plays, one task.
No threads, no peer connection, no audio: a thousand fit in one process.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from .engine import Call
from .errors import ApiError, invalid_type, invalid_value, unknown_parameter
from .session import apply_session_patch
from .state import Registry

Mode = Literal["text", "audio", "mixed"]
Start = Literal["on_sideband", "now", "manual"]
MAX_SYNTHETIC_CALLS = 5000
_KEYS = {
    "count",
    "model",
    "voice",
    "instructions",
    "transcription",
    "turns",
    "turn_interval_s",
    "delta_interval_s",
    "mode",
    "start",
    "secret_ttl_s",
}


@dataclass(frozen=True)
class Script:
    turns: int
    turn_interval_s: float
    mode: Mode

    def user_text(self, turn: int, call_id: str) -> str:
        return f"Synthetic turn {turn} of call {call_id}"

    def is_audio(self, turn: int) -> bool:
        return self.mode == "audio" or (self.mode == "mixed" and turn % 2 == 0)

    async def play(self, call: Call) -> None:
        """Turn k starts at (k-1) * turn_interval_s, once the previous turn is over."""
        loop = asyncio.get_running_loop()
        base = loop.time()
        for turn in range(1, self.turns + 1):
            await asyncio.sleep(max(0.0, base + (turn - 1) * self.turn_interval_s - loop.time()))
            await call.wait_idle()
            if call.status == "ended":
                return
            text = self.user_text(turn, call.id)
            if self.is_audio(turn):
                call.user_audio(text)
            else:
                call.user_text(text)


def _number(body: dict[str, Any], key: str, default: float, low: float) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_type(key, "a number", value)
    if value < low:
        raise invalid_value(key, value)
    return float(value)


def _integer(body: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_type(key, "an integer", value)
    if not low <= value <= high:
        raise invalid_value(key, value)
    return value


def create_synthetic_calls(reg: Registry, body: dict[str, Any]) -> list[dict[str, Any]]:
    for key in body:
        if key not in _KEYS:
            raise unknown_parameter(key)
    if "count" not in body:
        raise ApiError(
            "Missing required parameter: 'count'.", param="count", code="missing_required_parameter"
        )
    count = _integer(body, "count", 1, 1, MAX_SYNTHETIC_CALLS)
    turns = _integer(body, "turns", 3, 0, 1000)
    turn_interval = _number(body, "turn_interval_s", 3.0, 0.0)
    delta_interval = _number(body, "delta_interval_s", 0.05, 0.0)
    ttl = _integer(body, "secret_ttl_s", 600, 1, 7200)
    mode = body.get("mode", "mixed")
    if mode not in ("text", "audio", "mixed"):
        raise invalid_value("mode", mode, ["text", "audio", "mixed"])
    start = body.get("start", "on_sideband")
    if start not in ("on_sideband", "now", "manual"):
        raise invalid_value("start", start, ["on_sideband", "now", "manual"])
    transcription = body.get("transcription", True)
    if not isinstance(transcription, bool):
        raise invalid_type("transcription", "a boolean", transcription)
    patch: dict[str, Any] = {
        "type": "realtime",
        "audio": {
            "input": {"transcription": {"model": "gpt-realtime-whisper"} if transcription else None}
        },
    }
    for key in ("model", "instructions"):
        if key in body:
            patch[key] = body[key]
    if "voice" in body:
        patch["audio"]["output"] = {"voice": body["voice"]}
    session = apply_session_patch(reg.new_session(), patch)
    script = Script(turns=turns, turn_interval_s=turn_interval, mode=mode)
    created = []
    for _ in range(count):
        secret = reg.create_secret(session, ttl)
        call = reg.create_call(session, secret=secret.value, kind="synthetic")
        call.pace_override = delta_interval
        if turns > 0:
            reg.scripts[call.id] = script
            if start == "now":
                start_script(reg, call)
            elif start == "on_sideband":
                call.on_sideband_join = lambda c: start_script(reg, c)
        created.append(
            {
                "call_id": call.id,
                "client_secret": secret.value,
                "expires_at": int(secret.expires_at),
            }
        )
    return created


def start_script(reg: Registry, call: Call) -> bool:
    """Start the call's script (once); False when it has none left to start."""
    script = reg.scripts.pop(call.id, None)
    if script is None or call.status == "ended":
        return False
    call.on_sideband_join = None
    call.spawn(script.play(call))
    return True
