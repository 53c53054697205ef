"""factory_boy factories for the sessions_app models (shared by the whole suite)."""

from __future__ import annotations

import datetime as dt
import secrets

import factory
from django.utils import timezone

from extraction.models import Profile
from sessions_app.crypto import secret_encrypt, sha256_hex
from sessions_app.models import Call, ClientSecret, Session, TranscriptTurn

# The owner hash of a client whose cookie holds OWNER_CREDENTIAL (tests can send that cookie).
OWNER_CREDENTIAL = "test-credential-0123456789abcdefghijklmnopqrstuv"
OWNER_HASH = sha256_hex(OWNER_CREDENTIAL)


class SessionFactory(factory.django.DjangoModelFactory[Session]):
    class Meta:
        model = Session

    model = "gpt-realtime"
    voice = "marin"
    transcription_enabled = True
    owner_hash = OWNER_HASH


class ClientSecretFactory(factory.django.DjangoModelFactory[ClientSecret]):
    class Meta:
        model = ClientSecret
        exclude = ("value",)

    session = factory.SubFactory(SessionFactory)
    kind = ClientSecret.Kind.CREATE
    value = factory.LazyFunction(lambda: f"ek_{secrets.token_hex(16)}")
    value_encrypted = factory.LazyAttribute(lambda o: secret_encrypt(o.value))
    value_hash = factory.LazyAttribute(lambda o: sha256_hex(o.value))
    expires_at = factory.LazyFunction(lambda: timezone.now() + dt.timedelta(minutes=10))


class CallFactory(factory.django.DjangoModelFactory[Call]):
    class Meta:
        model = Call

    call_id = factory.LazyFunction(lambda: f"rtc_{secrets.token_hex(16)}")
    session = factory.SubFactory(SessionFactory)
    generation = factory.Sequence(lambda n: n + 1)
    secret = factory.SubFactory(ClientSecretFactory, session=factory.SelfAttribute("..session"))


class TranscriptTurnFactory(factory.django.DjangoModelFactory[TranscriptTurn]):
    class Meta:
        model = TranscriptTurn

    session = factory.SubFactory(SessionFactory)
    call = None
    item_id = factory.Sequence(lambda n: f"item_{n:021d}")
    role = TranscriptTurn.Role.USER
    text = factory.Sequence(lambda n: f"turn {n}")
    status = TranscriptTurn.Status.COMPLETED
    position = factory.Sequence(lambda n: (n + 1) * 1024)


def profile_data(**facts: object) -> dict[str, object]:
    """A valid extraction.schema profile: every field empty unless given."""
    data: dict[str, object] = {"schema_version": 1}
    data.update(dict.fromkeys(("name", "preferred_name", "language", "location", "time_zone")))
    data.update(
        {f: [] for f in ("goals", "preferences", "dislikes", "facts", "constraints", "follow_ups")}
    )
    data.update(facts)
    return data


class ProfileFactory(factory.django.DjangoModelFactory[Profile]):
    class Meta:
        model = Profile

    session = factory.SubFactory(SessionFactory)
    version = factory.Sequence(lambda n: n + 1)
    data = factory.LazyFunction(
        lambda: profile_data(name={"value": "Ada", "evidence": ["item_000000000000000000001"]})
    )
    instructions = "You are a friendly assistant.\nMarker: profile"
    turn_count = 0
