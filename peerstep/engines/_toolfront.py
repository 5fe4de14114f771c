"""Native OpenAI tool calls in front of a server that only speaks text (llama-cpp-python).

Stock agents (LDP's ``SimpleAgent``, LangGraph's prebuilt agent, the ``openai`` SDK's tool loop) send
``tools`` and read ``message.tool_calls``. llama-cpp-python with a GGUF's own chat template returns the
model's calls as plain text, and its pydantic request models refuse the history such agents send back
(an assistant message with ``content: null`` and ``tool_calls``: HTTP 500). ``ToolCallFront`` is an ASGI
middleware that does what vLLM's ``--enable-auto-tool-choice --tool-call-parser hermes`` does, in the
Hermes format the embedded Qwen2.5 models were trained on:

* the request's ``tools`` become the Hermes tool block in the system message; an assistant message's
  ``tool_calls`` become ``<tool_call>`` text and ``role: "tool"`` results become ``<tool_response>`` text
  in a user message, so the server sees plain chat it accepts;
* ``tool_choice: "required"`` or a named function constrains decoding to a call of an offered tool with
  its own argument schema (the server's JSON-schema grammar), as vLLM's structured output does;
  ``"none"`` offers no tools;
* the reply's text is read with peerstep's own call parser (``peerstep.client.parse_tool_calls``: tagged,
  fenced or bare JSON calls of offered tools) into ``message.tool_calls`` with ``finish_reason:
  "tool_calls"``; text before the first call stays ``content``.

A streamed request that offers tools is generated whole and then sent as stream chunks (a call cannot be
told from text until it is complete); every other request passes through untouched.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from peerstep.client._parsing import parse_tool_calls

Scope = MutableMapping[str, Any]
ASGIMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[ASGIMessage]]
Send = Callable[[ASGIMessage], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_DEFAULT_SYSTEM = "You are a helpful assistant."
_TOOL_BLOCK = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{tools}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{{"name": <function-name>, "arguments": <args-json-object>}}\n</tool_call>'
)


class ToolPlan:
    """What the reply to one request must be turned into: the tools offered, and whether to stream it."""

    def __init__(self, tools: list[dict[str, Any]], stream: bool, include_usage: bool, parallel: bool) -> None:
        self.tools = tools
        self.stream = stream
        self.include_usage = include_usage
        self.parallel = parallel

    @property
    def names(self) -> list[str]:
        return [t["function"]["name"] for t in self.tools]


def _text(content: Any) -> str:
    """Message content as text: OpenAI content parts are joined, ``null`` is empty."""
    if content is None:
        return ""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def _call_text(call: dict[str, Any]) -> str:
    fn = call.get("function") or {}
    args: Any = fn.get("arguments") or "{}"
    if isinstance(args, str):
        with contextlib.suppress(json.JSONDecodeError):  # else the agent's own text stays as it wrote it
            args = json.loads(args)
    return "<tool_call>\n" + json.dumps({"name": fn.get("name", ""), "arguments": args}) + "\n</tool_call>"


def _tool_specs(tools: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)


def text_messages(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation as plain chat: the tool block in the system message, calls and results as text."""
    out: list[dict[str, Any]] = []
    rest = list(messages)
    given = bool(rest) and rest[0].get("role") in ("system", "developer")
    system = _text(rest.pop(0).get("content")) if given else _DEFAULT_SYSTEM
    if tools:
        system = (system + "\n\n" if system else "") + _TOOL_BLOCK.format(tools=_tool_specs(tools))
    if tools or given:
        out.append({"role": "system", "content": system})
    for msg in rest:
        role = msg.get("role")
        if role == "tool":
            block = f"<tool_response>\n{_text(msg.get('content'))}\n</tool_response>"
            if out and out[-1].get("role") == "user" and out[-1].get("_tool_results"):
                out[-1]["content"] += "\n" + block  # consecutive results are one user turn
            else:
                out.append({"role": "user", "content": block, "_tool_results": True})
        elif role == "assistant":
            parts = [_text(msg.get("content")).strip()] + [_call_text(c) for c in msg.get("tool_calls") or []]
            out.append({"role": "assistant", "content": "\n".join(p for p in parts if p)})
        elif role == "developer":
            out.append({"role": "system", "content": _text(msg.get("content"))})
        else:
            out.append({"role": role, "content": _text(msg.get("content"))})
    for msg in out:
        msg.pop("_tool_results", None)
    return out


def _call_schema(tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool["function"]
    params = fn.get("parameters") or {"type": "object", "properties": {}}
    return {"type": "object", "properties": {"name": {"const": fn["name"]}, "arguments": params},
            "required": ["name", "arguments"]}


def _needs_translation(body: dict[str, Any]) -> bool:
    return bool(body.get("tools")) or any(
        m.get("role") == "tool" or m.get("tool_calls") for m in body.get("messages") or [] if isinstance(m, dict))


def text_request(body: dict[str, Any]) -> tuple[dict[str, Any], ToolPlan | None]:
    """The request the text-only server gets, and the plan for its reply (None: pass the reply through).

    Raises ``ValueError`` for a request that names a tool it does not offer.
    """
    tools = [t for t in body.get("tools") or [] if t.get("type", "function") == "function" and t.get("function")]
    choice = body.get("tool_choice", "auto")
    if choice == "none":
        tools_offered: list[dict[str, Any]] = []
    else:
        tools_offered = tools
    out = {k: v for k, v in body.items() if k not in ("tools", "tool_choice", "parallel_tool_calls", "functions",
                                                      "function_call")}
    out["messages"] = text_messages(body.get("messages") or [], tools_offered)
    if not tools_offered:
        return out, None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        forced = [t for t in tools_offered if t["function"]["name"] == name]
        if not forced:
            raise ValueError(f"tool_choice names {name!r}, which is not among the tools offered "
                             f"({', '.join(t['function']['name'] for t in tools_offered)})")
        out["response_format"] = {"type": "json_object", "schema": _call_schema(forced[0])}
    elif choice == "required":
        out["response_format"] = {"type": "json_object",
                                  "schema": {"anyOf": [_call_schema(t) for t in tools_offered]}}
    plan = ToolPlan(tools_offered, stream=bool(body.get("stream")),
                    include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
                    parallel=body.get("parallel_tool_calls", True) is not False)
    out["stream"] = False
    out.pop("stream_options", None)
    return out, plan


def _strip_opening(text: str) -> str | None:
    """Text the model wrote before its first call, without the call's opening tag or fence."""
    kept = text.rstrip()
    for opener in ("<tool_call>", "```json", "```"):
        if kept.endswith(opener):
            kept = kept[: -len(opener)].rstrip()
    return kept.strip() or None


def tool_reply(response: dict[str, Any], plan: ToolPlan) -> dict[str, Any]:
    """The server's text reply with the calls it holds as OpenAI ``tool_calls``."""
    names = plan.names
    python_takes_code = any(t["function"]["name"] == "python" and "code" in (
        (t["function"].get("parameters") or {}).get("properties") or {}) for t in plan.tools)
    for choice in response.get("choices") or []:
        message = choice.get("message") or {}
        text = _text(message.get("content"))
        calls = [c for c in parse_tool_calls(text, None, names).calls
                 if c.source != "code_block" or python_takes_code]
        if not calls:
            continue
        if not plan.parallel:
            calls = calls[:1]
        message["content"] = _strip_opening(text[: calls[0].start]) if calls[0].start is not None else None
        message["tool_calls"] = [c.openai() for c in calls]
        message["role"] = "assistant"
        choice["message"] = message
        if choice.get("finish_reason") in (None, "stop"):
            choice["finish_reason"] = "tool_calls"
    return response


def stream_events(response: dict[str, Any], plan: ToolPlan) -> list[bytes]:
    """A whole reply as OpenAI stream chunks (server-sent events), ending with ``[DONE]``."""
    base = {"id": response.get("id") or "chatcmpl-" + uuid.uuid4().hex, "object": "chat.completion.chunk",
            "created": response.get("created") or int(time.time()), "model": response.get("model", "")}
    chunks: list[dict[str, Any]] = []
    for choice in response.get("choices") or []:
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        delta: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
        chunks.append({**base, "choices": [{"index": index, "delta": delta, "finish_reason": None}]})
        for i, call in enumerate(message.get("tool_calls") or []):
            chunks.append({**base, "choices": [{"index": index, "finish_reason": None, "delta": {"tool_calls": [
                {"index": i, "id": call["id"], "type": "function", "function": call["function"]}]}}]})
        chunks.append({**base, "choices": [{"index": index, "delta": {},
                                            "finish_reason": choice.get("finish_reason") or "stop"}]})
    if plan.include_usage and response.get("usage") is not None:
        chunks.append({**base, "choices": [], "usage": response["usage"]})
    return [f"data: {json.dumps(c)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"]


class ToolCallFront:
    """ASGI middleware giving a text-only OpenAI-compatible app native tool calls (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (scope["type"] == "http" and scope.get("method") == "POST"
                and scope.get("path", "").rstrip("/").endswith("/chat/completions")):
            await self.app(scope, receive, send)
            return
        raw = await _read_body(receive)
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the request body must be a JSON object")
            if not _needs_translation(body):
                await self.app(scope, _replay(raw, receive), send)
                return
            request, plan = text_request(body)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            await _send_json(send, 400, {"error": {"message": f"bad request: {exc}", "type": "invalid_request_error",
                                                   "code": 400}})
            return
        new_raw = json.dumps(request).encode()
        inner_scope = dict(scope)
        inner_scope["headers"] = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"] + [
            (b"content-length", str(len(new_raw)).encode())]
        if plan is None:
            await self.app(inner_scope, _replay(new_raw, receive), send)
            return
        status, headers, body_out = await _call(self.app, inner_scope, _replay(new_raw, receive))
        if status != 200:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body_out})
            return
        reply = tool_reply(json.loads(body_out), plan)
        if not plan.stream:
            await _send_json(send, 200, reply)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
        for event in stream_events(reply, plan):
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


async def _read_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app ``body`` once, then waits on the real client (its disconnect)."""
    sent = False

    async def replay() -> ASGIMessage:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _call(app: ASGIApp, scope: Scope, receive: Receive) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Run ``app`` for one request and collect its whole response."""
    status = 500
    headers: list[tuple[bytes, bytes]] = []
    body: list[bytes] = []

    async def collect(message: ASGIMessage) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status, headers = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    await app(scope, receive, collect)
    return status, headers, b"".join(body)


async def _send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
