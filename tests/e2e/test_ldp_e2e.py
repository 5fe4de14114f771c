"""A client peerstep did not write: LDP's stock ``SimpleAgent`` and ``RolloutManager``, through fhaviary's
``TaskDatasetClient``, on the ``math`` dataset served by ``peerstep serve-env``, with the model behind the
server ``peerstep serve`` starts (llama.cpp with the tool-call front; vLLM with its hermes tool parser).

The client side is ``examples/ldp_rollout.py`` run as the README shows it; nothing of peerstep runs in it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from peerstep.engines import ManagedEngine

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def env_server() -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "peerstep", "serve-env", "math", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/info", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass  # not listening yet
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "serve-env did not start in 120 s"
        time.sleep(0.5)
    yield url
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)


def _rollouts(env_url: str, engine: ManagedEngine, tasks: int, max_steps: int) -> list[dict[str, object]]:
    assert engine.base_url is not None
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "ldp_rollout.py"), "--env-url", env_url, "--base-url",
         engine.base_url, "--model", engine.served_name, "--tasks", str(tasks), "--max-steps", str(max_steps)],
        capture_output=True, text=True, timeout=1500, env={**os.environ, "LITELLM_LOG": "ERROR"})
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_stock_ldp_agent_calls_tools_and_earns_a_reward(env_server: str, engine: ManagedEngine) -> None:
    vllm = engine.name == "vllm"
    rows = _rollouts(env_server, engine, tasks=1 if vllm else 3, max_steps=3 if vllm else 6)
    *episodes, summary = rows
    assert summary["episodes"] == len(episodes) == (1 if vllm else 3)
    assert not any(e["failure"] for e in episodes), episodes
    # native tool calls came back from the server: every episode's transitions carry them
    assert all(isinstance(e["tool_calls"], int) and e["tool_calls"] >= 1 for e in episodes), episodes
    assert {"calculate", "submit_answer"} & {t for e in episodes for t in e["tools"]}  # type: ignore[attr-defined]
    if not vllm:  # vLLM's CPU build runs one short episode for time; the reward is asked of the default engine
        assert summary["positive"] >= 1, episodes


def test_openai_sdk_tool_loop_gets_native_calls_and_its_history_accepted(engine: ManagedEngine) -> None:
    """The ``openai`` SDK's own tool loop: tools in, ``tool_calls`` out, the call and its result sent back (an
    assistant message with ``content: null``, then ``role: "tool"``: llama-cpp-python alone answered that with HTTP
    500) and answered again. What the 1.5B model says next is its business (measured: it often repeats the call);
    the protocol is what is tested."""
    import openai

    client = openai.OpenAI(base_url=engine.base_url, api_key="none", timeout=600, max_retries=0)
    tools = [{"type": "function", "function": {
        "name": "multiply", "description": "Multiply two integers.",
        "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                       "required": ["a", "b"]}}}]
    messages: list[dict[str, object]] = [{"role": "user", "content": "What is 1234 times 5678?"}]
    first = client.chat.completions.create(  # type: ignore[call-overload]
        model=engine.served_name, messages=messages, tools=tools, tool_choice="required", temperature=0, max_tokens=100)
    assert first.choices[0].finish_reason == "tool_calls"
    [call] = first.choices[0].message.tool_calls or []
    assert call.type == "function" and call.function.name == "multiply" and call.id
    args = json.loads(call.function.arguments)
    assert sorted(args) == ["a", "b"] and all(isinstance(v, int) for v in args.values())
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": str(args["a"] * args["b"])}]
    second = client.chat.completions.create(  # type: ignore[call-overload]
        model=engine.served_name, messages=messages, tools=tools, temperature=0, max_tokens=100)
    reply = second.choices[0]
    assert reply.finish_reason in ("stop", "tool_calls", "length")
    for again in reply.message.tool_calls or []:  # a call again is still a well-formed call of an offered tool
        assert again.function.name == "multiply" and json.loads(again.function.arguments)
    assert reply.message.tool_calls or reply.message.content is not None
