"""The tool-call front: a text-only OpenAI server behind it answers stock clients with native tool calls.

The server here is a scripted text-only app (it records what it was sent and replies with fixed text); the
client is the ``openai`` SDK over HTTP (httpx's ASGI transport). The real llama.cpp server behind the front
is exercised in tests/e2e/test_native_tools_e2e.py.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from peerstep.engines._toolfront import ToolCallFront, text_messages, text_request

CALC = {"type": "function", "function": {"name": "calculator", "description": "Evaluate an expression.",
                                         "parameters": {"type": "object", "properties": {"expr": {"type": "string"}},
                                                        "required": ["expr"]}}}
SUBMIT = {"type": "function", "function": {"name": "submit_answer", "description": "Submit the final answer.",
                                           "parameters": {"type": "object",
                                                          "properties": {"answer": {"type": "string"}},
                                                          "required": ["answer"]}}}


class TextServer:
    """An OpenAI-compatible app that only speaks text: it replies with ``reply`` and records each request."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.requests: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        request = json.loads(body or b"{}")
        self.requests.append(request)
        if request.get("stream"):
            chunk = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m",
                     "choices": [{"index": 0, "delta": {"role": "assistant", "content": self.reply},
                                  "finish_reason": "stop"}]}
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/event-stream")]})
            events = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
            await send({"type": "http.response.body", "body": events})
            return
        payload = json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
                              "choices": [{"index": 0, "message": {"role": "assistant", "content": self.reply},
                                           "finish_reason": "stop"}],
                              "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})


def _client(server: TextServer) -> openai.AsyncOpenAI:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=ToolCallFront(server)), base_url="http://front")
    return openai.AsyncOpenAI(base_url="http://front/v1", api_key="x", http_client=http, max_retries=0)


USER = [{"role": "user", "content": "What is 1234 * 5678?"}]


@pytest.mark.parametrize("reply", [
    '<tool_call>\n{"name": "calculator", "arguments": {"expr": "1234 * 5678"}}\n</tool_call>',
    '```json\n{"name": "calculator", "arguments": {"expr": "1234 * 5678"}}\n```',
    '{"name": "calculator", "arguments": {"expr": "1234 * 5678"}}',
])
async def test_a_call_written_as_text_comes_back_as_a_native_tool_call(reply: str) -> None:
    server = TextServer(reply)
    out = await _client(server).chat.completions.create(model="m", messages=USER, tools=[CALC, SUBMIT])
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.function.name == "calculator"
    assert json.loads(call.function.arguments) == {"expr": "1234 * 5678"}
    assert call.id.startswith("call_")
    # the text server saw no `tools`, but the Hermes tool block with both schemas in its system message
    sent = server.requests[0]
    assert "tools" not in sent and "tool_choice" not in sent
    assert sent["messages"][0]["role"] == "system"
    assert "<tools>" in sent["messages"][0]["content"] and '"submit_answer"' in sent["messages"][0]["content"]


async def test_text_before_the_call_stays_content_and_plain_answers_pass_unchanged() -> None:
    server = TextServer('Let me compute it.\n<tool_call>\n{"name": "calculator", "arguments": {"expr": "2+2"}}'
                        "\n</tool_call>")
    out = await _client(server).chat.completions.create(model="m", messages=USER, tools=[CALC])
    assert out.choices[0].message.content == "Let me compute it."
    assert out.choices[0].message.tool_calls
    plain = TextServer("The answer is 4.")
    out = await _client(plain).chat.completions.create(model="m", messages=USER, tools=[CALC])
    assert out.choices[0].message.content == "The answer is 4."
    assert not out.choices[0].message.tool_calls and out.choices[0].finish_reason == "stop"


async def test_a_call_of_a_tool_not_offered_is_text() -> None:
    server = TextServer('{"name": "calculate", "arguments": {"expression": "2+2"}}')
    out = await _client(server).chat.completions.create(model="m", messages=USER, tools=[CALC])
    assert not out.choices[0].message.tool_calls
    assert out.choices[0].message.content == '{"name": "calculate", "arguments": {"expression": "2+2"}}'


async def test_the_tool_history_a_stock_agent_sends_back_is_accepted_as_text() -> None:
    server = TextServer("The product is 7006652.")
    history = [*USER,
               {"role": "assistant", "content": None, "tool_calls": [
                   {"id": "call_1", "type": "function",
                    "function": {"name": "calculator", "arguments": '{"expr": "1234 * 5678"}'}}]},
               {"role": "tool", "tool_call_id": "call_1", "name": "calculator", "content": "7006652"}]
    out = await _client(server).chat.completions.create(model="m", messages=history, tools=[CALC])
    assert out.choices[0].message.content == "The product is 7006652."
    sent = server.requests[0]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert all(isinstance(m["content"], str) for m in sent)  # no null content for the server to refuse
    assert sent[2][
        "content"] == '<tool_call>\n{"name": "calculator", "arguments": {"expr": "1234 * 5678"}}\n</tool_call>'
    assert sent[3]["content"] == "<tool_response>\n7006652\n</tool_response>"


def test_consecutive_tool_results_are_one_user_turn() -> None:
    msgs = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": "", "tool_calls": []},
            {"role": "tool", "tool_call_id": "a", "content": "1"},
            {"role": "tool", "tool_call_id": "b", "content": "2"}]
    out = text_messages(msgs, [])
    assert out[-1] == {"role": "user",
                       "content": "<tool_response>\n1\n</tool_response>\n<tool_response>\n2\n</tool_response>"}
    assert out[0] == {"role": "user", "content": "q"}  # no tools and no system message: none is added


def test_required_and_named_tool_choice_constrain_decoding_to_an_offered_call() -> None:
    body = {"model": "m", "messages": USER, "tools": [CALC, SUBMIT], "tool_choice": "required"}
    request, plan = text_request(body)
    assert plan is not None
    schema = request["response_format"]["schema"]
    assert [alt["properties"]["name"]["const"] for alt in schema["anyOf"]] == ["calculator", "submit_answer"]
    assert schema["anyOf"][0]["properties"]["arguments"] == CALC["function"]["parameters"]
    named, _ = text_request({**body, "tool_choice": {"type": "function", "function": {"name": "submit_answer"}}})
    assert named["response_format"]["schema"]["properties"]["name"] == {"const": "submit_answer"}
    none, plan = text_request({**body, "tool_choice": "none"})
    assert plan is None and "<tools>" not in json.dumps(none["messages"])
    with pytest.raises(ValueError, match="not among the tools offered"):
        text_request({**body, "tool_choice": {"type": "function", "function": {"name": "search"}}})


async def test_a_streamed_request_with_tools_gets_the_call_as_stream_chunks() -> None:
    server = TextServer('<tool_call>\n{"name": "submit_answer", "arguments": {"answer": "4"}}\n</tool_call>')
    stream = await _client(server).chat.completions.create(
        model="m", messages=USER, tools=[SUBMIT], stream=True, stream_options={"include_usage": True})
    deltas, finish, usage = [], None, None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            deltas.extend(choice.delta.tool_calls or [])
            finish = choice.finish_reason or finish
    assert [(d.function.name if d.function else None) for d in deltas] == ["submit_answer"]
    assert deltas[0].function is not None and json.loads(deltas[0].function.arguments or "") == {"answer": "4"}
    assert finish == "tool_calls" and usage is not None and usage.completion_tokens == 5
    assert server.requests[0]["stream"] is False  # generated whole, then streamed


async def test_requests_without_tools_pass_through_untouched() -> None:
    server = TextServer("hello")
    stream = await _client(server).chat.completions.create(model="m", messages=USER, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == "hello"
    assert server.requests[0]["messages"] == USER and server.requests[0]["stream"] is True


async def test_a_body_that_is_not_json_is_a_400_naming_the_problem() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=ToolCallFront(TextServer("x"))),
                                 base_url="http://front") as http:
        resp = await http.post("/v1/chat/completions", content=b"{not json")
        assert resp.status_code == 400
        assert "bad request" in resp.json()["error"]["message"]
        resp = await http.post("/v1/chat/completions", json={"model": "m", "messages": USER, "tools": [CALC],
                                                            "tool_choice": {"type": "function",
                                                                            "function": {"name": "nope"}}})
        assert resp.status_code == 400 and "'nope'" in resp.json()["error"]["message"]
