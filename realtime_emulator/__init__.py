"""An offline emulator of OpenAI's Realtime (WebRTC, sideband) and Responses APIs.

A standalone asyncio process (aiohttp + aiortc) that imports nothing from Django. Start it with
`python -m realtime_emulator --port 8765`; `docs/emulator.md` describes the endpoints, the
control API (`/_emulator/...`) and the deterministic rules the assistant follows.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "1.0.0"
