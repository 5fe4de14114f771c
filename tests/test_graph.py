"""Graph logic of the reason/act loop, driven by a scripted model (no server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from peerstep import arun
from peerstep._errors import ModelServerError
from peerstep.agent import AgentConfig, Budget
from peerstep.environments import Environment, QuestionEnvironment
from peerstep.steplog import StepKind, StepLog
from peerstep.tools import Tool
from tests.scripted import ScriptedClient, native_call


def kinds(log_path: Path) -> list[str]:
    with StepLog(log_path, log_path.stem) as log:
        return [r.kind.value for r in log.records()]


async def test_text_tool_call_then_answer(tmp_path: Path) -> None:
    client = ScriptedClient([
        '{"name": "calculate", "arguments": {"expression": "48123 * 9177 - 12% * 5,000"}}',
        '```json\n{"name": "submit_answer", "arguments": {"answer": "441624171"}}\n```',
    ])
    log = StepLog.create(directory=tmp_path)
    env = QuestionEnvironment("What is 48123 * 9177 minus 12% of 5,000?", gold="441624171")
    result = await arun(env, client, log=log)
    assert result.answer == "441624171"
    assert result.reward == 1.0
    assert result.steps == 2
    assert kinds(log.path) == ["run_start", "reason", "tool_call", "observation", "reason", "tool_call",
                               "observation", "final", "barrier", "aggregate", "run_end"]
    # the calculator's exact result reached the model as a user turn (the call was written as text)
    second = client.requests_seen[1]["messages"]
    assert second[-1]["role"] == "user"
    assert "441624171" in second[-1]["content"]
    obs = next(iter(StepLog(log.path, log.run_id).records(kind=StepKind.OBSERVATION)))
    assert obs.tool is not None and obs.tool.ok is True and obs.tool.name == "calculate"
    call = next(iter(StepLog(log.path, log.run_id).records(kind=StepKind.TOOL_CALL)))
    assert call.tool is not None and call.tool.source == "json_text"


async def test_native_tool_calls_keep_tool_role(tmp_path: Path) -> None:
    client = ScriptedClient([[native_call("calculate", expression="2**10")], [native_call("submit_answer",
                                                                                          answer="1024")]])
    log = StepLog.create(directory=tmp_path)
    result = await arun(QuestionEnvironment("2 to the 10th?", gold="1024"), client, log=log)
    assert result.reward == 1.0
    sent = client.requests_seen[1]["messages"]
    assert sent[-2]["role"] == "assistant" and sent[-2]["tool_calls"][0]["function"]["name"] == "calculate"
    assert sent[-1] == {"role": "tool", "tool_call_id": "call_calculate", "name": "calculate", "content": "1024"}


async def test_only_first_text_call_runs(tmp_path: Path) -> None:
    client = ScriptedClient([
        '{"name": "calculate", "arguments": {"expression": "2+2"}}\n'
        '{"name": "submit_answer", "arguments": {"answer": "5"}}',
        '{"name": "submit_answer", "arguments": {"answer": "4"}}',
    ])
    result = await arun(QuestionEnvironment("2+2?", gold="4"), client, log=StepLog.create(directory=tmp_path))
    assert result.answer == "4" and result.reward == 1.0
    assert "Only your first tool call was run" in client.requests_seen[1]["messages"][-1]["content"]


async def test_unparseable_call_gets_format_hint(tmp_path: Path) -> None:
    client = ScriptedClient([
        '{"name": "calculate", "arguments": {"expression": "1+1"',  # cut off JSON
        '{"name": "submit_answer", "arguments": {"answer": "2"}}',
    ])
    log = StepLog.create(directory=tmp_path)
    result = await arun(QuestionEnvironment("1+1?"), client, log=log)
    assert result.answer == "2"
    hint = client.requests_seen[1]["messages"][-1]["content"]
    assert "not understood" in hint and '"name"' in hint
    assert "error" in kinds(log.path)


async def test_no_tool_call_is_an_observation(tmp_path: Path) -> None:
    client = ScriptedClient(["I think it is 4.", '{"name": "submit_answer", "arguments": {"answer": "4"}}'])
    result = await arun(QuestionEnvironment("2+2?"), client, log=StepLog.create(directory=tmp_path))
    assert result.answer == "4"
    hint = client.requests_seen[1]["messages"][-1]["content"]
    assert hint.startswith("Your reply had no tool call, so nothing was run.") and "Tools: calculate." in hint


async def test_budget_forces_named_submit(tmp_path: Path) -> None:
    client = ScriptedClient([
        '{"name": "calculate", "arguments": {"expression": "1+1"}}',
        [native_call("submit_answer", answer="2")],
    ])
    config = AgentConfig(budget=Budget(max_steps=1))
    log = StepLog.create(directory=tmp_path)
    result = await arun(QuestionEnvironment("1+1?"), client, agent=config, log=log)
    assert result.answer == "2"
    forced = client.requests_seen[1]
    assert forced["tool_choice"] == {"type": "function", "function": {"name": "submit_answer"}}
    assert "no budget left" in forced["messages"][-1]["content"]
    assert "budget" in kinds(log.path)
    with StepLog(log.path, log.run_id) as reader:
        final = next(iter(reader.records(kind=StepKind.FINAL)))
    assert final.data["forced"] is True


async def test_forced_answer_falls_back_to_text(tmp_path: Path) -> None:
    """A server that ignores the named tool_choice: the reply text becomes the answer."""
    client = ScriptedClient(["Thinking.", "42"])
    config = AgentConfig(budget=Budget(max_steps=1))
    result = await arun(QuestionEnvironment("6*7?"), client, agent=config,
                               log=StepLog.create(directory=tmp_path))
    assert result.answer == "42"


async def test_token_budget(tmp_path: Path) -> None:
    client = ScriptedClient(["word " * 50, "43"])
    config = AgentConfig(budget=Budget(max_tokens=10))
    log = StepLog.create(directory=tmp_path)
    await arun(QuestionEnvironment("q?"), client, agent=config, log=log)
    with StepLog(log.path, log.run_id) as reader:
        budget = list(reader.records(kind=StepKind.BUDGET))
    assert budget and "max_tokens" in (budget[0].text or "")


async def test_dead_server_mid_run_keeps_earlier_steps(tmp_path: Path) -> None:
    client = ScriptedClient([
        '{"name": "calculate", "arguments": {"expression": "3*3"}}',
        ModelServerError("model server unreachable at http://127.0.0.1:9/v1 after 5 attempts"),
    ])
    log = StepLog.create(directory=tmp_path)
    result = await arun(QuestionEnvironment("3*3?"), client, log=log)
    assert result.error is not None and "unreachable" in result.error
    assert result.answer is None
    ks = kinds(log.path)
    assert ks[:4] == ["run_start", "reason", "tool_call", "observation"]
    assert "error" in ks
    with StepLog(log.path, log.run_id) as reader:
        assert reader.meta()["status"] == "error"


async def test_tool_exception_is_observation(tmp_path: Path) -> None:
    def explode(x: int) -> str:
        """Always fails.

        Args:
            x: anything
        """
        raise RuntimeError("kaboom")

    client = ScriptedClient(['{"name": "explode", "arguments": {"x": 1}}',
                             '{"name": "explode", "arguments": {"x": "not a number"}}',
                             '{"name": "submit_answer", "arguments": {"answer": "none"}}'])
    env = QuestionEnvironment("q?", tools=[Tool(explode)])
    result = await arun(env, client, log=StepLog.create(directory=tmp_path))
    assert result.answer == "none"
    assert "RuntimeError: kaboom" in client.requests_seen[1]["messages"][-1]["content"]
    assert "explode got 'not a number' for 'x'" in client.requests_seen[2]["messages"][-1]["content"]


class RaisingEnv(Environment):
    async def reset(self) -> tuple[list[dict[str, Any]], list[Tool]]:
        return [{"role": "user", "content": "go"}], []

    async def step(self, action: dict[str, Any]) -> tuple[list[dict[str, Any]], float, bool, bool]:
        raise ConnectionError("environment backend went away")


async def test_environment_exception_ends_run_cleanly(tmp_path: Path) -> None:
    client = ScriptedClient(['{"name": "anything", "arguments": {}}'])
    log = StepLog.create(directory=tmp_path)
    result = await arun(RaisingEnv(), client, log=log)
    assert result.error is not None and "environment backend went away" in result.error
    ks = kinds(log.path)
    assert ks[-4:] == ["error", "barrier", "aggregate", "run_end"]


async def test_step_records_chain_parents(tmp_path: Path) -> None:
    client = ScriptedClient(['{"name": "calculate", "arguments": {"expression": "1+2"}}',
                             '{"name": "submit_answer", "arguments": {"answer": "3"}}'])
    log = StepLog.create(directory=tmp_path)
    await arun(QuestionEnvironment("1+2?"), client, log=log)
    with StepLog(log.path, log.run_id) as reader:
        recs = [r for r in reader.records() if r.trajectory_id >= 0]  # run-level records have no parent
    ids = {r.step_id for r in recs}
    assert recs[0].parent_id is None
    assert all(r.parent_id in ids for r in recs[1:])
    reason = next(r for r in recs if r.kind == StepKind.REASON)
    assert reason.model == "scripted" and reason.sampling is not None and reason.sampling["temperature"] == 0.0


def test_question_validation() -> None:
    from peerstep._errors import InputError

    with pytest.raises(InputError, match="empty"):
        QuestionEnvironment("   ")
    with pytest.raises(InputError, match="200,000 characters"):
        QuestionEnvironment("x" * 200_000)


async def test_text_after_first_call_is_cut_from_context(tmp_path: Path) -> None:
    """Invented results after a call must not stay in the context the model sees next."""
    client = ScriptedClient([
        'Step 1:\n```json\n{"name": "calculate", "arguments": {"expression": "48123 * 9177"}}\n```\n'
        '{"result": "441624171"}\n{"name": "submit_answer", "arguments": {"answer": "441624171"}}',
        '{"name": "submit_answer", "arguments": {"answer": "441624771"}}',
    ])
    log = StepLog.create(directory=tmp_path)
    await arun(QuestionEnvironment("48123*9177?"), client, log=log)
    context = client.requests_seen[1]["messages"]
    assert context[-2] == {"role": "assistant", "content": 'Step 1:\n```json\n{"name": "calculate", "arguments": '
                           '{"expression": "48123 * 9177"}}\n```'}
    with StepLog(log.path, log.run_id) as reader:
        reason = next(iter(reader.records(kind=StepKind.REASON)))
    assert '{"result": "441624171"}' in (reason.text or "")  # the log keeps the raw output


async def test_repeated_call_is_flagged(tmp_path: Path) -> None:
    call = '{"name": "calculate", "arguments": {"expression": "6*7"}}'
    client = ScriptedClient([call, call, '{"name": "submit_answer", "arguments": {"answer": "42"}}'])
    await arun(QuestionEnvironment("6*7?"), client, log=StepLog.create(directory=tmp_path))
    assert "already made this exact call" not in client.requests_seen[1]["messages"][-1]["content"]
    assert "already made this exact call" in client.requests_seen[2]["messages"][-1]["content"]


async def test_a_call_repeated_three_times_forces_the_answer(tmp_path: Path) -> None:
    call = '{"name": "calculate", "arguments": {"expression": "6*7"}}'
    client = ScriptedClient([call, call, call, [native_call("submit_answer", answer="42")]])
    log = StepLog.create(directory=tmp_path)
    result = await arun(QuestionEnvironment("6*7?", gold="42"), client, log=log)
    assert result.answer == "42" and result.steps == 4
    assert client.requests_seen[3]["tool_choice"] == {"type": "function", "function": {"name": "submit_answer"}}
    with StepLog(log.path, log.run_id) as reader:
        budget = list(reader.records(kind=StepKind.BUDGET))
    assert len(budget) == 1 and "made 3 times" in (budget[0].text or "")
