"""The worker's asyncio connection to the default database (for `batch_run_async`)."""

from __future__ import annotations

from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections


def connect_params() -> dict[str, Any]:
    """Django's parameters for the default database (same server, same adapters), for
    `connect_async`; read them outside the event loop."""
    params = dict(connections[DEFAULT_DB_ALIAS].get_connection_params())
    params.pop("cursor_factory", None)  # Django's synchronous cursor class
    return params


async def connect_async(params: dict[str, Any]) -> psycopg.AsyncConnection[Any]:
    """An asyncio connection to the default database, in UTC like Django's."""
    aconn = await psycopg.AsyncConnection.connect(**params, autocommit=True)
    await aconn.execute("SELECT set_config('TimeZone', 'UTC', false)")
    return aconn
