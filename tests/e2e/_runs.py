"""One real run shared by the end-to-end tests of the strategies that decide between sampled answers."""

from __future__ import annotations

from pathlib import Path

from peerstep import EpisodeResult, arun
from peerstep.agent import AgentConfig
from peerstep.engines import ManagedEngine
from peerstep.environments import QuestionEnvironment
from peerstep.graphs.parallel import ParallelConfig
from peerstep.steplog import StepLog, StepRecord

# a two-step computation the 1.5B model gets right only sometimes at temperature 0.6: samples disagree often enough
# for a vote or a judge to have something to decide
PENS_QUESTION = "A shop packs 4837 boxes a day, each holding 293 pens, and sells 19 loose pens. How many pens is that?"
PENS_GOLD = "1417260"


async def run_pens(engine: ManagedEngine, runs_dir: Path, strategy: str, n: int,
                   parallel: ParallelConfig | None = None, agent: AgentConfig | None = None,
                   python: bool = False) -> tuple[EpisodeResult, list[StepRecord]]:
    """Run ``strategy`` (with ``parallel`` in place of its own settings, when given) on the pens question with the
    real model, with the calculator (and, with ``python``, the sandboxed Python and the program-first opening); the
    result and every record of its log."""
    client = engine.client()
    log = StepLog.create(directory=runs_dir)
    try:
        task = PENS_QUESTION if python else (lambda: QuestionEnvironment(PENS_QUESTION, gold=PENS_GOLD))
        result = await arun(task, client, strategy=strategy, n=n, parallel=parallel, agent=agent, log=log,
                            gold=PENS_GOLD if python else None, python=python)
    finally:
        await client.close()
    with StepLog.open(log.run_id, runs_dir) as reader:
        return result, list(reader.records())
