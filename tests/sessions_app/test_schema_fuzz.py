"""Schemathesis against the live app, over the schema it serves at /api/schema/.

The app is the real ASGI app under daphne with DEBUG off (as production runs it), on the test
database, with the emulator as upstream. Every documented operation gets generated requests
(valid and invalid bodies, path ids, query parameters); the run fails on any 5xx, any status
code the schema does not declare, and any answer whose body or content type the schema does
not describe. Bounded: a fixed number of derandomized examples per operation.

One value is not generated: an SDP offer. Its pattern (`v=0`, a media line) is what the
server checks itself; whether an offer can be negotiated is the upstream's to say, and no
pattern states it (a well-formed offer the upstream cannot negotiate is a 400 naming `sdp`:
tests/extraction/test_live_flow.py). So a positive case that carries an offer carries a
real one, made by an aiortc peer as a browser makes it; everything else in the body is
generated, and negative cases keep their generated offers.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from realtime_emulator.browser_peer import BrowserPeer
from tests.processes import app_serving, process_env
from tests.sessions_app.test_hostile_input import DOCUMENTED_ERRORS

if TYPE_CHECKING:
    from realtime_emulator.testing import EmulatorServer

EXAMPLES_PER_OPERATION = 25


@pytest.fixture(scope="module")
def live_app(
    django_db_setup: None,
    django_db_blocker: Any,
    emulator_server: EmulatorServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """The app as production runs it: DEBUG off, a real SECRET_KEY, the Secure cookie."""
    with django_db_blocker.unblock():
        env = process_env(
            emulator_server=emulator_server,
            DEBUG="0",
            SECRET_KEY=f"schemathesis-{secrets.token_hex(24)}",
            ALLOWED_HOSTS="127.0.0.1",
        )
    log = tmp_path_factory.mktemp("schemathesis") / "daphne.log"
    with app_serving(env=env, log_path=log) as base:
        yield base
    assert "Traceback" not in log.read_text(errors="replace"), log.read_text(errors="replace")


@pytest.fixture(scope="module")
def real_offer() -> str:
    """An SDP offer as a browser makes it (microphone and `oai-events` channel)."""

    async def make() -> str:
        peer = BrowserPeer()
        try:
            return await peer.offer()
        finally:
            await peer.close()

    return asyncio.run(make())


def with_real_offer(case: Any, offer: str) -> Any:
    if isinstance(case.body, dict) and "sdp" in case.body:
        case.body = {**case.body, "sdp": offer}
    return case


@pytest.fixture(scope="module")
def api_schema(live_app: str) -> Any:
    return schemathesis.openapi.from_url(f"{live_app}/api/schema/?format=json")


# Every operation of the schema (test_hostile_input checks the schema has no other).
OPERATIONS = sorted(DOCUMENTED_ERRORS)


@pytest.mark.django_db(transaction=True)  # what the app writes is flushed after the run
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_the_live_app_answers_as_its_schema_says(
    api_schema: Any,
    live_app: str,
    real_offer: str,
    path: str,
    method: str,
    mode: GenerationMode,
) -> None:
    operation = api_schema[path][method.upper()]
    cases = operation.as_strategy(generation_mode=mode)
    if mode == GenerationMode.POSITIVE:
        cases = cases.map(lambda case: with_real_offer(case, real_offer))

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def answers_as_documented(case: Any) -> None:
        case.call_and_validate(base_url=live_app, timeout=20)

    answers_as_documented()
