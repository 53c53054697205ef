"""What a refused request must leave as it found: the project's rows, and the upstream.

`nothing_changes()` wraps a request that must be refused (another owner's session, a bad
credential, a conflict): every row of the project's own tables (sessions_app, extraction,
hostapi: each field of each row) is the same after it as before. Given the emulator, it also
proves no request reached the upstream's minting endpoints: a fault armed on each before the
block must still be armed after it (a request would have taken it; faults apply before auth).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.apps import apps

if TYPE_CHECKING:
    from realtime_emulator.testing import EmulatorServer

ROOT = Path(__file__).resolve().parents[1]

# The upstream endpoints a request of ours calls while it is answered (a secret for create and
# renew, a Live session, an extraction's model call), each with a request that reaches it.
UPSTREAM_PROBES = {
    "client_secrets": "/v1/realtime/client_secrets",
    "live_sessions": "/v1/live/sessions",
    "responses": "/v1/responses",
}
TRIPWIRE_STATUS = 503


def database_rows(*, but: Collection[str] = ()) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the project's own tables, each as a tuple of its fields, by model label;
    `but`: fields left out, as "app_label.Model.field"."""
    rows = {}
    for model in apps.get_models():
        if Path(model._meta.app_config.path).parent != ROOT:
            continue  # not one of the project's apps (a top-level package of the repository)
        label = model._meta.label
        fields = [f.attname for f in model._meta.concrete_fields if f"{label}.{f.name}" not in but]
        rows[label] = list(model._default_manager.order_by("pk").values_list(*fields))
    return rows


def rows_changed(
    before: dict[str, list[tuple[Any, ...]]], after: dict[str, list[tuple[Any, ...]]]
) -> dict[str, dict[str, list[tuple[Any, ...]]]]:
    """Per model, the rows only `before` has ("gone") and only `after` has ("new")."""
    changed = {}
    for table in before.keys() | after.keys():
        old, new = before.get(table, []), after.get(table, [])
        if old != new:
            changed[table] = {
                "gone": [r for r in old if r not in new],
                "new": [r for r in new if r not in old],
            }
    return changed


def _tripwires_arm(upstream: EmulatorServer) -> None:
    for endpoint in UPSTREAM_PROBES:
        upstream.control(
            "POST",
            "/_emulator/faults",
            {"endpoint": endpoint, "status": TRIPWIRE_STATUS, "times": 1},
        )


def _tripwires_tripped(upstream: EmulatorServer) -> list[str]:
    """The endpoints whose fault a request took (a probe now reaches the endpoint itself);
    every fault still armed is taken by its probe, so none is left behind."""
    from realtime_emulator.testing import EmulatorError

    tripped = []
    for endpoint, path in UPSTREAM_PROBES.items():
        try:
            upstream.request("POST", path, {})
        except EmulatorError as error:
            if error.status == TRIPWIRE_STATUS:
                continue
        tripped.append(endpoint)
    return tripped


@contextmanager
def nothing_changes(
    upstream: EmulatorServer | None = None, *, but: Collection[str] = ()
) -> Iterator[None]:
    """The block changes no row of the project's tables (`but` the fields named so,
    "app_label.Model.field") and, given `upstream`, calls none of the upstream's endpoints of
    UPSTREAM_PROBES."""
    before = database_rows(but=but)
    if upstream is not None:
        _tripwires_arm(upstream)
    yield
    if upstream is not None:
        tripped = _tripwires_tripped(upstream)
        assert not tripped, f"a refused request reached the upstream: {tripped}"
    changed = rows_changed(before, database_rows(but=but))
    assert not changed, f"a refused request changed rows: {changed}"


@asynccontextmanager
async def nothing_changes_async() -> AsyncIterator[None]:
    """`nothing_changes()` for async tests (the rows are read in asgiref's sync thread)."""
    before = await sync_to_async(database_rows)()
    yield
    changed = rows_changed(before, await sync_to_async(database_rows)())
    assert not changed, f"a refused request changed rows: {changed}"
