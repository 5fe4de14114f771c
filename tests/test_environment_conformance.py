"""Every registered dataset, and the environments in the package, keep the environment error contract
(``peerstep.testing.environment``); a broken environment fails the suite."""

from __future__ import annotations

from typing import Any

import pytest

from peerstep.environments import Environment, QuestionEnvironment, load_dataset
from peerstep.registry import DATASETS
from peerstep.testing.environment import check_dataset, check_environment
from peerstep.tools import Tool

NEEDS_FILE = {"taskfile"}  # built from a user's file; tests/test_taskfile.py runs it on the example file


@pytest.mark.parametrize("name", [n for n in DATASETS.names() if n not in NEEDS_FILE])
async def test_registered_dataset_keeps_the_contract(name: str) -> None:
    dataset = load_dataset(name, seed=0, limit=2, python=False)
    assert await check_dataset(dataset) == {}


async def test_task_files_keep_the_contract() -> None:
    from pathlib import Path

    from peerstep.environments.taskfile import TaskFileDataset

    example = Path(__file__).parent.parent / "examples" / "tasks.yaml"
    assert await check_dataset(TaskFileDataset(example, python=False)) == {}


async def test_question_environment_keeps_the_contract() -> None:
    assert await check_environment(lambda: QuestionEnvironment("What is 2+2?", gold="4")) == {}


class RaisesOnUnknownTool(QuestionEnvironment):
    async def step(self, action: dict[str, Any]) -> Any:
        calls = action.get("tool_calls") or []
        if calls and calls[0]["function"]["name"] not in self.tools:
            raise KeyError(calls[0]["function"]["name"])
        return await super().step(action)


class CloseTwiceFails(QuestionEnvironment):
    closed = False

    async def close(self) -> None:
        if self.closed:
            raise RuntimeError("already closed")
        self.closed = True


async def test_the_suite_fails_a_broken_environment() -> None:
    failures = await check_environment(lambda: RaisesOnUnknownTool("q?"))
    assert "raised KeyError" in failures["unknown_tool"]
    assert "close" in await check_environment(lambda: CloseTwiceFails("q?"))

    def no_finish() -> Environment:
        env = QuestionEnvironment("q?", tools=[])
        env.tools = {name: t for name, t in env.tools.items() if name != "submit_answer"}
        return env

    assert "opening" in await check_environment(no_finish)
    _ = Tool  # the suite is typed on Environment only
