"""An unexpected exception answers the JSON 500 over a real uvicorn server, and the client's
keep-alive connection still carries its next request (Starlette's ServerErrorMiddleware
re-raises after its 500, and uvicorn closed the connection on that)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from app.main import create_app
from tests.fixtures.server import ServerThread


@pytest.fixture
def server(settings, new_key) -> Iterator[tuple[ServerThread, dict[str, str]]]:
    app = create_app(settings)

    @app.get("/test/boom")
    def boom() -> None:
        raise RuntimeError("internal detail that must not leave the server")

    @app.get("/test/async-boom")
    async def async_boom() -> None:
        raise KeyError("another internal detail")

    headers = {"Authorization": f"Bearer {new_key('admin')}"}
    with ServerThread(app) as running:
        yield running, headers


def exchange(conn: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> Any:
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    return r.status, r.read(), r.getheader("content-type")


def test_unhandled_errors_are_json_500_and_keep_the_connection(server):
    running, headers = server
    conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=30)
    try:
        assert exchange(conn, "/healthz", headers)[0] == 200
        local = conn.sock.getsockname()
        for path in ("/test/boom", "/test/async-boom", "/test/boom"):
            status, body, ctype = exchange(conn, path, headers)
            assert status == 500 and ctype == "application/json"
            err = json.loads(body)["error"]
            assert err["code"] == "internal_error" and err["detail"]["request_id"]
            assert b"internal detail" not in body and b"Traceback" not in body
            # the same socket carries the next request: the server did not close it
            assert exchange(conn, "/healthz", headers)[0] == 200
            assert conn.sock.getsockname() == local
    finally:
        conn.close()


def test_out_of_range_ids_over_a_real_server(server):
    running, headers = server
    conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=30)
    try:
        assert exchange(conn, "/healthz", headers)[0] == 200
        local = conn.sock.getsockname()
        for path in (
            "/v1/projects/99999999999999999999",
            "/v1/projects/-99999999999999999999",
            "/v1/projects/0",
            "/v1/jobs/1/events?after=99999999999999999999",
            "/v1/webhooks/18446744073709551616/deliveries",
        ):
            status, body, _ctype = exchange(conn, path, headers)
            assert status == 422 and json.loads(body)["error"]["code"] == "validation_error"
        assert exchange(conn, "/v1/projects/2147483647", headers)[0] == 404
        assert conn.sock.getsockname() == local
    finally:
        conn.close()
