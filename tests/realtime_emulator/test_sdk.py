"""The official SDK, pointed at the emulator by base URL alone, works unmodified."""

from __future__ import annotations

import pydantic
import pytest
from openai import AsyncOpenAI, OpenAI

from realtime_emulator.testing import EmulatorServer

from .conftest import idle_call


class Goal(pydantic.BaseModel):
    text: str
    evidence_turn_ids: list[str]


class NameFact(pydantic.BaseModel):
    value: str | None
    evidence: list[str]


class Profile(pydantic.BaseModel):
    name: NameFact
    preferred_name: str | None
    city: str | None
    goals: list[Goal]
    likes: list[str]
    dislikes: list[str]
    language: str | None


@pytest.fixture
def client(emulator: EmulatorServer) -> OpenAI:
    return OpenAI(base_url=emulator.api_base, api_key=emulator.api_key, max_retries=0)


def test_client_secrets_create_returns_an_ephemeral_key_and_the_session(client: OpenAI) -> None:
    secret = client.realtime.client_secrets.create(
        expires_after={"anchor": "created_at", "seconds": 120},
        session={
            "type": "realtime",
            "model": "gpt-realtime-mini",
            "instructions": "Be brief.",
            "audio": {
                "input": {
                    "transcription": {"model": "gpt-4o-mini-transcribe"},
                    "turn_detection": {"type": "server_vad", "silence_duration_ms": 400},
                },
                "output": {"voice": "marin"},
            },
        },
    )
    assert secret.value.startswith("ek_")
    session = secret.session
    assert session.type == "realtime"
    assert session.model == "gpt-realtime-mini"
    assert session.instructions == "Be brief."
    assert session.audio is not None
    assert session.audio.output is not None
    assert session.audio.output.voice == "marin"
    assert session.audio.input is not None
    assert session.audio.input.transcription is not None
    assert session.audio.input.transcription.model == "gpt-4o-mini-transcribe"
    assert session.id.startswith("sess_")
    assert session.object == "realtime.session"


async def test_realtime_connect_by_call_id_is_a_working_sideband(emulator: EmulatorServer) -> None:
    # given a call and the SDK's async client
    call_id = idle_call(emulator)["call_id"]
    client = AsyncOpenAI(base_url=emulator.api_base, api_key=emulator.api_key)

    async with client.realtime.connect(call_id=call_id) as connection:
        # when the sideband updates the session, adds a user item and asks for a response
        await connection.session.update(
            session={"type": "realtime", "instructions": "Marker: sdk profile"}
        )
        await connection.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hi"}],
            }
        )
        await connection.response.create()
        seen = []
        async for event in connection:
            seen.append(event.type)
            if event.type == "response.done":
                done = event
                break
        # then it receives the whole exchange, typed, with the marker rule applied
        assert seen[0] == "session.updated"
        assert done.response.status == "completed"
        assert done.response.output is not None
        content = done.response.output[0].content  # type: ignore[union-attr]
        assert content is not None
        assert getattr(content[0], "transcript", None) == 'You said: "hi". (Marker: sdk profile)'

        # and retrieve answers with the item as the API shapes it
        await connection.conversation.item.retrieve(item_id=done.response.output[0].id or "")
        async for event in connection:
            if event.type == "conversation.item.retrieved":
                assert event.item.id == done.response.output[0].id
                break


def test_responses_create_answers_plain_text_by_the_reply_rule(client: OpenAI) -> None:
    response = client.responses.create(
        model="gpt-4.1-mini",
        instructions="Summarise.\nMarker: extraction v1",
        input="Hello there",
    )
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text == 'You said: "Hello there". (Marker: extraction v1)'
    assert response.usage is not None
    assert response.usage.total_tokens > 0


def test_responses_parse_fills_a_pydantic_model_from_the_transcript(client: OpenAI) -> None:
    transcript = "\n".join(
        [
            "[turn t1] user: Hi! My name is Alice and I live in Lisbon.",
            "[turn t2] assistant: Nice to meet you, Alice.",
            "[turn t3] user: Call me Ali. I want to learn surfing.",
            "[turn t4] user: I love jazz and cooking, but I hate mornings. I speak Portuguese.",
        ]
    )
    response = client.responses.parse(
        model="gpt-4.1-mini",
        instructions="Extract the user's profile.",
        input=[{"role": "user", "content": [{"type": "input_text", "text": transcript}]}],
        text_format=Profile,
    )
    profile = response.output_parsed
    assert profile == Profile(
        name=NameFact(value="Alice", evidence=["t1"]),
        preferred_name="Ali",
        city="Lisbon",
        goals=[Goal(text="learn surfing", evidence_turn_ids=["t3"])],
        likes=["jazz", "cooking"],
        dislikes=["mornings"],
        language="Portuguese",
    )


def test_responses_parse_gives_nulls_and_empty_lists_when_nothing_was_said(client: OpenAI) -> None:
    response = client.responses.parse(
        model="gpt-4.1-mini",
        input="[turn a] user: What's the weather like?",
        text_format=Profile,
    )
    assert response.output_parsed == Profile(
        name=NameFact(value=None, evidence=[]),
        preferred_name=None,
        city=None,
        goals=[],
        likes=[],
        dislikes=[],
        language=None,
    )
