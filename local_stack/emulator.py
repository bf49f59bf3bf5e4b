"""The embedded AWS emulator: moto server on 127.0.0.1, in this process, in a background thread."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from werkzeug.serving import make_server

from local_stack import moto_patches

logger = logging.getLogger("local_stack.emulator")

# Dummy credentials and the one region: nothing here may ever reach a real AWS account.
LOCAL_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
}
UNSET_AWS_ENV = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE")


def point_process_at(endpoint: str) -> None:
    """Every boto3 client created from now on in this process talks to `endpoint` with dummy credentials."""
    for name in UNSET_AWS_ENV:
        os.environ.pop(name, None)
    os.environ.update(LOCAL_AWS_ENV)
    os.environ["AWS_ENDPOINT_URL"] = endpoint


class Emulator:
    """moto server bound to one host and port; `start` raises at once if the port is taken."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4566):
        self.host = host
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._patched = False

    @property
    def endpoint(self) -> str:
        """`http://host:port`."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Patch moto where it differs from AWS (MotoPatchError if moto changed shape), bind (SO_REUSEADDR, so a
        restart right after Ctrl-C works) and serve in a daemon thread."""
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

        moto_patches.apply()
        self._patched = True
        # Bound here, not in the thread, so a busy port is an error now instead of a hang.
        try:
            self._server = make_server(self.host, self.port, DomainDispatcherApplication(create_backend_app),
                                       threaded=True, request_handler=MotoRequestHandler)
        except SystemExit as exit_:  # werkzeug reports a busy port by printing and exiting
            self._unpatch()
            raise OSError(f"emulator port {self.host}:{self.port} is in use") from exit_
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,), name="emulator", daemon=True)
        self._thread.start()
        logger.info("emulator (moto server) on %s; moto patched where it differs from AWS: %s", self.endpoint,
                    ", ".join(patch.name for patch in moto_patches.PATCHES))

    def stop(self) -> None:
        """Stop serving, release the port and put moto back as it was."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = None
        self._unpatch()

    def _unpatch(self) -> None:
        if self._patched:
            moto_patches.release()
            self._patched = False
