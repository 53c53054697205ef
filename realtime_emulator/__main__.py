"""`python -m realtime_emulator --host 127.0.0.1 --port 8765`"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import resource

from aiohttp import web

from .config import ServerConfig, Settings
from .server import build_app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m realtime_emulator",
        description="Offline emulator of OpenAI's Realtime (WebRTC + sideband) and Responses APIs.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--api-key",
        default=os.environ.get("EMULATOR_API_KEY", "sk-emulator"),
        help="the only accepted API key (default: $EMULATOR_API_KEY or sk-emulator)",
    )
    parser.add_argument("--max-session-seconds", type=float, default=3600.0)
    parser.add_argument("--pace", type=float, default=0.03, help="seconds between deltas")
    parser.add_argument(
        "--transcription-delay",
        type=float,
        default=0.1,
        help="seconds after the response starts before a spoken turn's transcript completes",
    )
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    if args.max_session_seconds <= 0 or args.pace < 0 or args.transcription_delay < 0:
        parser.error("durations must be positive (max session) or non-negative (pace, delay)")
    return args


def _raise_fd_limit() -> None:
    """A thousand sidebands need more descriptors than the usual soft limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _raise_fd_limit()
    config = ServerConfig(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        defaults=Settings(
            pace_s=args.pace,
            transcription_delay_s=args.transcription_delay,
            max_session_s=args.max_session_seconds,
        ),
    )
    web.run_app(
        build_app(config),
        host=args.host,
        port=args.port,
        print=None,
        access_log=None,
        shutdown_timeout=5,
    )


if __name__ == "__main__":
    main()
