"""The production HTTP server (waitress): threaded, in-process with the scheduler, stoppable."""

from __future__ import annotations

import threading
from typing import Any

from waitress.server import create_server


class HttpServer:
    """A waitress server on host:port (port 0 lets the OS choose); `port` is the bound one."""

    def __init__(self, app: Any, *, host: str, port: int, threads: int = 16) -> None:
        server: Any = create_server(
            app, host=host, port=port, threads=threads, ident="accessbot", clear_untrusted_proxy_headers=True
        )
        self._server = server
        self.port = int(self._server.effective_port)
        self.host = host
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve in this thread until stopped (SIGTERM/SIGINT raise SystemExit, which waitress handles)."""
        self._server.run()

    def start(self) -> None:
        """Serve from a background thread."""
        self._thread = threading.Thread(target=self.run, name="http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, finish the requests under way, close every connection."""
        server = self._server

        def close_everything() -> None:  # runs in the server's own loop thread
            for channel in list(server._map.values()):
                channel.close()

        server.task_dispatcher.shutdown()
        server.trigger.pull_trigger(close_everything)
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        """The base URL to reach this server."""
        return f"http://{self.host}:{self.port}"
