"""A scripted leap@4 run with every record kind the trace mapping covers (tool calls, summaries, peer injections,
verifier scores, barriers, the vote), built in well under a second without a model. Shared by the unit tests of
the span mapping (tests/test_otlp.py) and the Phoenix end-to-end test."""

from __future__ import annotations

from pathlib import Path

from peerstep import arun
from peerstep.environments import QuestionEnvironment
from peerstep.graphs.parallel import ParallelConfig
from peerstep.peers import SharingConfig
from peerstep.steplog import StepLog
from peerstep.verify import TrajectoryView, Verifier, VerifierScore
from tests.scripted import PerTrajectoryClient, calc, submit


class LengthVerifier(Verifier):
    """Scores a trajectory by its id: fixed, known scores for the evaluation events."""

    name = "fixed-score"

    async def score(self, view: TrajectoryView) -> VerifierScore:
        return VerifierScore(verifier=self.name, score=0.25 * (view.trajectory_id + 1),
                             rationale=f"trajectory {view.trajectory_id} looks fine")


SCRIPTS = {0: [calc("6*7"), "checking", submit("42")], 1: [calc("6*8"), "hmm", submit("48")],
           2: [calc("7*6"), "sure", submit("42")], 3: [calc("42"), "done", submit("42")]}
SUMMARIES = {0: "the product is 42", 1: "the product is 48 because six times eight", 2: "six sevens are 42",
             3: "it is 42"}


async def leap4_run(directory: Path) -> str:
    """Run leap@4 on "What is 6*7?" with the scripted model into ``directory``; returns the run id."""
    client = PerTrajectoryClient({t: list(s) for t, s in SCRIPTS.items()}, summaries=SUMMARIES)
    log = StepLog.create(directory=directory, meta={"strategy": "leap", "n": 4, "question": "What is 6*7?"})
    config = ParallelConfig(n=4, max_rounds=4, round_steps=2, sharing=SharingConfig(), barrier_verify=True)
    try:
        result = await arun(lambda: QuestionEnvironment("What is 6*7?", gold="42"), client, strategy="leap",
                            parallel=config, verifiers=[LengthVerifier()], log=log)
    finally:
        log.close()
    assert result.answer == "42", result
    return log.run_id
