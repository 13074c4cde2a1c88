"""An unexpected exception answers the JSON 500 over a real uvicorn server, and the client's
keep-alive connection still carries its next request (Starlette's ServerErrorMiddleware
re-raises after its 500, and uvicorn closed the connection on that)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from app.main import create_app


class ServerThread:
    """uvicorn serving `app` on a free 127.0.0.1 port, in a thread of this process."""

    def __init__(self, app: FastAPI) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_keep_alive=30)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


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
