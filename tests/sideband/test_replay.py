"""`replay_transcript` on every recorded session of the reference corpus, against EXPECTED.json.

The corpus lives beside the repository (../shared/realtime-corpus/, CI has it). When it is
missing these tests fail: a silent skip would hide that the capture went untested.
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from sessions_app.models import Session, TranscriptTurn

CORPUS = Path(__file__).parents[2].parent / "shared" / "realtime-corpus"
RECORDINGS = sorted(p.name for p in CORPUS.glob("*.jsonl")) or ["<corpus missing>"]

# Every turn of the recordings ends `completed`, except where the recording shows otherwise.
STATUS_EXCEPTIONS = {
    ("ga_ws_azure_pyd_input_transcription_failed.jsonl", "item_E4GEZV6Pux1f4VnDEzVPh"): "failed",
}

pytestmark = pytest.mark.django_db


def expected_turns(name: str) -> list[dict[str, Any]]:
    expected = json.loads((CORPUS / "EXPECTED.json").read_text(encoding="utf-8"))
    turns = []
    for turn in expected[name]["turns"]:
        status = STATUS_EXCEPTIONS.get((name, turn["item_id"]), "completed")
        turns.append({**turn, "status": status})
    return turns


def replay(path: Path) -> tuple[list[dict[str, Any]], str]:
    out, err = StringIO(), StringIO()
    call_command("replay_transcript", str(path), stdout=out, stderr=err)
    return json.loads(out.getvalue()), err.getvalue()


def test_the_corpus_is_present_and_fully_covered_by_expected() -> None:
    assert CORPUS.is_dir(), f"reference corpus missing at {CORPUS}"
    expected = json.loads((CORPUS / "EXPECTED.json").read_text(encoding="utf-8"))
    assert sorted(expected) == RECORDINGS
    assert len(RECORDINGS) >= 6


@pytest.mark.parametrize("name", RECORDINGS)
def test_replay_matches_expected(name: str) -> None:
    path = CORPUS / name
    assert path.is_file(), f"recording missing: {path}"

    turns, err = replay(path)

    assert turns == expected_turns(name)
    assert "0 malformed, 0 missing items, unknown: none" in err


@pytest.mark.parametrize("name", RECORDINGS)
def test_replay_writes_a_new_session_with_one_call(name: str) -> None:
    sessions_before = Session.objects.count()

    turns, _ = replay(CORPUS / name)

    session = Session.objects.get(owner_hash="replay")
    assert Session.objects.count() == sessions_before + 1
    assert (session.current_generation, session.calls.get().generation) == (1, 1)
    stored = TranscriptTurn.objects.filter(session=session).order_by("position")
    assert [t.item_id for t in stored] == [t["item_id"] for t in turns]
    assert [t.position for t in stored] == [1024 * (i + 1) for i in range(len(turns))]


def test_replay_skips_malformed_lines_and_counts_unknown_events(tmp_path: Path) -> None:
    log = tmp_path / "odd.jsonl"
    added = {
        "type": "conversation.item.added",
        "event_id": "event_1",
        "previous_item_id": None,
        "item": {
            "id": "item_u",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_text", "text": "Hi"}],
        },
    }
    log.write_text(
        "\n".join(["{not json", json.dumps({"type": "future.event"}), "", json.dumps(added)])
        + "\n",
        encoding="utf-8",
    )

    turns, err = replay(log)

    assert turns == [{"role": "user", "text": "Hi", "status": "completed", "item_id": "item_u"}]
    assert "1 malformed, 0 missing items, unknown: future.event=1" in err


def test_replay_of_a_missing_file_is_a_command_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot read"):
        call_command("replay_transcript", str(tmp_path / "nope.jsonl"))

    assert Session.objects.count() == 0
