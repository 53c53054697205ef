"""A Redis and a Postgres of a test's own, to stop and restart: the fault tests' backing services.

Each runs on a free port with its data and sockets in a temporary directory, so the machine's
shared servers (5432, 6379) are never touched; leaving `running(...)` ends every process it
started and removes its files. Postgres refuses to run as root: when the tests run as root,
its commands run as the `postgres` system user (`runuser`), which owns the temporary directory.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

import redis

from realtime_emulator.testing import free_port
from tests.processes import wait_for


class _Server(Protocol):
    def start(self) -> Any: ...

    def close(self) -> None: ...


ServerT = TypeVar("ServerT", bound=_Server)


@contextmanager
def running(server: ServerT) -> Iterator[ServerT]:
    """`with running(RedisServer()) as redis:` started; stopped and its files removed after."""
    try:
        yield server.start()
    finally:
        server.close()


class RedisServer:
    """`redis-server` without persistence (as in CI and many caches): a restart loses every key."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="fault-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Self:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with (self.dir / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    shutil.which("redis-server") or "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.dir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self.answers, timeout=10, what=f"redis on {self.port}")
        return self

    def answers(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: no goodbye to its clients, every key gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    return shutil.which(name) or name


class PostgresServer:
    """A throwaway Postgres cluster (initdb; fsync off: its data need not survive the machine)."""

    USER = "postgres"

    def __init__(self, *, database: str = "realtime") -> None:
        self.port = free_port()
        self.database = database
        self.dir = Path(tempfile.mkdtemp(prefix="fault-postgres-"))
        self.data = self.dir / "data"
        self.sockets = self.dir / "sockets"
        self.sockets.mkdir()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            account = pwd.getpwnam(self.USER)
            for path in (self.dir, self.sockets):
                os.chown(path, account.pw_uid, account.pw_gid)
            self._as_user = ["runuser", "-u", self.USER, "--"]
        self.running = False

    @property
    def url(self) -> str:
        return f"postgres://{self.USER}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *command: str) -> None:
        subprocess.run(
            [*self._as_user, *command],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
        )

    def start(self) -> Self:
        if not self.data.exists():
            self._run(
                _postgres_bin("initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                self.USER,
                "-N",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            )
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c autovacuum=off"
        )
        self._run(
            _postgres_bin("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "postgres.log"),
            "-w",
            "-t",
            "30",
            "-o",
            options,
            "start",
        )
        self.running = True
        return self

    def create_database(self) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.USER, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')

    def stop(self, mode: str = "fast") -> None:
        """`fast`: every connection is terminated (clients see "terminating connection due to
        administrator command"), then a clean shutdown."""
        if not self.running:
            return
        self._run(
            _postgres_bin("pg_ctl"), "-D", str(self.data), "-w", "-t", "30", "-m", mode, "stop"
        )
        self.running = False

    def answers(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(
                host="127.0.0.1",
                port=self.port,
                user=self.USER,
                dbname=self.database,
                connect_timeout=2,
            ):
                return True
        except psycopg.OperationalError:
            return False

    def log_text(self) -> str:
        with contextlib.suppress(OSError):
            return (self.dir / "postgres.log").read_text(errors="replace")
        return ""

    def close(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
