"""A fast, scripted OpenAI-compatible chat server: real HTTP, no model, answers fixed by the conversation.

For tests and benchmarks of orchestration (executors, clusters, routing), where the model must not be the
bottleneck and results must be the same wherever an episode runs. For a question "What is A*B?" a trajectory
first calls the calculator on ``A*B``, then submits the product, or the product plus one when its sampling
seed is 2 mod 3 (so votes and peers have something to disagree about). Replies depend only on the
messages and the seed, so two runs of one eval give the same answers. ``delay`` slows each reply; ``episodes``
counts requests by the ``x-peerstep-episode`` header (what a sticky router would see); ``client_ports`` counts
them by the client's TCP port, so a test can tell which process a request came from (its open connections). A
request with ``"stream": true`` gets the same reply as server-sent events, word by word, so the real client's
streaming path can be checked over real HTTP too (``peerstep.testing.model.check_model_client``).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_QUESTION = re.compile(r"What is (\d+)\s*\*\s*(\d+)")
_USAGE = {"prompt_tokens": 20, "completion_tokens": 12, "total_tokens": 32}


def scripted_reply(messages: list[dict[str, Any]], seed: int) -> str:
    """The reply a trajectory with sampling ``seed`` gets after ``messages``."""
    found = next((m for msg in messages if msg.get("role") == "user"
                  for m in [_QUESTION.search(str(msg.get("content", "")))] if m), None)
    a, b = (int(found.group(1)), int(found.group(2))) if found else (6, 7)
    if not any(msg.get("role") == "assistant" for msg in messages):
        return json.dumps({"name": "calculate", "arguments": {"expression": f"{a}*{b}"}})
    answer = a * b + (1 if seed % 3 == 2 else 0)
    return json.dumps({"name": "submit_answer", "arguments": {"answer": str(answer)}})


class ScriptedServer:
    """``/v1/models`` and ``/v1/chat/completions`` (plain or streamed) on 127.0.0.1; a context manager."""

    def __init__(self, delay: float = 0.0, model: str = "scripted", port: int = 0,
                 reply: Callable[[list[dict[str, Any]], int], str] = scripted_reply) -> None:
        """``reply(messages, seed)`` writes each answer (default: ``scripted_reply``)."""
        self.delay, self.model, self.requests, self.reply = delay, model, 0, reply
        self.episodes: Counter[str] = Counter()
        self.client_ports: Counter[int] = Counter()
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def _json(self, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _events(self, text: str, usage: bool) -> None:
                """``text`` as an OpenAI-compatible stream: a chunk per word, one with the finish reason, the usage
                when asked (``stream_options.include_usage``), then ``[DONE]``."""
                head = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": outer.model}
                words = text.split(" ")
                chunks: list[dict[str, Any]] = [
                    {**head, "choices": [{"index": 0, "finish_reason": None,
                                          "delta": {"content": w if i == len(words) - 1 else w + " ",
                                                    **({"role": "assistant"} if i == 0 else {})}}]}
                    for i, w in enumerate(words)]
                chunks.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                if usage:
                    chunks.append({**head, "choices": [], "usage": _USAGE})
                data = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks).encode() + b"data: [DONE]\n\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._json({"object": "list", "data": [{"id": outer.model, "object": "model", "created": 0,
                                                         "owned_by": "peerstep-testing"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                with outer._lock:
                    outer.requests += 1
                    outer.episodes[self.headers.get("x-peerstep-episode", "")] += 1
                    outer.client_ports[int(self.client_address[1])] += 1
                if outer.delay:
                    time.sleep(outer.delay)
                text = outer.reply(body.get("messages", []), int(body.get("seed") or 0))
                if body.get("stream"):
                    self._events(text, bool((body.get("stream_options") or {}).get("include_usage")))
                    return
                self._json({"id": "c", "object": "chat.completion", "created": 0, "model": outer.model,
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                         "finish_reason": "stop"}],
                            "usage": _USAGE})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
