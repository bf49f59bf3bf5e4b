"""The local stack's API server: Chalice's local server as the stack serves it."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

from chalice import Chalice
from chalice.config import Config

from local_stack.api import ApiServer, _LoggedRequestHandler


def test_a_keep_alive_connection_gets_each_response_without_nagle_s_delay(monkeypatch):
    # GIVEN the API server with one route, recording each connection's TCP_NODELAY once it is set up
    app = Chalice(app_name="keep-alive")

    @app.route("/")
    def index() -> dict[str, Any]:
        return {"ok": True}

    nodelay: list[int] = []
    setup = _LoggedRequestHandler.setup

    def recorded(handler: Any) -> None:
        setup(handler)
        nodelay.append(handler.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    monkeypatch.setattr(_LoggedRequestHandler, "setup", recorded)
    server = ApiServer(app, Config(), "127.0.0.1", 0)
    server.start()

    # WHEN a client sends three requests on one keep-alive connection
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        answers = []
        for _ in range(3):
            connection.request("GET", "/")
            response = connection.getresponse()
            answers.append((response.status, json.loads(response.read())))
        connection.close()
    finally:
        server.stop()

    # THEN each is answered on that one connection, whose small writes (headers, then body) go out at once
    # (Nagle off: a client's delayed ACK no longer holds each body back ~40 ms)
    assert answers == [(200, {"ok": True})] * 3
    assert len(nodelay) == 1 and nodelay[0] != 0
