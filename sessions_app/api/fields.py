"""Strict input fields, and the base of the serializers that answer.

Input is strict: JSON types are not coerced (5 is not "5", "true" is not true), strings are not
trimmed, a field the endpoint does not know is a 400 naming it. An answer is written by its
view's OutputSerializer, the one the schema documents (`ResponseSerializer`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import exceptions, serializers

from sessions_app import auth
from sessions_app.models import Session

# OpenAI call ids: `rtc_` then letters, digits and underscores (e.g. `rtc_u1_9c6574da...`).
CALL_ID_RE = re.compile(r"^rtc_[A-Za-z0-9][A-Za-z0-9_]*$")
CALL_ID_MAX = 64
# The call ids this server records: a Realtime call's (`rtc_...`) or a Live session's
# (`live_...`, e.g. `live_u1_...`), which plays the call's role on Live.
ANY_CALL_ID_RE = re.compile(r"^(?:rtc|live)_[A-Za-z0-9][A-Za-z0-9_]*$")
# A browser's SDP offer (Live): a few KB; the request body cap bounds it anyway. `v=0` first,
# a media section (`m=`) at the start of a later line, no NUL anywhere.
SDP_MAX = 12_000
SDP_RE = re.compile(r"^v=0\r?\n(?:[^\x00]*\n)?m=[^\x00]*$")


class StrictCharField(serializers.CharField):
    """A JSON string, taken as sent: never trimmed (surrounding whitespace then fails the
    field's pattern or choices, so it is a 400, not a silently different value)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class SettingChoiceField(StrictCharField):
    """One of the values of a list setting (read per request, so the environment rules); the
    schema shows them as an enum (sessions_app.schema.SettingChoiceFieldExtension)."""

    def __init__(self, *, setting: str, what: str, **kwargs: Any) -> None:
        self.setting = setting
        self.what = what
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        allowed = getattr(settings, self.setting)
        if value not in allowed:
            raise serializers.ValidationError(f"Unknown {self.what}; one of: {', '.join(allowed)}.")
        return value


class FullMatchValidator(RegexValidator):
    """A RegexValidator that matches the whole value: `$` alone lets a trailing newline
    through (`"rtc_abc\n"`). The schema shows the pattern (drf-spectacular reads `regex`)."""

    def __call__(self, value: Any) -> None:
        if not re.compile(self.regex).fullmatch(str(value)):
            raise DjangoValidationError(self.message, code=self.code, params={"value": value})


class CallIdField(StrictCharField):
    """A Realtime call id; the schema shows its pattern and length."""

    pattern = CALL_ID_RE
    message = "Must be a Realtime call id (rtc_...)."

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", CALL_ID_MAX)
        kwargs.setdefault("validators", [FullMatchValidator(self.pattern, self.message)])
        super().__init__(**kwargs)


class AnyCallIdField(CallIdField):
    """A recorded call's id on either API: Realtime `rtc_...` or Live `live_...`."""

    pattern = ANY_CALL_ID_RE
    message = "Must be a call id (rtc_... or live_...)."


@extend_schema_field(OpenApiTypes.UUID)
class SessionIdField(StrictCharField):
    default_error_messages = {"malformed": "Must be a session id (a UUID)."}

    def to_internal_value(self, data: Any) -> Any:
        raw = super().to_internal_value(data)
        parsed = auth.session_id_parse(raw)
        if parsed is None:
            self.fail("malformed")
        return parsed


# The input of an endpoint: a field it does not know is a 400 naming it (a misspelt
# `enableTranscripton` must not silently mean the default). A comment, not a docstring: the
# schema would show a docstring as every input's description.
class StrictInputSerializer(serializers.Serializer):
    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(str(name) for name in data if name not in self.fields)
            if unknown:
                raise exceptions.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class SdpField(StrictCharField):
    """A browser's SDP offer (Live): `v=0`, then at least one media line (`m=`), no NUL; the
    schema shows the same pattern. Whether it can be negotiated is the upstream's to say (a
    400 naming `sdp` when it cannot)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", SDP_MAX)
        validator = FullMatchValidator(SDP_RE, "Must be an SDP offer (v=0 ... m=...).")
        kwargs.setdefault("validators", [validator])
        super().__init__(**kwargs)


class ApiField(StrictCharField):
    """The `api` of a create body whose variant is `api` (the schema's oneOf): documented as
    that one value; any other value is refused naming both APIs."""

    def __init__(self, *, api: str, **kwargs: Any) -> None:
        self.api = api
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if value != self.api:
            raise serializers.ValidationError(
                f"Unknown api; one of: {', '.join(Session.Api.values)}."
            )
        return value


# The answer of an endpoint: a field declared `required=False` is left out when it has no value
# (the schema shows it as optional); every other field is always there, null when empty. A
# comment, not a docstring: the schema would show a docstring as every answer's description.
class ResponseSerializer(serializers.Serializer):
    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        return {
            name: value
            for name, value in data.items()
            if value is not None or self.fields[name].required
        }
