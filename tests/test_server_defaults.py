"""What a run leaves unset comes from the server's engine, the same way whichever entry point starts it.

The CLI's `solve` used to decide two things itself (constrained tool calls on a vLLM engine it started, and the
context window of the embedded engine), so `peerstep solve`, `peerstep.run()` and `peerstep eval` ran the same
question differently. Now the engine declares them, the client carries them, and the runner applies them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from peerstep import AgentConfig, Endpoint, StepLog, arun
from peerstep.engines import EngineConfig, LlamaCppEngine, VllmEngine
from peerstep.evals import ClientSpec
from peerstep.testing.model import ScriptedClient, native_call


def _client(tool_choice: str | None, context: int | None, replies: list) -> ScriptedClient:
    client = ScriptedClient(replies)
    client.tool_choice, client.context_tokens = tool_choice, context
    return client


def test_a_run_takes_unset_settings_from_the_server(tmp_path: Path) -> None:
    client = _client("required", 4096, [[native_call("submit_answer", answer="4")]])
    result = asyncio.run(arun("What is 2+2?", client, python=False, runs_dir=tmp_path))
    assert result.answer == "4"
    assert client.requests_seen[0]["tool_choice"] == "required"
    with StepLog.open(result.run_id, tmp_path) as log:
        agent = log.meta()["agent"]
    assert agent["tool_choice"] == "required" and agent["context_tokens"] == 4096


def test_settings_the_caller_gives_win_over_the_servers(tmp_path: Path) -> None:
    client = _client("required", 4096, ["The answer is 4."])
    result = asyncio.run(arun("What is 2+2?", client, python=False, agent=AgentConfig(tool_choice="auto",
                                                                                        context_tokens=2048),
                              runs_dir=tmp_path))
    assert result.answer == "4" and client.requests_seen[0]["tool_choice"] is None
    with StepLog.open(result.run_id, tmp_path) as log:
        agent = log.meta()["agent"]
    assert agent["tool_choice"] == "auto" and agent["context_tokens"] == 2048


def test_a_server_that_says_nothing_gets_text_calls_and_no_window(tmp_path: Path) -> None:
    client = _client(None, None, ["The answer is 4."])
    result = asyncio.run(arun("What is 2+2?", client, python=False, runs_dir=tmp_path))
    with StepLog.open(result.run_id, tmp_path) as log:
        agent = log.meta()["agent"]
    assert agent["tool_choice"] == "auto" and agent["context_tokens"] is None


def test_engines_declare_their_defaults_and_only_a_started_engine_passes_them_on(tmp_path: Path) -> None:
    config = EngineConfig(model="qwen2.5-coder-1.5b-instruct", context_length=6144, cache_dir=tmp_path)
    # today's program-first loop was measured with text calls only: both built-in engines declare "auto"
    assert LlamaCppEngine(config).tool_choice == "auto" and VllmEngine(config).tool_choice == "auto"
    named = Endpoint(base_url="http://127.0.0.1:9/v1", model="m", engine="vllm").client()
    assert named.tool_choice is None and named.context_tokens is None  # a server given by URL is not known

    class Constrained(VllmEngine):  # an engine that declares constrained calls passes that on
        tool_choice = "required"

    started = Endpoint(model="m", engine="vllm", engine_config=config)
    started.engine = Constrained(config)
    started.engine.port, started.base_url = 9, "http://127.0.0.1:9/v1"  # as after start()
    client = started.client()
    assert client.tool_choice == "required" and client.context_tokens == 6144
    spec = ClientSpec.of(client)  # what an eval's workers build their clients from
    assert (spec.client().tool_choice, spec.client().context_tokens) == ("required", 6144)
