"""Schemathesis hooks for the OpenAPI conformance run (tests/it/openapi_conformance.rs).

A POST repeated with an Idempotency-Key answers the first outcome, even if
the item it created was deleted since; with the short keys a fuzzer favours
("0", "A"), unrelated requests would share keys, and the run's stateful
checks would report a replayed, since deleted item as "created resource not
found". Every valid key is therefore made unique per call; invalid keys are
sent as generated, so their 400 is still checked. Replays, 409 and 422 are
tested in crates/duality/tests/it/idempotency_keys.rs.

A snapshot takes at most 1,000 `key` parameters and answers more with a
400; but more than 1,000 of the long keys a fuzzer writes make a request
line longer than the HTTP layer reads (64 KiB), which it refuses with 414
before the server sees it. Such a list keeps its length, and its keys are
shortened, so the request still reaches the server and its 400 is checked.
"""

import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


MAX_KEYS = 1000


@schemathesis.hook
def before_call(context, case, kwargs):
    query = case.query or {}
    keys = query.get("key")
    if isinstance(keys, list) and len(keys) > MAX_KEYS:
        query["key"] = [str(k)[:8] for k in keys]
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() != "idempotency-key":
            continue
        value = headers[name]
        if isinstance(value, str) and VALID_KEY.match(value):
            headers[name] = uuid.uuid4().hex
