"""`EmulatorServer`: run the emulator as a subprocess on a free port, for tests and benchmarks.

with EmulatorServer(extra_args=["--pace", "0.005"]) as server:
    client = OpenAI(base_url=server.api_base, api_key=server.api_key)
    server.control("POST", "/_emulator/settings", {"transcription": "failed"})
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmulatorError(RuntimeError):
    """A control call answered with an error status (the OpenAI-style body is attached)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"emulator answered {status}: {body}")
        self.status = status
        self.body = body


class EmulatorServer:
    def __init__(
        self,
        *,
        extra_args: list[str] | None = None,
        api_key: str = "sk-emulator-test",
        port: int | None = None,
        startup_timeout_s: float = 20.0,
    ) -> None:
        self.api_key = api_key
        self.port = port or free_port()
        self.extra_args = list(extra_args or [])
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1"

    def start(self) -> EmulatorServer:
        command = [
            sys.executable,
            "-m",
            "realtime_emulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--api-key",
            self.api_key,
            *self.extra_args,
        ]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(_PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        self.process = subprocess.Popen(command, cwd=_PROJECT_ROOT, env=env)  # noqa: S603 - our own module
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the emulator exited with code {self.process.returncode}")
            try:
                if self.control("GET", "/_emulator/health").get("ok"):
                    return self
            except (OSError, EmulatorError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the emulator did not answer on {self.base_url} in time")
            time.sleep(0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def control(self, method: str, path: str, json: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call the control API; returns the JSON answer, raises `EmulatorError` on 4xx/5xx."""
        return self.request(method, path, json)

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        data = None if body is None else _dumps(body)
        request = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as error:
            raw = error.read()
            raise EmulatorError(error.code, _loads(raw)) from None
        return _loads(raw)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _dumps(body: Any) -> bytes:
    return json.dumps(body).encode()


def _loads(raw: bytes) -> Any:
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return {"raw": raw.decode(errors="replace")}
