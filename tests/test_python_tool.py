"""The python tool in an episode: code blocks run in the real bubblewrap sandbox, state persists."""

from __future__ import annotations

import os
from pathlib import Path

from peerstep import arun
from peerstep.environments import QuestionEnvironment
from peerstep.steplog import StepKind, StepLog
from tests.scripted import ScriptedClient


async def test_code_blocks_run_in_the_sandbox_and_keep_state(tmp_path: Path) -> None:
    client = ScriptedClient([
        "Let me compute.\n```python\nloaves = 245 * 28\nprint(loaves)\n```",
        "```python\nimport os\nprint(loaves * 3.75, os.getuid())\n```",
        '{"name": "submit_answer", "arguments": {"answer": "25725"}}',
    ])
    env = QuestionEnvironment("Revenue?", gold="25725", python=True)
    log = StepLog.create(directory=tmp_path)
    result = await arun(env, client, log=log)
    assert result.reward == 1.0
    assert client.requests_seen[1]["messages"][-1]["content"].startswith("```output\n6860\n```\n")
    # state persisted (loaves) and the code ran as an unprivileged uid of its own (one per sandbox)
    value, uid = client.requests_seen[2]["messages"][-1]["content"].removeprefix("```output\n").split()[:2]
    assert value == "25725.0" and int(uid) not in (0, os.getuid())
    with StepLog(log.path, log.run_id) as reader:
        calls = [r.tool for r in reader.records(kind=StepKind.TOOL_CALL) if r.tool]
    assert [(c.name, c.source) for c in calls[:2]] == [("python", "code_block"), ("python", "code_block")]
    assert env.python is not None and env.python.sandbox is None  # closed with the episode


async def test_python_errors_are_observations(tmp_path: Path) -> None:
    client = ScriptedClient([
        "```python\nprint(1/0)\n```",
        "```python\nwhile True: pass\n```",
        '{"name": "submit_answer", "arguments": {"answer": "none"}}',
    ])
    env = QuestionEnvironment("q?", python=True)
    env.python.timeout_s = 2  # type: ignore[union-attr]
    await arun(env, client, log=StepLog.create(directory=tmp_path))
    assert "ZeroDivisionError" in client.requests_seen[1]["messages"][-1]["content"]
    assert "Timed out after 2 s" in client.requests_seen[2]["messages"][-1]["content"]


async def test_sessions_take_warm_sandboxes_from_a_pool_and_share_nothing() -> None:
    from peerstep.tools.python import PythonSession
    from peerstep.tools.sandbox import SandboxPool, make_sandbox

    async with SandboxPool(make_sandbox, size=2) as pool:
        assert pool.idle == 2
        first, second = PythonSession(pool=pool), PythonSession(pool=pool)
        assert "7" in await first.python("secret = 7\nprint(secret)")
        assert pool.idle == 1  # taken warm, not started cold
        out = await second.python("print('secret' in globals())")
        assert "False" in out
        await first.close()
        await second.close()
        assert first.sandbox is None and second.sandbox is None
