"""One real run shared by the end-to-end tests of the strategies that decide between sampled answers."""

from __future__ import annotations

from pathlib import Path

from peerstep import EpisodeResult, arun
from peerstep.engines import ManagedEngine
from peerstep.environments import QuestionEnvironment
from peerstep.steplog import StepLog, StepRecord

# a two-step computation the 1.5B model gets right only sometimes at temperature 0.6: samples disagree often enough
# for a vote or a judge to have something to decide
PENS_QUESTION = "A shop packs 4837 boxes a day, each holding 293 pens, and sells 19 loose pens. How many pens is that?"
PENS_GOLD = "1417260"


async def run_pens(engine: ManagedEngine, runs_dir: Path, strategy: str,
                   n: int) -> tuple[EpisodeResult, list[StepRecord]]:
    """Run ``strategy`` on the pens question with the real model; the result and every record of its log."""
    client = engine.client()
    log = StepLog.create(directory=runs_dir)
    try:
        result = await arun(lambda: QuestionEnvironment(PENS_QUESTION, gold=PENS_GOLD), client, strategy=strategy,
                            n=n, log=log)
    finally:
        await client.close()
    with StepLog.open(log.run_id, runs_dir) as reader:
        return result, list(reader.records())
