"""The app's HTTP API on Chalice's own local server (API Gateway's behaviour), in a thread."""

from __future__ import annotations

import logging
import threading
from typing import Any

from chalice.local import ChaliceRequestHandler, CustomLocalChalice, LocalChalice, LocalDevServer, RouteMatcher

from local_stack.function_output import capture

logger = logging.getLogger("local_stack.api")


class _LoggedRequestHandler(ChaliceRequestHandler):
    """Chalice's handler with its access log sent to logging instead of bare stderr.

    The access log names the route (`GET /users/{email} 200`), never the requested path: paths and query
    strings carry personal data (an e-mail address, a state and city).
    """

    # Chalice writes a response's headers, then its body: with Nagle's algorithm on, a keep-alive client's
    # delayed ACK held each body back ~40 ms (API Gateway answers at once).
    disable_nagle_algorithm = True

    def __init__(self, request: Any, client_address: Any, server: Any, app_object: Any, config: Any):
        self._routes = RouteMatcher(list(app_object.routes))  # before the base class handles the request
        super().__init__(request, client_address, server, app_object, config)

    def handle_one_request(self) -> None:
        with capture("api_handler"):  # the API's JSON log lines, rendered like the other functions'
            super().handle_one_request()

    def route(self) -> str:
        """The route template the request's path matched (its query left out), or `(no route)`."""
        try:
            return self._routes.match_route(getattr(self, "path", "")).route
        except ValueError:
            return "(no route)"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.info("%s %s %s", getattr(self, "command", "-"), self.route(), getattr(code, "value", code))

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's signature
        # Errors (a malformed request line): whatever quotes the request line or path says the route instead.
        text = format % args
        for raw in (getattr(self, "requestline", ""), getattr(self, "path", "")):
            if raw:
                text = text.replace(raw, f"{getattr(self, 'command', '-')} {self.route()}")
        logger.info("%s", text)


class ApiServer:
    """Serves `app` on host:port until `stop`."""

    def __init__(self, app: Any, config: Any, host: str = "127.0.0.1", port: int = 8000):
        # What chalice.local.create_local_server does, with our request handler.
        CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
        app.__class__ = CustomLocalChalice
        try:
            self._server = LocalDevServer(app, config, host, port, handler_cls=_LoggedRequestHandler)
        except OSError as error:
            raise OSError(f"API port {host}:{port}: {error.strerror}") from error
        self.host = host
        self.port = self._server.server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """`http://host:port`."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self._server.server.serve_forever, args=(0.1,), name="api",
                                        daemon=True)
        self._thread.start()
        logger.info("API on %s", self.url)

    def stop(self) -> None:
        """Stop serving (if it started: shutdown() waits for serve_forever) and release the port."""
        if self._thread is not None:
            self._server.server.shutdown()
        self._server.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
