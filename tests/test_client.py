"""ModelClient against a real local OpenAI-compatible HTTP server that misbehaves on cue.

The server is stdlib ``http.server`` on 127.0.0.1 in a thread. Each test scripts a queue of
behaviours (answer, fail with a status, drop the connection, drop a stream half-way); every
request it receives is recorded so the tests can count attempts and inspect request bodies.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from peerstep._errors import ModelNotFoundError, ModelServerError
from peerstep.client import STREAM_INTERRUPTED, ModelClient, SamplingParams

MODEL = "tiny-model"
OTHER_MODEL = "other-model"
MESSAGES = [{"role": "user", "content": "Say hello."}]


# --- the scripted server ------------------------------------------------------------------------


@dataclass
class Reply:
    """A successful completion. ``choices[i]`` holds the text chunks of choice ``i`` (one SSE chunk each)."""

    choices: list[list[str]] = field(default_factory=lambda: [["Hello", ",", " world"]])
    tool_calls: list[dict[str, Any]] | None = None  # choice 0, non-streaming
    tool_call_deltas: list[dict[str, Any]] | None = None  # choice 0, streaming
    usage: tuple[int, int] | None = (11, 3)  # (prompt, completion); None omits usage
    logprobs: list[list[float]] | None = None  # per choice, one per chunk
    finish_reason: str = "stop"


@dataclass
class Behaviour:
    kind: str  # "ok" | "status" | "drop" | "drop_mid_stream" | "no_finish"
    status: int = 200
    reply: Reply = field(default_factory=Reply)
    events_before_drop: int = 0
    headers: dict[str, str] = field(default_factory=dict)


def ok(reply: Reply | None = None) -> Behaviour:
    return Behaviour("ok", reply=reply or Reply())


def status(code: int, headers: dict[str, str] | None = None) -> Behaviour:
    return Behaviour("status", status=code, headers=headers or {})


def drop() -> Behaviour:
    """Read the request, then close the socket without answering."""
    return Behaviour("drop")


def drop_mid_stream(events: int, reply: Reply | None = None) -> Behaviour:
    """Send the headers and the first ``events`` SSE events of a stream, then close the socket."""
    return Behaviour("drop_mid_stream", reply=reply or Reply(), events_before_drop=events)


def no_finish(reply: Reply | None = None) -> Behaviour:
    """Stream the reply's content, then ``[DONE]`` with no finish reason: what llama-cpp-python's server sends to a
    stream it interrupts because another request arrived (``interrupt_requests``, on by default)."""
    return Behaviour("no_finish", reply=reply or Reply())


@dataclass
class Request:
    method: str
    path: str
    body: dict[str, Any] | None


class FakeOpenAIServer:
    """``GET /v1/models`` and ``POST /v1/chat/completions`` with a per-test queue of behaviours.

    Each request (to either endpoint) takes the next behaviour from the queue; an empty queue answers OK.
    A chat request for a model that is not served gets OpenAI's 404 ``model_not_found``.
    """

    def __init__(self, models: tuple[str, ...] = (MODEL, OTHER_MODEL)) -> None:
        self.models = list(models)
        self.script: deque[Behaviour] = deque()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def queue(self, *behaviours: Behaviour) -> None:
        with self._lock:
            self.script.extend(behaviours)

    def take(self, request: Request) -> Behaviour:
        with self._lock:
            self.requests.append(request)
            return self.script.popleft() if self.script else ok()

    @property
    def chat_bodies(self) -> list[dict[str, Any]]:
        return [r.body or {} for r in self.requests if r.path == "/v1/chat/completions"]

    @property
    def paths(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(_Handler):
            state = server

        return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: FakeOpenAIServer

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    # --- endpoints ---------------------------------------------------------------------------
    def do_GET(self) -> None:
        behaviour = self.state.take(Request("GET", self.path, None))
        if self._fault(behaviour):
            return
        if self.path != "/v1/models":
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found", "code": 404}})
            return
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "test"} for m in self.state.models]
        self._json(200, {"object": "list", "data": data})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        behaviour = self.state.take(Request("POST", self.path, body))
        if self._fault(behaviour):
            return
        if self.path != "/v1/chat/completions":
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found", "code": 404}})
            return
        if body.get("model") not in self.state.models:
            self._json(404, {"error": {"message": f"The model `{body.get('model')}` does not exist.",
                                       "type": "NotFoundError", "param": "model", "code": "model_not_found"}})
            return
        if body.get("stream"):
            self._stream(body, behaviour)
        else:
            self._json(200, _completion(body, behaviour.reply))

    # --- behaviours --------------------------------------------------------------------------
    def _fault(self, behaviour: Behaviour) -> bool:
        if behaviour.kind == "status":
            payload = {"error": {"message": f"scripted failure {behaviour.status}", "type": "server_error",
                                 "param": None, "code": behaviour.status}}
            self._json(behaviour.status, payload, behaviour.headers)
            return True
        if behaviour.kind == "drop":
            self._drop()
            return True
        return False

    def _drop(self) -> None:
        self.close_connection = True
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)

    def _json(self, code: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, body: dict[str, Any], behaviour: Behaviour) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events = _stream_events(body, behaviour.reply, include_usage, finish=behaviour.kind != "no_finish")
        for k, event in enumerate(events):
            if behaviour.kind == "drop_mid_stream" and k == behaviour.events_before_drop:
                self._drop()
                return
            data = f"data: {event}\n\n".encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


def _choice_texts(body: dict[str, Any], reply: Reply) -> list[list[str]]:
    n = int(body.get("n") or 1)
    return [reply.choices[i % len(reply.choices)] for i in range(n)]


def _logprob_entries(tokens: list[str], values: list[float]) -> dict[str, Any]:
    return {"content": [{"token": t, "logprob": v, "bytes": None, "top_logprobs": []}
                        for t, v in zip(tokens, values, strict=True)]}


def _usage(reply: Reply) -> dict[str, int] | None:
    if reply.usage is None:
        return None
    prompt, completion = reply.usage
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _completion(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    choices = []
    for i, chunks in enumerate(_choice_texts(body, reply)):
        message: dict[str, Any] = {"role": "assistant", "content": "".join(chunks) or None}
        if i == 0 and reply.tool_calls:
            message["tool_calls"] = reply.tool_calls
        logprobs = None
        if reply.logprobs is not None and i < len(reply.logprobs):
            logprobs = _logprob_entries(chunks, reply.logprobs[i])
        choices.append({"index": i, "message": message, "finish_reason": reply.finish_reason, "logprobs": logprobs})
    out: dict[str, Any] = {"id": "chatcmpl-test", "object": "chat.completion", "created": 0,
                           "model": body["model"], "choices": choices}
    if (usage := _usage(reply)) is not None:
        out["usage"] = usage
    return out


def _stream_events(body: dict[str, Any], reply: Reply, include_usage: bool, finish: bool = True) -> list[str]:
    """The SSE ``data`` payloads of one streamed completion, in order, ending with ``[DONE]``; without ``finish``
    the chunk carrying the finish reasons is left out."""
    texts = _choice_texts(body, reply)

    def chunk(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> str:
        payload: dict[str, Any] = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0,
                                   "model": body["model"], "choices": choices}
        if usage is not None:
            payload["usage"] = usage
        return json.dumps(payload)

    events = [chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                     for i in range(len(texts))])]
    for k in range(max(len(t) for t in texts)):
        for i, parts in enumerate(texts):
            if k >= len(parts):
                continue
            choice: dict[str, Any] = {"index": i, "delta": {"content": parts[k]}, "finish_reason": None}
            if reply.logprobs is not None and i < len(reply.logprobs):
                choice["logprobs"] = _logprob_entries([parts[k]], [reply.logprobs[i][k]])
            events.append(chunk([choice]))
    for delta in reply.tool_call_deltas or []:
        events.append(chunk([{"index": 0, "delta": {"tool_calls": [delta]}, "finish_reason": None}]))
    if finish:
        events.append(chunk([{"index": i, "delta": {}, "finish_reason": reply.finish_reason}
                             for i in range(len(texts))]))
    if include_usage and (usage := _usage(reply)) is not None:
        events.append(chunk([], usage))
    events.append("[DONE]")
    return events


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    srv = FakeOpenAIServer()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def make_client(base_url: str, model: str = MODEL, max_retries: int = 3) -> ModelClient:
    return ModelClient(base_url, model, timeout=5.0, max_retries=max_retries, backoff=0.001, max_backoff=0.005)


@pytest.fixture
async def client(server: FakeOpenAIServer) -> AsyncIterator[ModelClient]:
    c = make_client(server.base_url)
    try:
        yield c
    finally:
        await c.close()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound once by the OS, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TokenRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[int, str]] = []

    def __call__(self, index: int, delta: str) -> None:
        self.events.append((index, delta))

    def texts(self, index: int = 0) -> list[str]:
        return [d for i, d in self.events if i == index]


# --- retries ------------------------------------------------------------------------------------

RETRYABLE = [
    pytest.param(lambda: status(503), id="503"),
    pytest.param(lambda: status(429, {"Retry-After": "0"}), id="429"),
    pytest.param(lambda: status(500), id="500"),
    pytest.param(drop, id="connection-drop"),
]


@pytest.mark.parametrize("fault", RETRYABLE)
async def test_non_streaming_retries_then_succeeds(
    server: FakeOpenAIServer, client: ModelClient, fault: Any
) -> None:
    server.queue(fault(), fault())
    [completion] = await client.chat(MESSAGES)
    assert completion.text == "Hello, world"
    assert completion.finish_reason == "stop"
    assert len(server.chat_bodies) == 3
    assert server.chat_bodies[0] == server.chat_bodies[2]  # the retry re-sends the same request


@pytest.mark.parametrize("fault", RETRYABLE)
async def test_streaming_retries_then_succeeds(server: FakeOpenAIServer, client: ModelClient, fault: Any) -> None:
    server.queue(fault())
    tokens = TokenRecorder()
    [completion] = await client.chat(MESSAGES, on_token=tokens)
    assert completion.text == "Hello, world"
    assert tokens.texts() == ["Hello", ",", " world"]
    assert len(server.chat_bodies) == 2
    assert all(body["stream"] is True for body in server.chat_bodies)


async def test_stream_dropped_half_way_is_retried(server: FakeOpenAIServer, client: ModelClient) -> None:
    # events: role chunk, "Hello", ",", " world", finish, usage, [DONE]; drop after "Hello" and again after ","
    server.queue(drop_mid_stream(2), drop_mid_stream(3))
    tokens = TokenRecorder()
    [completion] = await client.chat(MESSAGES, on_token=tokens)
    assert len(server.chat_bodies) == 3
    assert completion.text == "Hello, world"  # only the complete attempt makes the result
    assert completion.completion_tokens == 3
    # the partial attempts' tokens were already delivered; each break is announced before the retry starts over
    cut = STREAM_INTERRUPTED
    assert tokens.texts() == ["Hello", cut, "Hello", ",", cut, "Hello", ",", " world"]


async def test_gives_up_after_max_retries_on_status(server: FakeOpenAIServer, client: ModelClient) -> None:
    server.queue(*[status(503) for _ in range(10)])
    with pytest.raises(ModelServerError) as info:
        await client.chat(MESSAGES)
    assert len(server.chat_bodies) == 4  # the first attempt + max_retries=3
    message = str(info.value)
    assert server.base_url in message
    assert "HTTP 503" in message
    assert client.requests == 0


async def test_gives_up_after_max_retries_on_dropped_connections(server: FakeOpenAIServer) -> None:
    server.queue(*[drop() for _ in range(10)])
    c = make_client(server.base_url, max_retries=2)
    try:
        with pytest.raises(ModelServerError) as info:
            await c.chat(MESSAGES, on_token=TokenRecorder())
    finally:
        await c.close()
    assert len(server.chat_bodies) == 3
    message = str(info.value)
    assert f"unreachable at {server.base_url} after 3 attempts" in message


async def test_gives_up_after_max_retries_on_mid_stream_drops(server: FakeOpenAIServer, client: ModelClient) -> None:
    server.queue(*[drop_mid_stream(2) for _ in range(10)])
    with pytest.raises(ModelServerError) as info:
        await client.chat(MESSAGES, on_token=TokenRecorder())
    assert len(server.chat_bodies) == 4
    assert server.base_url in str(info.value)


async def test_stream_without_finish_reason_is_retried_not_answered(
    server: FakeOpenAIServer, client: ModelClient
) -> None:
    # llama-cpp-python's interrupted stream: [DONE] with no finish reason, here once with no content at all (the
    # empty reply that was recorded as an answer) and once with part of the reply
    server.queue(no_finish(Reply(choices=[[]])), no_finish(Reply(choices=[["Hel"]])))
    tokens = TokenRecorder()
    [completion] = await client.chat(MESSAGES, on_token=tokens)
    assert len(server.chat_bodies) == 3
    assert completion.text == "Hello, world"
    assert completion.finish_reason == "stop"
    # the partial attempt was announced as interrupted before the retry started over
    assert tokens.texts() == ["Hel", STREAM_INTERRUPTED, "Hello", ",", " world"]


async def test_streams_always_cut_off_give_one_clear_error(server: FakeOpenAIServer, client: ModelClient) -> None:
    server.queue(*[no_finish() for _ in range(10)])
    with pytest.raises(ModelServerError) as info:
        await client.chat(MESSAGES, on_token=TokenRecorder())
    assert len(server.chat_bodies) == 4  # the first attempt + max_retries=3
    message = str(info.value)
    assert "\n" not in message
    assert server.base_url in message
    assert "without a finish reason" in message
    assert "--interrupt_requests False" in message  # says how to fix a llama-cpp-python server
    assert client.requests == 0  # nothing was counted as an answer


async def test_400_is_not_retried(server: FakeOpenAIServer, client: ModelClient) -> None:
    server.queue(status(400), ok())
    with pytest.raises(ModelServerError) as info:
        await client.chat(MESSAGES)
    assert not isinstance(info.value, ModelNotFoundError)
    assert len(server.chat_bodies) == 1
    assert "HTTP 400" in str(info.value)
    assert server.base_url in str(info.value)
    assert "scripted failure 400" in str(info.value)


async def test_404_for_a_served_model_is_a_server_error_not_model_not_found(
    server: FakeOpenAIServer, client: ModelClient
) -> None:
    server.queue(status(404))
    with pytest.raises(ModelServerError) as info:
        await client.chat(MESSAGES)
    assert not isinstance(info.value, ModelNotFoundError)
    assert "answered 404" in str(info.value)
    # not retried: the 404 is followed by one look at /models to tell the two cases apart
    assert server.paths == ["POST /v1/chat/completions", "GET /v1/models"]


async def test_unreachable_server() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    c = make_client(url, max_retries=1)
    try:
        with pytest.raises(ModelServerError) as chat_info:
            await c.chat(MESSAGES)
        with pytest.raises(ModelServerError) as check_info:
            await c.check()
    finally:
        await c.close()
    for info in (chat_info, check_info):
        message = str(info.value)
        assert "unreachable" in message
        assert url in message
        assert "after 2 attempts" in message


async def test_check_retries_the_models_endpoint(server: FakeOpenAIServer, client: ModelClient) -> None:
    server.queue(status(503), drop())
    await client.check()
    assert server.paths == ["GET /v1/models"] * 3
    assert await client.list_models() == [MODEL, OTHER_MODEL]


# --- unknown model ------------------------------------------------------------------------------


async def test_unknown_model_check(server: FakeOpenAIServer) -> None:
    c = make_client(server.base_url, model="missing-model")
    try:
        with pytest.raises(ModelNotFoundError) as info:
            await c.check()
    finally:
        await c.close()
    message = str(info.value)
    assert "'missing-model'" in message
    assert server.base_url in message
    assert f"available: {MODEL}, {OTHER_MODEL}" in message


@pytest.mark.parametrize("streaming", [False, True])
async def test_unknown_model_chat(server: FakeOpenAIServer, streaming: bool) -> None:
    c = make_client(server.base_url, model="missing-model")
    try:
        with pytest.raises(ModelNotFoundError) as info:
            await c.chat(MESSAGES, on_token=TokenRecorder() if streaming else None)
    finally:
        await c.close()
    assert f"available: {MODEL}, {OTHER_MODEL}" in str(info.value)
    assert server.paths == ["POST /v1/chat/completions", "GET /v1/models"]  # no retries


# --- request bodies -----------------------------------------------------------------------------

TOOLS = [{"type": "function", "function": {"name": "calculator", "description": "Evaluate arithmetic.",
                                           "parameters": {"type": "object",
                                                          "properties": {"expression": {"type": "string"}},
                                                          "required": ["expression"]}}}]


@pytest.mark.parametrize("streaming", [False, True])
async def test_request_body_pass_through(server: FakeOpenAIServer, client: ModelClient, streaming: bool) -> None:
    sampling = SamplingParams(
        temperature=0.7, top_p=0.9, max_tokens=64, stop=["</answer>", "\n\n"], seed=1234, top_k=20, min_p=0.05,
        logprobs=True, top_logprobs=3,
        extra_body={"continue_final_message": True, "add_generation_prompt": False},
    )
    choice = {"type": "function", "function": {"name": "calculator"}}
    completions = await client.chat(MESSAGES, sampling=sampling, tools=TOOLS, tool_choice=choice, n=2,
                                    on_token=TokenRecorder() if streaming else None,
                                    response_format={"type": "text"})
    assert len(completions) == 2
    [body] = server.chat_bodies
    assert body["model"] == MODEL
    assert body["messages"] == MESSAGES
    assert body["temperature"] == 0.7
    assert body["top_p"] == 0.9
    assert body["max_tokens"] == 64
    assert body["n"] == 2
    assert body["stop"] == ["</answer>", "\n\n"]
    assert body["seed"] == 1234
    assert body["logprobs"] is True
    assert body["top_logprobs"] == 3
    assert body["tools"] == TOOLS
    assert body["tool_choice"] == choice
    assert body["response_format"] == {"type": "text"}
    # extra_body keys are merged into the top level of the JSON, not nested
    assert body["top_k"] == 20
    assert body["min_p"] == 0.05
    assert body["continue_final_message"] is True
    assert body["add_generation_prompt"] is False
    assert "extra_body" not in body
    if streaming:
        assert body["stream"] is True
        assert body["stream_options"] == {"include_usage": True}
    else:
        assert "stream" not in body or body["stream"] is False


async def test_request_body_defaults_leave_optional_fields_out(server: FakeOpenAIServer, client: ModelClient) -> None:
    await client.chat(MESSAGES, tool_choice="required")  # tool_choice without tools is not sent
    await client.chat(MESSAGES, sampling=SamplingParams(seed=None))
    first, second = server.chat_bodies
    assert first["seed"] == 0
    assert first["temperature"] == 0.0
    assert first["max_tokens"] == 512
    assert first["n"] == 1
    for key in ("stop", "logprobs", "top_logprobs", "tools", "tool_choice", "top_k", "min_p", "extra_body"):
        assert key not in first, key
    assert "seed" not in second


async def test_a_client_without_seed_support_leaves_the_seed_out(server: FakeOpenAIServer) -> None:
    client = ModelClient(server.base_url, MODEL, supports_seed=False, max_retries=0)
    try:
        await client.chat(MESSAGES, sampling=SamplingParams(seed=7, temperature=0.6))
    finally:
        await client.close()
    [body] = server.chat_bodies
    assert "seed" not in body and body["temperature"] == 0.6


def test_endpoint_turns_seeds_off_for_vllm_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from peerstep import Endpoint
    from peerstep.engines import EngineConfig, VllmEngine

    gpu = Endpoint(base_url="http://127.0.0.1:1/v1", model="m", engine="vllm")
    gpu.engine = VllmEngine(EngineConfig(model="m", device="cuda"))
    gpu.engine.port = 1  # as after start()
    assert gpu.client().supports_seed and gpu.client().supports_continue
    cpu = Endpoint(base_url="http://127.0.0.1:1/v1", model="m", engine="vllm")
    cpu.engine = VllmEngine(EngineConfig(model="m", device="cpu"))
    cpu.engine.port = 1
    assert not cpu.client().supports_seed
    llama = Endpoint(base_url="http://127.0.0.1:1/v1", model="m", engine="llamacpp")
    assert llama.client().supports_seed and not llama.client().supports_continue
    # a vLLM server reached by URL: judged by whether this machine has a GPU
    monkeypatch.setattr("peerstep.engines._vllm.has_gpu", lambda: False)
    assert not Endpoint(base_url="http://127.0.0.1:1/v1", model="m", engine="vllm").client().supports_seed
    monkeypatch.setattr("peerstep.engines._vllm.has_gpu", lambda: True)
    assert Endpoint(base_url="http://127.0.0.1:1/v1", model="m", engine="vllm").client().supports_seed


# --- streaming ----------------------------------------------------------------------------------


async def test_streaming_tool_call_deltas_are_assembled(server: FakeOpenAIServer, client: ModelClient) -> None:
    deltas = [
        {"index": 0, "id": "call_a", "type": "function", "function": {"name": "calcu", "arguments": ""}},
        {"index": 0, "function": {"name": "lator", "arguments": "{\"expression\": "}},
        {"index": 1, "id": "call_b", "type": "function", "function": {"name": "search", "arguments": "{}"}},
        {"index": 0, "function": {"arguments": "\"6*7\"}"}},
    ]
    server.queue(ok(Reply(choices=[[]], tool_call_deltas=deltas, finish_reason="tool_calls")))
    tokens = TokenRecorder()
    [completion] = await client.chat(MESSAGES, tools=TOOLS, on_token=tokens)
    assert tokens.events == []
    assert completion.text == ""
    assert completion.finish_reason == "tool_calls"
    assert completion.tool_calls == [
        {"id": "call_a", "type": "function",
         "function": {"name": "calculator", "arguments": "{\"expression\": \"6*7\"}"}},
        {"id": "call_b", "type": "function", "function": {"name": "search", "arguments": "{}"}},
    ]


async def test_non_streaming_tool_calls(server: FakeOpenAIServer, client: ModelClient) -> None:
    calls = [{"id": "call_a", "type": "function", "function": {"name": "calculator", "arguments": "{\"e\": 1}"}}]
    server.queue(ok(Reply(choices=[[]], tool_calls=calls, finish_reason="tool_calls")))
    [completion] = await client.chat(MESSAGES, tools=TOOLS)
    assert completion.text == ""
    assert completion.finish_reason == "tool_calls"
    assert completion.tool_calls == calls


async def test_streaming_n_choices_are_separated_by_index(server: FakeOpenAIServer, client: ModelClient) -> None:
    server.queue(ok(Reply(choices=[["Al", "pha", "!"], ["Be", "ta"]], usage=(9, 10))))
    tokens = TokenRecorder()
    completions = await client.chat(MESSAGES, n=2, on_token=tokens)
    assert [c.index for c in completions] == [0, 1]
    assert [c.text for c in completions] == ["Alpha!", "Beta"]
    assert tokens.texts(0) == ["Al", "pha", "!"]
    assert tokens.texts(1) == ["Be", "ta"]
    assert tokens.events[:4] == [(0, "Al"), (1, "Be"), (0, "pha"), (1, "ta")]  # arrival order is kept
    assert [c.prompt_tokens for c in completions] == [9, 9]
    # the server's one total for all choices is kept, split by how much each choice streamed
    assert sum(c.completion_tokens for c in completions) == 10
    assert [c.completion_tokens for c in completions] == [6, 4]
    assert client.completion_tokens == 10
    assert client.prompt_tokens == 9


async def test_streaming_n_choices_without_usage_count_chunks(server: FakeOpenAIServer, client: ModelClient) -> None:
    server.queue(ok(Reply(choices=[["Al", "pha", "!"], ["Be", "ta"]], usage=None)))
    completions = await client.chat(MESSAGES, n=2, on_token=TokenRecorder())
    assert [c.completion_tokens for c in completions] == [3, 2]
    assert [c.prompt_tokens for c in completions] == [0, 0]


async def test_streaming_uses_the_final_usage_chunk(server: FakeOpenAIServer, client: ModelClient) -> None:
    server.queue(ok(Reply(usage=(21, 42))))
    [completion] = await client.chat(MESSAGES, on_token=TokenRecorder())
    assert completion.prompt_tokens == 21
    assert completion.completion_tokens == 42  # not the 3 content chunks
    assert completion.model == MODEL


async def test_streaming_without_usage_counts_content_chunks(server: FakeOpenAIServer, client: ModelClient) -> None:
    server.queue(ok(Reply(choices=[["a", "b", "c", "d", "e"]], usage=None)))
    [completion] = await client.chat(MESSAGES, on_token=TokenRecorder())
    assert completion.text == "abcde"
    assert completion.completion_tokens == 5  # the empty role chunk does not count
    assert completion.prompt_tokens == 0


async def test_non_streaming_n_choices_split_usage(server: FakeOpenAIServer, client: ModelClient) -> None:
    server.queue(ok(Reply(choices=[["one"], ["two"]], usage=(4, 9))))
    completions = await client.chat(MESSAGES, n=2)
    assert [c.text for c in completions] == ["one", "two"]
    assert [c.prompt_tokens for c in completions] == [4, 4]
    assert [c.completion_tokens for c in completions] == [5, 4]
    assert client.completion_tokens == 9


# --- logprobs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [False, True])
async def test_mean_logprob(server: FakeOpenAIServer, client: ModelClient, streaming: bool) -> None:
    server.queue(ok(Reply(logprobs=[[-0.5, -1.0, -3.0]])))
    [completion] = await client.chat(MESSAGES, sampling=SamplingParams(logprobs=True),
                                     on_token=TokenRecorder() if streaming else None)
    assert completion.token_logprobs == [-0.5, -1.0, -3.0]
    assert completion.mean_logprob == pytest.approx(-1.5)


async def test_no_logprobs_gives_none(server: FakeOpenAIServer, client: ModelClient) -> None:
    [completion] = await client.chat(MESSAGES)
    assert completion.token_logprobs is None
    assert completion.mean_logprob is None


# --- accounting ---------------------------------------------------------------------------------


async def test_accounting_accumulates_across_calls(server: FakeOpenAIServer, client: ModelClient) -> None:
    server.queue(ok(Reply(usage=(11, 3))), ok(Reply(usage=(5, 7))), status(400), ok(Reply(usage=None)))
    await client.chat(MESSAGES)
    assert (client.prompt_tokens, client.completion_tokens, client.requests) == (11, 3, 1)
    await client.chat(MESSAGES, on_token=TokenRecorder())
    assert (client.prompt_tokens, client.completion_tokens, client.requests) == (16, 10, 2)
    with pytest.raises(ModelServerError):
        await client.chat(MESSAGES)
    assert (client.prompt_tokens, client.completion_tokens, client.requests) == (16, 10, 2)  # failures don't count
    await client.chat(MESSAGES, on_token=TokenRecorder())  # no usage: 3 content chunks
    assert (client.prompt_tokens, client.completion_tokens, client.requests) == (16, 13, 3)
    await client.list_models()
    assert client.requests == 3  # only chat calls are counted


async def test_retried_call_counts_once(server: FakeOpenAIServer, client: ModelClient) -> None:
    server.queue(status(503), drop_mid_stream(2), ok(Reply(usage=(8, 2))))
    await client.chat(MESSAGES, on_token=TokenRecorder())
    assert len(server.chat_bodies) == 3
    assert (client.prompt_tokens, client.completion_tokens, client.requests) == (8, 2, 1)


# --- where the base URL comes from, and a base URL without /v1 --------------------------------------


@pytest.fixture
def no_base_url_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for variable in ("PEERSTEP_BASE_URL", "OPENAI_BASE_URL", "PEERSTEP_MODEL"):
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


def dead_url() -> str:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_a_base_url_without_v1_says_so(server: FakeOpenAIServer, no_base_url_env: pytest.MonkeyPatch) -> None:
    from peerstep import Endpoint

    root = server.base_url.removesuffix("/v1")
    with pytest.raises(ModelServerError) as info:
        Endpoint(base_url=root).open()
    assert str(info.value) == (f"{root} answered 404 for /models; OpenAI-compatible servers serve under /v1: "
                               f"try --base-url {root}/v1")
    # with a model named, open() still asks for the models, and fails the same way before any episode
    with pytest.raises(ModelServerError, match=f"try --base-url {root}/v1$"):
        Endpoint(base_url=root + "/", model=MODEL).open()
    # the right URL works
    assert Endpoint(base_url=server.base_url).open().model == MODEL


async def test_a_chat_request_without_v1_says_so(server: FakeOpenAIServer) -> None:
    root = server.base_url.removesuffix("/v1")
    c = make_client(root)
    try:
        with pytest.raises(ModelServerError) as info:
            await c.chat(MESSAGES)
    finally:
        await c.close()
    assert str(info.value) == (f"{root} answered 404 for /chat/completions; OpenAI-compatible servers serve under "
                               f"/v1: try --base-url {root}/v1")
    # a 404 under /v1 is not blamed on the path
    c = make_client(server.base_url)
    server.queue(status(404))
    try:
        with pytest.raises(ModelServerError) as info:
            await c.list_models()
    finally:
        await c.close()
    assert "answered 404" in str(info.value) and "/v1:" not in str(info.value)


def test_openai_base_url_is_used_when_peerstep_base_url_is_not(server: FakeOpenAIServer,
                                                              no_base_url_env: pytest.MonkeyPatch) -> None:
    from peerstep import Endpoint

    no_base_url_env.setenv("OPENAI_BASE_URL", server.base_url)
    endpoint = Endpoint()
    assert (endpoint.base_url, endpoint.base_url_source) == (server.base_url, "OPENAI_BASE_URL")
    client = endpoint.open()
    assert client.base_url == server.base_url and client.model == MODEL and endpoint.engine is None
    # PEERSTEP_BASE_URL wins over it, and an argument over both
    no_base_url_env.setenv("PEERSTEP_BASE_URL", "http://127.0.0.1:1/v1")
    endpoint = Endpoint()
    assert (endpoint.base_url, endpoint.base_url_source) == ("http://127.0.0.1:1/v1", "PEERSTEP_BASE_URL")
    endpoint = Endpoint(base_url=server.base_url)
    assert (endpoint.base_url, endpoint.base_url_source) == (server.base_url, "argument")


@pytest.mark.parametrize("model", [None, MODEL])
def test_a_dead_openai_base_url_fails_at_once_without_starting_an_engine(
        no_base_url_env: pytest.MonkeyPatch, model: str | None) -> None:
    import time

    from peerstep import Endpoint

    url = dead_url()
    no_base_url_env.setenv("OPENAI_BASE_URL", url)
    endpoint = Endpoint(model=model)
    started = time.perf_counter()
    with pytest.raises(ModelServerError) as info:
        endpoint.open()
    assert time.perf_counter() - started < 10
    message = str(info.value)
    assert "\n" not in message and f"unreachable at {url}" in message
    assert message.endswith(f"(the base URL {url} comes from OPENAI_BASE_URL; unset it to let peerstep start its "
                            "embedded engine)")
    assert endpoint.engine is None
