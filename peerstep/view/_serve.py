"""``peerstep view --serve``: the run's page on 127.0.0.1, following the run while it is still being written.

The page polls ``/model.json?after=SEQ`` every ``interval`` seconds. The answer is tiny while nothing changed; when
rows were appended (or the run stopped running) it carries the whole new model, which the page redraws keeping
what the reader opened, searched and scrolled to. Only the rows written since the last look are read from the log.
The page stops polling once the run's status is no longer ``running`` (a killed writer is settled to
``interrupted``, so it stops then too). Standard library only: one run, one reader, on the loopback interface.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from peerstep._errors import PeerstepError
from peerstep.steplog import StepLog, StepLogError, StepRow
from peerstep.view._model import build_model
from peerstep.view._render import open_run, read_meta, run_page


class _LiveRun:
    """The rows read so far and the model built from them; refreshed on demand, one request at a time."""

    def __init__(self, log: StepLog, interval_ms: int) -> None:
        self.log = log
        self.rows: list[StepRow] = []
        self.lock = threading.Lock()
        self.live = {"poll": "/model.json", "interval_ms": interval_ms}
        self.model: dict[str, Any] = {}
        self.refresh()

    def refresh(self) -> tuple[dict[str, Any], str]:
        with self.lock:
            last = self.rows[-1].seq if self.rows else 0
            try:
                new = list(self.log.rows(after=last))
                status = str(self.log.settle_status().get("status"))
            except (sqlite3.Error, ValueError) as exc:
                raise StepLogError(f"cannot read run {self.log.run_id}: {exc}") from exc
            if new or not self.model or status != self.model["run"].get("status"):
                self.rows.extend(new)
                self.model = build_model({"run_id": self.log.run_id, **read_meta(self.log)}, self.rows)
                self.model["live"] = self.live
            return self.model, status


class ViewServer:
    """A running view server: ``url``, ``wait()`` (until Ctrl-C), ``close()``."""

    def __init__(self, live: _LiveRun, host: str, port: int) -> None:
        self._live = live
        handler = _handler(live)
        try:
            self._httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise PeerstepError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; try another --port") from exc
        self._httpd.daemon_threads = True
        self.url = f"http://{host}:{self._httpd.server_address[1]}/"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="peerstep-view", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        self._thread.join()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._live.log.close()

    def __enter__(self) -> ViewServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler(live: _LiveRun) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's name for the GET handler
            url = urlparse(self.path)
            try:
                if url.path in ("/", "/index.html"):
                    model, _ = live.refresh()
                    self._send(run_page(model).encode(), "text/html; charset=utf-8")
                elif url.path == "/model.json":
                    after = parse_qs(url.query).get("after", ["0"])[0]
                    model, status = live.refresh()
                    changed = model["last_seq"] > int(after) if after.isdigit() else True
                    body = {"status": status, "last_seq": model["last_seq"],
                            "model": model if changed or status != "running" else None}
                    self._send(json.dumps(body, default=str).encode(), "application/json")
                else:
                    self.send_error(HTTPStatus.NOT_FOUND, "the view serves / and /model.json")
            except StepLogError as exc:
                self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR, str(exc))

        def _send(self, body: bytes, content_type: str) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # a request per second is not news
            return

    return Handler


def serve(run: str, directory: Path | None = None, port: int = 0, host: str = "127.0.0.1",
          interval: float = 1.5) -> ViewServer:
    """Serve the run's page and return at once; the page refreshes itself while the run is running."""
    log = open_run(run, directory)
    try:
        return ViewServer(_LiveRun(log, int(interval * 1000)), host, port)
    except BaseException:
        log.close()
        raise
