"""A JSON-over-HTTP stand-in on 127.0.0.1 for the tests of clients of services peerstep does not run (a vLLM
``/pooling`` server): each POST's path and body are recorded, and ``respond(path, body)`` gives the status and
the reply (an object sent as JSON, or a string sent as it is, to test malformed replies)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Respond = Callable[[str, Any], tuple[int, Any]]


@contextmanager
def json_server(respond: Respond) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The server's ``/v1`` base URL and the list of requests received so far (``{"path", "body"}``)."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append({"path": self.path, "body": body})
            status, payload = respond(self.path, body)
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", received
    finally:
        server.shutdown()
        server.server_close()
