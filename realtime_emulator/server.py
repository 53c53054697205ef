"""The aiohttp application: routes, CORS for the browser page, OpenAI error envelopes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from . import control, http_api
from .config import ServerConfig
from .errors import ApiError
from .ids import new_hex_id
from .live_api import add_live_routes
from .live_control import add_live_control_routes
from .state import Registry
from .webrtc import drain_closing, include_loopback_candidates, quiet_peer_gone_errors

log = logging.getLogger(__name__)

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_CORS = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, OpenAI-Beta, X-Request-Id",
    "Access-Control-Expose-Headers": "Location, X-Request-Id",
    "Access-Control-Max-Age": "600",
}


def _cors_headers(request: web.Request) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": request.headers.get("Origin", "*"),
        "Vary": "Origin",
        **_CORS,
    }


@web.middleware
async def cors_and_errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Preflight answers, CORS headers on every answer, `ApiError` -> OpenAI's envelope."""
    if request.method == "OPTIONS":
        return web.Response(status=204, headers=_cors_headers(request))
    if request.path.startswith("/_emulator/") and request.remote not in _LOOPBACK:
        response: web.StreamResponse = ApiError(
            "The control API answers on loopback only.", status=403, code="forbidden"
        ).http_response()
    else:
        try:
            response = await handler(request)
        except ApiError as error:
            response = error.http_response()
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = ApiError(exc.reason, status=exc.status, code=None).http_response()
    if not response.prepared:
        response.headers.update(_cors_headers(request))
        response.headers.setdefault("x-request-id", new_hex_id("req"))
    return response


def build_app(config: ServerConfig) -> web.Application:
    include_loopback_candidates()
    app = web.Application(middlewares=[cors_and_errors], client_max_size=16 * 1024 * 1024)
    app[http_api.REGISTRY] = Registry(config)
    http_api.add_routes(app)
    add_live_routes(app)
    control.add_routes(app)
    add_live_control_routes(app)

    async def on_startup(app: web.Application) -> None:
        quiet_peer_gone_errors(asyncio.get_running_loop())

    app.on_startup.append(on_startup)

    async def lag_probe(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(app[http_api.REGISTRY].loop_lag.run())
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    app.cleanup_ctx.append(lag_probe)

    async def on_shutdown(app: web.Application) -> None:
        for call in list(app[http_api.REGISTRY].calls.values()):
            call.end("server_shutdown", code=1001)
        for session in list(app[http_api.REGISTRY].live_sessions.values()):
            session.close("connection_lost")
        await drain_closing()

    app.on_shutdown.append(on_shutdown)
    return app
