"""Process-wide settings: the CLI's values, changed at run time through `/_emulator/settings`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from .errors import ApiError, invalid_type, invalid_value

# "never": the transcription is lost upstream: no event, and the item's transcript stays null.
TranscriptionMode = Literal["completed", "failed", "never"]
TRANSCRIPTION_MODES: tuple[TranscriptionMode, ...] = ("completed", "failed", "never")
# What a browser's WebRTC connection closing does to its call: "unnoticed" (what public reports
# say OpenAI does, openai-agents-js #684: the call and its sidebands go on, and no event tells a
# sideband) or "ends_call" (the call ends: `end_reason` webrtc_disconnected).
BrowserGone = Literal["unnoticed", "ends_call"]
BROWSER_GONE_MODES: tuple[BrowserGone, ...] = ("unnoticed", "ends_call")


@dataclass
class Settings:
    """Knobs every call reads when it needs them (pace and transcription at each turn).

    `max_session_s` is read when a call starts: it fixes that call's deadline;
    `live_max_session_s` does the same for a Live session (120 minutes in OpenAI's recordings).
    """

    pace_s: float = 0.03
    transcription_delay_s: float = 0.1
    max_session_s: float = 3600.0
    transcription: TranscriptionMode = "completed"
    live_max_session_s: float = 7200.0
    browser_gone: BrowserGone = "unnoticed"

    def as_dict(self) -> dict[str, Any]:
        return {
            "pace_s": self.pace_s,
            "transcription_delay_s": self.transcription_delay_s,
            "max_session_s": self.max_session_s,
            "transcription": self.transcription,
            "live_max_session_s": self.live_max_session_s,
            "browser_gone": self.browser_gone,
        }

    def copy(self) -> Settings:
        return dataclasses.replace(self)

    def restore(self, other: Settings) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(other, field.name))

    def update(self, body: dict[str, Any]) -> None:
        """Apply a `/_emulator/settings` body; all-or-nothing on a bad value."""
        staged = self.copy()
        for key, value in body.items():
            if key in ("pace_s", "transcription_delay_s", "max_session_s", "live_max_session_s"):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise invalid_type(key, "a number", value)
                if value < 0 or (key.endswith("max_session_s") and value <= 0):
                    raise invalid_value(key, value)
                setattr(staged, key, float(value))
            elif key == "transcription":
                if value not in TRANSCRIPTION_MODES:
                    raise invalid_value(key, value, list(TRANSCRIPTION_MODES))
                staged.transcription = value
            elif key == "browser_gone":
                if value not in BROWSER_GONE_MODES:
                    raise invalid_value(key, value, list(BROWSER_GONE_MODES))
                staged.browser_gone = value
            else:
                raise ApiError(f"Unknown setting: '{key}'.", param=key, code="unknown_parameter")
        self.restore(staged)


@dataclass(frozen=True)
class ServerConfig:
    host: str
    port: int
    api_key: str
    defaults: Settings
