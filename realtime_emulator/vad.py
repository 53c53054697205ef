"""An energy voice-activity detector over PCM frames: pure state, no I/O.

Speech starts after `min_speech_ms` of frames louder than `threshold_rms` and stops after
`silence_ms` of quieter frames, like server VAD's `silence_duration_ms`. Times are positions in
the received audio stream, in milliseconds, as the Realtime API reports them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

DEFAULT_THRESHOLD_RMS = 1000.0  # about -30 dBFS: far above silence and a quiet room's noise
_STRIDE = 8  # samples skipped between two energy reads; frames are 10-20 ms, plenty of samples


def rms_s16(pcm: bytes | memoryview) -> float:
    """Root mean square of signed 16-bit native-endian samples (every `_STRIDE`th one)."""
    view = memoryview(pcm).cast("B").cast("h")
    sampled = view[::_STRIDE]
    n = len(sampled)
    if n == 0:
        return 0.0
    return math.sqrt(sum(x * x for x in sampled) / n)


@dataclass(frozen=True)
class VadEvent:
    kind: Literal["started", "stopped"]
    audio_ms: int  # audio_start_ms (prefix padding included) or audio_end_ms (silence included)
    speech_ms: int = 0  # for "stopped": duration of the loud part


class EnergyVad:
    def __init__(
        self,
        *,
        threshold_rms: float = DEFAULT_THRESHOLD_RMS,
        min_speech_ms: int = 60,
        silence_ms: int = 200,
        prefix_padding_ms: int = 300,
    ) -> None:
        self.threshold_rms = threshold_rms
        self.min_speech_ms = min_speech_ms
        self.silence_ms = silence_ms
        self.prefix_padding_ms = prefix_padding_ms
        self.position_ms = 0.0
        self.active = False
        self._loud_run_ms = 0.0
        self._loud_run_start = 0.0
        self._speech_start = 0.0
        self._last_loud_end = 0.0

    def feed(self, pcm: bytes | memoryview, *, duration_ms: float) -> VadEvent | None:
        """Account one frame of `duration_ms`; return the transition it causes, if any."""
        loud = rms_s16(pcm) > self.threshold_rms
        start = self.position_ms
        end = start + duration_ms
        self.position_ms = end
        if not self.active:
            if not loud:
                self._loud_run_ms = 0.0
                return None
            if self._loud_run_ms == 0.0:
                self._loud_run_start = start
            self._loud_run_ms += duration_ms
            if self._loud_run_ms < self.min_speech_ms:
                return None
            self.active = True
            self._speech_start = self._loud_run_start
            self._last_loud_end = end
            self._loud_run_ms = 0.0
            audio_start = max(0, round(self._speech_start - self.prefix_padding_ms))
            return VadEvent("started", audio_start)
        if loud:
            self._last_loud_end = end
            return None
        if end - self._last_loud_end < self.silence_ms:
            return None
        self.active = False
        speech = round(self._last_loud_end - self._speech_start)
        return VadEvent("stopped", round(end), speech)
