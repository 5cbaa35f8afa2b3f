"""Schemathesis hooks for the OpenAPI conformance run (tests/it/openapi_conformance.rs).

A POST repeated with an Idempotency-Key answers the first outcome, even if
the item it created was deleted since; with the short keys a fuzzer favours
("0", "A"), unrelated requests would share keys, and the run's stateful
checks would report a replayed, since deleted item as "created resource not
found". Every valid key is therefore made unique per call; invalid keys are
sent as generated, so their 400 is still checked. Replays, 409 and 422 are
tested in crates/duality/tests/it/idempotency_keys.rs.
"""

import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() != "idempotency-key":
            continue
        value = headers[name]
        if isinstance(value, str) and VALID_KEY.match(value):
            headers[name] = uuid.uuid4().hex
