"""A real HTTP server on 127.0.0.1 that plays the Kite API's ``GET /instruments`` for tests.

It answers with a configurable status and body, or cuts the connection halfway through the body,
and records the headers of each request so tests can check what was sent.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["DumpServer", "serve_dump"]


@dataclass
class DumpServer:
    """What the server answers, and what it was asked."""

    url: str = ""
    status: int = 200
    body: bytes = b""
    cut: bool = False
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)


@contextmanager
def serve_dump() -> Iterator[DumpServer]:
    """Run the server on a free port for the duration of the ``with`` block."""
    state = DumpServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append((self.path, dict(self.headers.items())))
            self.send_response(state.status)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            if state.cut:
                self.wfile.write(state.body[: len(state.body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(state.body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
