"""The scripted model for graph-logic tests lives in the package (``peerstep.testing.model``) so users can use it.

The small builders every scripted-run test writes its replies with, and a verifier with fixed scores, live here once.
"""

from __future__ import annotations

from typing import Any

from peerstep import EpisodeResult, QuestionEnvironment, StepKind, StepLog, StepRecord, arun
from peerstep.testing.model import PerTrajectoryClient, Reply, ScriptedClient, native_call
from peerstep.verify import TrajectoryView, Verifier, VerifierScore

__all__ = ["FixedScores", "PerTrajectoryClient", "Reply", "ScriptedClient", "calc", "native_call", "scripted_vote",
           "submit"]


def calc(expr: str) -> str:
    """A calculator call as a model writes it in text."""
    return f'{{"name": "calculate", "arguments": {{"expression": "{expr}"}}}}'


def submit(answer: str) -> str:
    """A submit_answer call as a model writes it in text."""
    return f'{{"name": "submit_answer", "arguments": {{"answer": "{answer}"}}}}'


async def scripted_vote(scripts: dict[int, list[Reply]], config: Any, directory: Any
                        ) -> tuple[EpisodeResult, StepRecord]:
    """Scripted trajectories answer "6*7?" (gold 42) under ``config`` (a ``ParallelConfig``): the result and the
    run's AGGREGATE record, where the vote says how it decided."""
    log = StepLog.create(directory=directory)
    result = await arun(lambda: QuestionEnvironment("6*7?", gold="42"), PerTrajectoryClient(scripts),
                        strategy="majority", parallel=config, log=log)
    with StepLog(log.path, log.run_id) as reader:
        aggregate = next(reader.records(kind=StepKind.AGGREGATE))
    return result, aggregate


class FixedScores(Verifier):
    """Scores each trajectory by a fixed table: known scores for pruning, weighting and the badges they leave."""

    name = "fixed"
    partial_ok = True

    def __init__(self, scores: dict[int, float], rationale: str = "fixed score") -> None:
        self.scores = scores
        self.rationale = rationale

    async def score(self, view: TrajectoryView) -> VerifierScore:
        return VerifierScore(verifier=self.name, score=self.scores[view.trajectory_id], rationale=self.rationale)
