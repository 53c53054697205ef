"""The process's registry: client secrets, calls, fault injections."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from .config import ServerConfig
from .engine import Call
from .errors import ApiError
from .ids import new_call_id, new_client_secret, new_id
from .live_session import LiveSession
from .session import default_session

FaultEndpoint = Literal["client_secrets", "responses", "calls", "hangup", "live_sessions"]
FAULT_ENDPOINTS: tuple[FaultEndpoint, ...] = (
    "client_secrets",
    "responses",
    "calls",
    "hangup",
    "live_sessions",  # POST /v1/live/sessions and its fork
)
FAULT_STATUSES = (429, 500, 502, 503)
MAX_ENDED_CALLS = 10_000
PRUNE_EVERY = 1000


@dataclass
class ClientSecret:
    value: str
    expires_at: float  # unix time
    session: dict[str, Any]
    calls: list[str] = field(default_factory=list)

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at


@dataclass
class Fault:
    status: int
    remaining: int
    retry_after_s: float = 1.0


def fault_error(fault: Fault) -> ApiError:
    """OpenAI's envelope for an injected failure."""
    if fault.status == 429:
        return ApiError(
            "Rate limit reached for requests. Please try again in 1s. (emulator fault)",
            status=429,
            type="requests",
            code="rate_limit_exceeded",
            headers={"Retry-After": f"{fault.retry_after_s:g}"},
        )
    if fault.status == 503:
        return ApiError(
            "The server is overloaded or not ready yet. (emulator fault)",
            status=503,
            type="server_error",
            code="service_unavailable",
            headers={"Retry-After": f"{fault.retry_after_s:g}"},
        )
    if fault.status == 502:
        return ApiError(
            "Bad gateway. (emulator fault)", status=502, type="server_error", code="bad_gateway"
        )
    return ApiError(
        "The server had an error while processing your request. Sorry about that! (emulator fault)",
        status=500,
        type="server_error",
        code="server_error",
    )


class LoopLag:
    """Samples how late a periodic timer fires: the event loop's scheduling delay."""

    PERIOD_S = 0.05

    def __init__(self) -> None:
        self.samples: deque[tuple[float, float]] = deque(maxlen=20_000)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self.PERIOD_S
            await asyncio.sleep(self.PERIOD_S)
            self.samples.append((expected, (loop.time() - expected) * 1000))

    def summary(self, window_s: float) -> dict[str, float | int]:
        since = asyncio.get_running_loop().time() - window_s
        lags = sorted(lag for t, lag in self.samples if t >= since)
        if not lags:
            return {"samples": 0}

        def pct(p: float) -> float:
            return round(lags[min(len(lags) - 1, math.ceil(p / 100 * len(lags)) - 1)], 1)

        return {"samples": len(lags), "p50": pct(50), "p99": pct(99), "max": round(lags[-1], 1)}


class Registry:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.settings = config.defaults.copy()
        self.secrets: dict[str, ClientSecret] = {}
        self.calls: dict[str, Call] = {}
        # Live sessions by id; ended ones stay (a stored session can still be forked).
        self.live_sessions: dict[str, LiveSession] = {}
        self.faults: dict[str, Fault] = {}
        self.scripts: dict[str, Any] = {}  # call id -> synthetic.Script not yet started
        self.loop_lag = LoopLag()
        self._creations = 0

    # -- faults --------------------------------------------------------------------------------

    def take_fault(self, endpoint: FaultEndpoint) -> ApiError | None:
        fault = self.faults.get(endpoint)
        if fault is None or fault.remaining <= 0:
            return None
        fault.remaining -= 1
        if fault.remaining == 0:
            del self.faults[endpoint]
        return fault_error(fault)

    def reset(self) -> None:
        """Clear faults and knobs; calls stay (they share the one `Settings` object)."""
        self.faults.clear()
        self.settings.restore(self.config.defaults)
        for call in self.calls.values():
            call.sidebands_blocked = False
        for session in self.live_sessions.values():
            session.sidebands_blocked = False

    # -- secrets and calls ---------------------------------------------------------------------

    def is_api_key(self, key: str | None) -> bool:
        return key is not None and key == self.config.api_key

    def _prune(self) -> None:
        """Bound memory on long runs: forget secrets expired for an hour and the oldest ended
        calls beyond MAX_ENDED_CALLS (amortised: runs every PRUNE_EVERY creations)."""
        self._creations += 1
        if self._creations % PRUNE_EVERY:
            return
        cutoff = time.time() - 3600
        for value in [v for v, s in self.secrets.items() if s.expires_at < cutoff]:
            del self.secrets[value]
        ended = [c for c, call in self.calls.items() if call.status == "ended"]
        for call_id in ended[: max(0, len(ended) - MAX_ENDED_CALLS)]:
            del self.calls[call_id]
            self.scripts.pop(call_id, None)
        ended = [i for i, s in self.live_sessions.items() if s.status == "ended"]
        for session_id in ended[: max(0, len(ended) - MAX_ENDED_CALLS)]:
            del self.live_sessions[session_id]

    def create_secret(self, session: dict[str, Any], ttl_s: float) -> ClientSecret:
        self._prune()
        value = new_client_secret()
        secret = ClientSecret(value=value, expires_at=time.time() + ttl_s, session=session)
        self.secrets[value] = secret
        return secret

    def new_session(self) -> dict[str, Any]:
        expires_at = int(time.time() + self.settings.max_session_s)
        return default_session(session_id=new_id("sess"), expires_at=expires_at)

    def prune(self) -> None:
        """Count one creation; every PRUNE_EVERY, forget what is long over (see `_prune`)."""
        self._prune()

    def create_call(
        self, session: dict[str, Any], *, secret: str | None, kind: Literal["webrtc", "synthetic"]
    ) -> Call:
        self._prune()
        max_s = self.settings.max_session_s
        session = {**session, "id": new_id("sess"), "expires_at": int(time.time() + max_s)}
        call = Call(
            call_id=new_call_id(),
            session=session,
            settings=self.settings,
            secret=secret,
            kind=kind,
            max_session_s=max_s,
        )
        self.calls[call.id] = call
        if secret is not None and secret in self.secrets:
            self.secrets[secret].calls.append(call.id)
        return call
