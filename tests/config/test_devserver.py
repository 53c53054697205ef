"""`make run`'s runner (config.devserver) in its embedded mode: SQLite, in-process transports,
the emulator. Over real HTTP: the page, a session, a registered call whose sideband the
in-process worker owns and whose turns reach the transcript; then Ctrl-C stops everything."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from config.devserver import RESTART_LIMIT, Child, children_check, process_exit_status
from realtime_emulator.testing import free_port
from tests.processes import wait_for

ROOT = Path(__file__).resolve().parent.parent.parent
EMBEDDED_UNSET = ("DATABASE_URL", "REDIS_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL")


def _answers(url: str, process: subprocess.Popen[bytes]) -> bool:
    assert process.poll() is None, "the devserver exited early"
    try:
        urllib.request.urlopen(url, timeout=1).close()
    except (urllib.error.URLError, OSError):
        return False
    return True


def _post(
    opener: urllib.request.OpenerDirector, url: str, body: dict[str, Any], csrf: str = ""
) -> Any:
    headers = {"Content-Type": "application/json"}
    if csrf:
        headers["X-CSRFToken"] = csrf
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    with opener.open(request) as response:
        return json.load(response)


def _attached(opener: urllib.request.OpenerDirector, url: str) -> bool:
    """The session's latest call has a sideband attached (and has not ended)."""
    with opener.open(url) as response:
        calls = json.load(response)["calls"]
    if calls and calls[-1]["attachedAt"] is not None:
        assert calls[-1]["endedAt"] is None, calls[-1]
        return True
    return False


def _turns_completed(
    opener: urllib.request.OpenerDirector, url: str, count: int
) -> list[dict[str, Any]] | None:
    with opener.open(url) as response:
        turns: list[dict[str, Any]] = json.load(response)["turns"]
    if len(turns) >= count and all(t["status"] == "completed" for t in turns):
        return turns
    return None


def _logged(path: Path, text: str, process: subprocess.Popen[bytes]) -> bool:
    assert process.poll() is None, "the devserver exited early"
    return text in path.read_text()


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_make_run_serves_the_page_the_api_and_the_sideband_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    port, emulator_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in EMBEDDED_UNSET}
    env.update(
        PORT=str(port),
        EMULATOR_PORT=str(emulator_port),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        # The emulator's synthetic call has its own secret: join its sideband with the key.
        SIDEBAND_AUTH="api_key",
        # Beat's reconciler runs many times meanwhile: its routine runs must not be logged.
        SIDEBAND_RECONCILE_S="0.5",
    )
    log = (tmp_path / "devserver.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "config.devserver"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(
            lambda: _answers(f"{base}/", process),
            timeout=60,
            interval=0.2,
            what="the devserver to serve /",
        )
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        opener.open(f"{base}/").close()
        token = next(c.value for c in jar if c.name == "csrftoken")
        request = urllib.request.Request(
            f"{base}/session",
            data=json.dumps({"model": "gpt-realtime", "voice": "marin"}).encode(),
            headers={"Content-Type": "application/json", "X-CSRFToken": str(token)},
        )
        with opener.open(request) as response:
            status, body = response.status, json.load(response)
        # A call (the emulator's synthetic one stands in for the browser's WebRTC call),
        # registered through the API: the in-process worker owns its sideband and the typed
        # turn reaches the transcript over the embedded transports.
        emulator = f"http://127.0.0.1:{emulator_port}"
        call_id = _post(opener, f"{emulator}/_emulator/synthetic-calls", {"count": 1, "turns": 0})[
            "calls"
        ][0]["call_id"]
        registered = _post(
            opener,
            f"{base}/session/call",
            {"sessionId": body["sessionId"], "callId": call_id},
            csrf=str(token),
        )
        wait_for(
            lambda: _attached(opener, f"{base}/session/{body['sessionId']}"),
            timeout=30,
            interval=0.1,
            what="the in-process worker to attach the sideband",
        )
        _post(opener, f"{emulator}/_emulator/calls/{call_id}/user-text", {"text": "hello"})
        turns = wait_for(
            lambda: _turns_completed(opener, f"{base}/session/{body['sessionId']}/transcript", 2),
            timeout=30,
            interval=0.1,
            what="2 completed turns in the transcript",
        )
        with opener.open(f"{base}/session/{body['sessionId']}") as response:
            state = json.load(response)
        with opener.open(f"{base}/static/admin/css/base.css") as response:
            static_status = response.status

        # The emulator dies: the runner says so and starts it again on the same port.
        log_path = tmp_path / "devserver.log"
        first_pid = int(re.findall(r"emulator pid (\d+)", log_path.read_text())[0])
        os.kill(first_pid, signal.SIGKILL)
        wait_for(
            lambda: _logged(log_path, "[devserver] the emulator is back", process),
            timeout=30,
            interval=0.1,
            what="the devserver to restart the emulator",
        )
        with urllib.request.urlopen(f"{emulator}/_emulator/health", timeout=5) as response:
            health = json.load(response)
    finally:
        process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=30)
        log.close()

    assert status == 201
    assert body["clientSecret"].startswith("ek_")
    assert registered == {"sessionId": body["sessionId"], "callId": call_id, "generation": 1}
    assert [(t["role"], t["text"], t["callId"]) for t in turns] == [
        ("user", "hello", call_id),
        ("assistant", 'You said: "hello".', call_id),
    ]
    assert state["status"] == "active"
    assert state["callId"] == call_id
    assert static_status == 200
    assert health == {"ok": True}
    assert returncode == 0
    assert not _port_open(port)
    assert not _port_open(emulator_port)
    output = (tmp_path / "devserver.log").read_text()
    assert "[devserver] the emulator stopped (killed by SIGKILL); restarting it" in output
    assert "[devserver] stopped" in output
    # Nothing failed on the way (the in-process worker logs what it cannot write or push).
    assert "Traceback" not in output
    # Quiet: no routine beat ticks, no warning about the embedded broker or an ended call.
    assert "calls_reconcile" not in output
    assert "sideband-reconcile" not in output
    assert "No hostname" not in output
    assert "WARNING" not in output


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_a_dead_child_is_reported_and_restarted_until_it_keeps_dying(
    capsys: pytest.CaptureFixture[str],
) -> None:
    processes = [_sleeper()]

    def restart() -> None:
        processes.append(_sleeper())

    child = Child("emulator", lambda: process_exit_status(processes[-1]), restart=restart)
    try:
        assert children_check([child], now=0.0) is None  # alive: nothing to say
        for attempt in range(RESTART_LIMIT):
            processes[-1].kill()
            processes[-1].wait()
            assert children_check([child], now=float(attempt)) is None
            assert len(processes) == attempt + 2
        processes[-1].kill()
        processes[-1].wait()
        verdict = children_check([child], now=float(RESTART_LIMIT))
    finally:
        for process in processes:
            process.kill()
            process.wait()

    assert verdict == "the emulator keeps stopping"
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [
        "[devserver] the emulator stopped (killed by SIGKILL); restarting it",
        "[devserver] the emulator is back",
    ]
    assert lines[-1] == (
        f"[devserver] the emulator stopped (killed by SIGKILL) {RESTART_LIMIT + 1} times within "
        "60 s; stopping"
    )


def test_a_dead_thread_stops_the_runner(capsys: pytest.CaptureFixture[str]) -> None:
    worker = Child("Celery worker", lambda: "its thread ended")

    assert children_check([worker], now=0.0) == "the Celery worker stopped"
    assert capsys.readouterr().out == (
        "[devserver] the Celery worker stopped (its thread ended); stopping\n"
    )
