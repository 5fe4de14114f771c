"""End-to-end: the real model uses the sandboxed Python tool and the Wikipedia search tool."""

from __future__ import annotations

from pathlib import Path

import pytest

from peerstep import arun
from peerstep.engines import ManagedEngine
from peerstep.environments import QuestionEnvironment
from peerstep.steplog import StepKind, StepLog
from peerstep.tools import calculator_tool
from peerstep.tools.search import search_tools, wikipedia_index

pytestmark = pytest.mark.slow


async def _run(engine: ManagedEngine, env: QuestionEnvironment, runs: Path) -> tuple[str | None, list[str]]:
    client = engine.client()
    log = StepLog.create(directory=runs)
    try:
        result = await arun(env, client, log=log)
    finally:
        await client.close()
    with StepLog.open(log.run_id, runs) as reader:
        used = [r.tool.name for r in reader.records(kind=StepKind.OBSERVATION) if r.tool is not None and r.tool.ok]
    return result.answer, used


async def test_python_tool_in_the_sandbox(llamacpp_engine: ManagedEngine, runs_dir: Path) -> None:
    env = QuestionEnvironment("Use Python to compute the sum of all integers from 1 to 1000 that are divisible by "
                              "3 or by 5.", gold="234168", tools=[], python=True)
    answer, used = await _run(llamacpp_engine, env, runs_dir)
    assert "python" in used
    assert answer is not None and "234168" in answer


async def test_search_tool_over_wikipedia(llamacpp_engine: ManagedEngine, runs_dir: Path) -> None:
    env = QuestionEnvironment("Search the encyclopedia: on what date did the Titanic sink?",
                              tools=[calculator_tool(), *search_tools(wikipedia_index())])
    answer, used = await _run(llamacpp_engine, env, runs_dir)
    assert "search" in used
    assert answer is not None and "1912" in answer
