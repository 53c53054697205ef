"""The deterministic assistant: what it says, and how a spoken turn is transcribed.

Other engineers' tests rely on these rules; `docs/emulator.md` states them.
"""

from __future__ import annotations

import re

HEARD_WITHOUT_TRANSCRIPT = "I heard you."
NOTHING_SAID = "Hello!"
_WORDS_PER_DELTA = 2
_TOKEN = re.compile(r"\s*\S+")


def marker_line(instructions: str | None) -> str | None:
    """The first line of `instructions` starting with `Marker:` (leading blanks ignored)."""
    for line in (instructions or "").splitlines():
        stripped = line.strip()
        if stripped.startswith("Marker:"):
            return stripped
    return None


def reply_text(user_text: str | None, *, heard_audio: bool, instructions: str | None) -> str:
    """`You said: "<user text>".`, or `I heard you.` for an audio turn without a transcript,
    followed by ` (<Marker: line>)` when the instructions carry a `Marker:` line."""
    if user_text is not None:
        reply = f'You said: "{user_text}".'
    elif heard_audio:
        reply = HEARD_WITHOUT_TRANSCRIPT
    else:
        reply = NOTHING_SAID
    marker = marker_line(instructions)
    if marker is not None:
        reply += f" ({marker})"
    return reply


def split_deltas(text: str, words_per_delta: int = _WORDS_PER_DELTA) -> list[str]:
    """Chunks of a few words, leading spaces kept, whose concatenation is exactly `text`."""
    tokens = _TOKEN.findall(text)
    if not tokens:
        return [text] if text else []
    chunks = [
        "".join(tokens[i : i + words_per_delta]) for i in range(0, len(tokens), words_per_delta)
    ]
    tail = text[sum(len(c) for c in chunks) :]
    if tail:
        chunks[-1] += tail
    return chunks


def spoken_transcript(turn_number: int, speech_ms: int) -> str:
    """Transcript of a real (WebRTC) spoken turn: `Spoken turn <n>, about <s> second(s).`

    `n` counts the call's VAD-detected turns from 1; `s` is the loud part's duration rounded to
    whole seconds, at least 1.
    """
    seconds = max(1, round(speech_ms / 1000))
    unit = "second" if seconds == 1 else "seconds"
    return f"Spoken turn {turn_number}, about {seconds} {unit}."


def estimate_tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4) if text else 0


def speech_ms_for(text: str) -> int:
    """How long a simulated speaker takes to say `text` (for `audio_end_ms`, usage)."""
    return max(600, 350 * len(text.split()))
