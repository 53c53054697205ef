"""`replay_transcript` on every recorded Live session (../shared/live-corpus/), vs EXPECTED.json.

EXPECTED.json holds the openai SDK's own TranscriptGrouper output (default options, clock
frozen) for each file; the hang-up recording (only `session.started`) has no entry and must
yield no turns. When the corpus is missing these tests fail: a silent skip would hide that the
Live capture went untested.
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from sessions_app.models import Session, TranscriptTurn

CORPUS = Path(__file__).parents[2].parent / "shared" / "live-corpus"
RECORDINGS = sorted(
    p.name for p in CORPUS.glob("*.jsonl") if not p.name.endswith(".sent.jsonl")
) or ["<corpus missing>"]
# Recordings with no transcript at all (README: "attach, only session.started, then hangup").
WITHOUT_TURNS = {"live_sideband__webrtc_hang_up.jsonl"}

pytestmark = pytest.mark.django_db


def expected_turns(name: str) -> list[dict[str, Any]]:
    if name in WITHOUT_TURNS:
        return []
    expected = json.loads((CORPUS / "EXPECTED.json").read_text(encoding="utf-8"))
    return expected[name]["turns"]


def session_ids(name: str) -> list[str]:
    lines = (CORPUS / name).read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines if line.strip()]
    return [e["session"]["id"] for e in events if e["type"] == "session.started"]


def replay(path: Path, *args: str) -> tuple[list[dict[str, Any]], str]:
    out, err = StringIO(), StringIO()
    call_command("replay_transcript", str(path), *args, stdout=out, stderr=err)
    return json.loads(out.getvalue()), err.getvalue()


def test_the_live_corpus_is_present_and_covered_by_expected() -> None:
    assert CORPUS.is_dir(), f"Live corpus missing at {CORPUS}"
    expected = json.loads((CORPUS / "EXPECTED.json").read_text(encoding="utf-8"))
    assert sorted(k for k in expected if not k.startswith("_")) == sorted(
        set(RECORDINGS) - WITHOUT_TURNS
    )
    assert len(RECORDINGS) == 8


@pytest.mark.parametrize("name", RECORDINGS)
def test_live_replay_matches_expected(name: str) -> None:
    turns, err = replay(CORPUS / name)

    assert [
        {k: t[k] for k in ("role", "text", "start_ms", "end_ms")} for t in turns
    ] == expected_turns(name)
    assert all(t["status"] == "completed" for t in turns)
    assert "(live)" in err
    assert "0 malformed" in err
    assert err.rstrip().endswith("unknown: none; 0 refused writes")


@pytest.mark.parametrize("name", RECORDINGS)
def test_live_turn_ids_come_from_the_session_timeline(name: str) -> None:
    # Every turn of the corpus is in the last session of its file (the fork's, when forked).
    session_id = session_ids(name)[-1]

    turns, _ = replay(CORPUS / name)

    assert [t["item_id"] for t in turns] == [
        f"{session_id}/{t['role'][0]}{t['start_ms']}" for t in turns
    ]


def test_a_second_replay_draws_the_same_turns_under_the_same_ids() -> None:
    path = CORPUS / "live_ws__image_from_tool.jsonl"

    first, _ = replay(path)
    second, _ = replay(path)

    assert first == second
    assert Session.objects.count() == 2


def test_a_live_log_is_told_from_a_realtime_one_and_api_can_be_forced(tmp_path: Path) -> None:
    log = tmp_path / "live.jsonl"
    log.write_text(
        "\n".join(
            json.dumps(e)
            for e in [
                {"type": "session.started", "event_id": "e1", "session": {"id": "live_x"}},
                {
                    "type": "session.input_transcript.delta",
                    "event_id": "e2",
                    "delta": "Hello",
                    "start_ms": 0,
                    "end_ms": 200,
                },
            ]
        ),
        encoding="utf-8",
    )

    live_turns, _ = replay(log)
    realtime_turns, realtime_err = replay(log, "--api", "realtime")

    assert live_turns == [
        {
            "role": "user",
            "text": "Hello",
            "status": "completed",
            "item_id": "live_x/u0",
            "start_ms": 0,
            "end_ms": 200,
        }
    ]
    assert realtime_turns == []
    assert "unknown: session.input_transcript.delta=1, session.started=1" in realtime_err
    assert TranscriptTurn.objects.count() == 1
