"""End-to-end: one real-model episode per built-in dataset runs to a scored FINAL step.

The small model's correctness is not asserted (that is what evals measure); what is asserted is that a real
model, the dataset's tools and its checker work together: the episode ends with a FINAL step whose reward is
exactly 0.0 or 1.0 and agrees with the dataset's own grading of the submitted answer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from peerstep import arun
from peerstep.agent import AgentConfig, Budget
from peerstep.engines import ManagedEngine
from peerstep.environments.builtin import MathDataset, ScienceDataset, TaskListDataset, WikiQADataset
from peerstep.steplog import StepKind, StepLog
from peerstep.tools.search import wikipedia_index

pytestmark = pytest.mark.slow


async def _scored_episode(engine: ManagedEngine, ds: TaskListDataset, runs: Path) -> None:
    client = engine.client()
    log = StepLog.create(directory=runs)
    try:
        result = await arun(ds.make(0), client, log=log, agent=AgentConfig(budget=Budget(max_steps=6)))
    finally:
        await client.close()
    finals = list(log.records(kind=StepKind.FINAL))
    log.close()
    assert result.error is None, result.error
    assert len(finals) == 1
    assert finals[0].reward in (0.0, 1.0)
    assert finals[0].reward == result.reward
    assert finals[0].data.get("gold") == ds.info(0).gold
    assert result.answer is not None
    assert ds.grade(0, result.answer) == (result.reward == 1.0)


async def test_math_episode(llamacpp_engine: ManagedEngine, runs_dir: Path) -> None:
    await _scored_episode(llamacpp_engine, MathDataset(seed=0, limit=1), runs_dir)


async def test_science_episode(llamacpp_engine: ManagedEngine, runs_dir: Path) -> None:
    await _scored_episode(llamacpp_engine, ScienceDataset(seed=0, limit=1), runs_dir)


async def test_wiki_qa_episode(llamacpp_engine: ManagedEngine, runs_dir: Path,
                               tmp_path_factory: pytest.TempPathFactory) -> None:
    index = wikipedia_index(tmp_path_factory.mktemp("wiki"))
    await _scored_episode(llamacpp_engine, WikiQADataset(seed=0, limit=1, python=False, index=index), runs_dir)
