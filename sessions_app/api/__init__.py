"""The session API: paths and JSON names exactly as the seed's realtime session flow.

- `writes`: create (and refresh), call registration, renew;
- `reads`: the session's state, its transcript, the transcript as a file;
- `fields`: strict input fields and the answers' serializer base, which other apps' views use;
- `base`: the base view (body size, JSON-object body) and the domain errors' answers.

Views are thin: parse and validate input, check who may act (sessions_app.auth), call one
service or selector, serialise. Bad input is a 400 naming the field, with nothing written.

Input is strict: JSON types are not coerced, strings are not trimmed (`" marin"` and
`"rtc_abc\n"` are 400s, never stored trimmed), and a field the endpoint does not know is a 400
naming it. The OpenAPI schema says all of it (sessions_app.schema).
"""
