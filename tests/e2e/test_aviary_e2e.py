"""End-to-end: the real embedded model plays Aviary's calculator environment in process.

Only the plumbing is checked (the episode runs to a final step and the step log records it with
the reward and the tool calls); whether the small model gets the arithmetic right is not.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from peerstep import arun
from peerstep.agent import AgentConfig, Budget
from peerstep.engines import ManagedEngine
from peerstep.environments.aviary import aviary_calculator
from peerstep.steplog import StepKind, StepLog

pytestmark = pytest.mark.slow


async def test_real_model_on_aviary_calculator(llamacpp_engine: ManagedEngine, runs_dir: Path) -> None:
    dataset = aviary_calculator()
    info = dataset.info(0)
    client = llamacpp_engine.client()
    log = StepLog.create(directory=runs_dir, meta={"dataset": dataset.name, "task_id": info.task_id})
    try:
        result = await arun(dataset.make(0), client, agent=AgentConfig(budget=Budget(max_steps=4)), log=log)
    finally:
        await client.close()
    assert result.error is None
    assert result.gold == info.gold == "408"

    with StepLog.open(log.run_id, runs_dir) as reader:
        recs = list(reader.records())
    kinds = [r.kind for r in recs]
    assert kinds[0] == StepKind.RUN_START and kinds[-1] == StepKind.RUN_END
    assert recs[0].data["tools"] == ["calculator", "submit_answer"]  # Aviary's tools reached the agent
    reasons = [r for r in recs if r.kind == StepKind.REASON]
    assert reasons and all(r.model == llamacpp_engine.served_name for r in reasons)
    calls = [r for r in recs if r.kind == StepKind.TOOL_CALL]
    assert calls and all(c.tool is not None and c.tool.name in ("calculator", "submit_answer") for c in calls)
    observations = [r for r in recs if r.kind == StepKind.OBSERVATION and r.tool is not None]
    assert {o.tool.call_id for o in observations if o.tool} <= {c.tool.call_id for c in calls if c.tool}
    final = [r for r in recs if r.kind == StepKind.FINAL]
    assert len(final) == 1 and final[0].reward is not None and final[0].data["gold"] == "408"
    assert result.reward == final[0].reward
