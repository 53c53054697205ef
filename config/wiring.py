"""The wiring: each hook of the ground floor (sessions_app.hooks) connected to the feature
that serves it. This file is the whole list of places where a session flow hands over to a
feature app; config.apps runs `wire()` once per process (web, worker, beat, tests), when every
app is ready.

The other wiring lives beside it at the top: the routes (config/urls.py, config/asgi.py) and
the Celery app (config/celery.py).
"""

from __future__ import annotations

from extraction import memory as extraction_memory
from extraction import selectors as extraction_selectors
from sessions_app import hooks
from sideband import selectors as sideband_selectors
from sideband import services as sideband_services
from sideband import tasks as sideband_tasks


def wire() -> None:
    # POST /session: the first instructions, and the profile a new session carries over.
    hooks.session_start.connect(extraction_memory.session_start)
    # POST /session/renew: the next upstream session's instructions.
    hooks.session_instructions.connect(extraction_selectors.session_instructions)
    # GET /session/{id} (and the server API): the profile in force.
    hooks.session_profile_json.connect(extraction_selectors.profile_latest_payload)
    # The session reads and the call.ended webhook: whether a call's transcript is captured.
    hooks.call_capture.connect(sideband_selectors.call_capture)
    # A superseded call, a closed session's calls: what a call's end does.
    hooks.calls_end.connect(sideband_services.calls_end)
    # A registered call, after commit: to the sideband worker.
    hooks.call_dispatch.connect(sideband_tasks.call_own_dispatch)
