"""schemathesis over every operation of the OpenAPI, against the ASGI app with an admin key.

Every phase (examples, coverage: unexpected methods and negative data, fuzzing) with a
few examples per operation. Asserted: no server error, and no mismatch between the
OpenAPI and the answers (undeclared status codes, content types, response bodies and
headers, 405 answers and their `Allow`). Webhook targets are the local receiver the test
starts: the `url` of every registration (a JSON object with a string `url`) is rewritten
to it before the request reaches the app, which runs with 127.0.0.0/8 allowed
(TAG2MASK_WEBHOOK_ALLOW_NETWORKS, as for an on-premise receiver), so registrations really
succeed and the app's dispatcher delivers to the receiver, never elsewhere. Which URLs are
refused is tested in tests/api/test_webhooks.py and tests/api/test_webhook_security.py.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest

from tests.fixtures.build import image_bytes, make_project, mask_bytes, stripes_mask, upload_ok
from tests.fixtures.webhooks import LOOPBACK_ALLOWED, Receiver

schemathesis = pytest.importorskip("schemathesis")

from schemathesis.config import SchemathesisConfig  # noqa: E402
from schemathesis.engine import from_schema  # noqa: E402
from schemathesis.engine.events import FuzzScenarioFinished, ScenarioFinished  # noqa: E402

ASSERTED = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "unsupported_method",
    "allow_header_conformance",
)
MAX_EXAMPLES = 6
# Run and printed, not asserted: a schema cannot say which bytes decode as an image, which
# tag names a project has, or which cursor strings the API issued, so schema-valid
# requests still meet 422 `invalid_image`, `unknown_tag` or an invalid cursor
# (positive_data_acceptance); and negative_data_rejection counts the places where the
# server is more lenient than its schema. Neither is a mismatch of answers and OpenAPI.
NOTED = ("positive_data_acceptance", "negative_data_rejection", "object_level_authorization")


class WebhooksToReceiver:
    """ASGI wrapper: the `url` of every webhook registration becomes `receiver_url`.

    It also answers lifespan events itself: the app was started once by the test client,
    and schemathesis' client would start it again for each of its sessions.
    """

    def __init__(self, app: Any, receiver_url: str) -> None:
        self.app, self.receiver_url = app, receiver_url
        self.registered: Counter[int] = Counter()  # status of each rewritten registration

    def __getattr__(self, name: str) -> Any:  # state, openapi, ... of the wrapped app
        return getattr(self.app, name)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]  # startup or shutdown
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        path = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] != "POST" or not path.endswith("/webhooks"):
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        body = self._rewrite(raw)
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def record(message: dict) -> None:
            if message["type"] == "http.response.start" and body != raw:
                self.registered[message["status"]] += 1
            await send(message)

        await self.app({**scope, "headers": headers}, replay, record)

    def _rewrite(self, raw: bytes) -> bytes:
        """Any string `url` becomes the receiver's: a generated string is almost never an
        http(s) URL, so only rewriting the valid ones would leave registration unexercised.
        Other bodies (no JSON object, no string `url`) reach the app as they are."""
        try:
            doc = json.loads(raw)
        except ValueError:
            return raw
        if not isinstance(doc, dict) or not isinstance(doc.get("url"), str):
            return raw
        doc["url"] = self.receiver_url
        return json.dumps(doc).encode()


@pytest.fixture
def client(make_client):
    """The app of an operator who allowed the loopback network the test's receiver is on."""
    return make_client(webhook_allow_networks=LOOPBACK_ALLOWED)


@pytest.fixture
def seeded(client, admin, settings):
    """A project with categories, images (one with a human mask) and a stats job."""
    p = make_project(client, admin)
    upload_ok(client, admin, p["id"], image_bytes(seed=1), tags="cat")
    upload_ok(
        client, admin, p["id"], image_bytes(seed=2), "dog", mask_bytes(stripes_mask(32, 24, (0, 2)))
    )
    r = client.post(f"/v1/projects/{p['id']}/jobs", json={"kind": "stats"}, headers=admin)
    assert r.status_code == 202, r.text
    return p


def test_openapi_tells_the_truth(client, admin, seeded):
    receiver = Receiver()
    try:
        app = WebhooksToReceiver(client.app, receiver.url)
        config = SchemathesisConfig.from_dict(
            {
                "seed": 16,
                "headers": admin,
                "generation": {"max-examples": MAX_EXAMPLES},
                "phases": {"stateful": {"enabled": False}},
                "checks": {
                    "missing_required_header": {"enabled": False},
                    "use_after_free": {"enabled": False},
                    "ensure_resource_availability": {"enabled": False},
                    "ignored_auth": {"enabled": False},
                },
            }
        )
        schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
        started = time.monotonic()
        failures: list[str] = []
        noted: Counter[str] = Counter()  # run, reported, not asserted (see NOTED)
        ran: Counter[str] = Counter()
        for event in from_schema(schema).execute():
            if not isinstance(event, ScenarioFinished | FuzzScenarioFinished):
                continue
            for checks in event.recorder.checks.values():
                for check in checks:
                    ran[check.name] += 1
                    if check.failure_info is None:
                        continue
                    f = check.failure_info.failure
                    if check.name in ASSERTED:
                        failures.append(f"{check.name} {f.operation}: {f.title}\n{f.message}")
                    else:
                        noted[f"{check.name} {f.operation}"] += 1
        elapsed = time.monotonic() - started
    finally:
        receiver.close()
    print(f"schemathesis: {elapsed:.0f} s, checks run: {dict(ran)}; not asserted: {dict(noted)}")
    print(f"webhook registrations sent to the receiver, by status: {dict(app.registered)}")
    assert ran["not_a_server_error"] > 0, ran
    # The receiver's URL passed the SSRF policy (loopback allowed): registration was
    # exercised, not only its declared 422.
    assert app.registered[201] > 0, app.registered
    unique = sorted(set(failures))
    assert not unique, f"{len(unique)} mismatches in {elapsed:.0f} s:\n\n" + "\n\n".join(unique)
