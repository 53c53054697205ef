"""What the benchmarks share: progress lines, percentiles, their database."""

from __future__ import annotations

import sys
import time
import urllib.parse


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))], 1)


def database_ensure(url: str, *, fresh: bool) -> None:
    """Create the database of `url` when missing (dropped first when `fresh`), so the benchmark
    runs on a machine where only Postgres answers."""
    import psycopg
    from psycopg import sql

    parsed = urllib.parse.urlsplit(url)
    name = urllib.parse.unquote(parsed.path.lstrip("/"))
    admin = urllib.parse.urlunsplit(parsed._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if fresh:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            log(f"created database {name}")
