"""End-to-end: the tool-backed vote, the greedy first trajectory and peer comments with evidence, on the real
embedded model (issue 13's mechanisms; each measured in the README before any became a default)."""

from __future__ import annotations

from pathlib import Path

import pytest

from peerstep.agent import AgentConfig
from peerstep.engines import ManagedEngine
from peerstep.environments import QuestionEnvironment
from peerstep.graphs.parallel import ParallelConfig
from peerstep.peers import SharingConfig
from peerstep.steplog import StepKind
from peerstep.verify import Candidate, backed_by, tool_backed_vote

from ._runs import PENS_GOLD, PENS_QUESTION, run_pens

pytestmark = pytest.mark.slow


async def test_a_greedy_first_tool_backed_vote_weighs_what_the_tools_printed(llamacpp_engine: ManagedEngine,
                                                                            runs_dir: Path) -> None:
    config = ParallelConfig(n=3, max_rounds=1, round_steps=11, round_tokens=10**9, aggregate="tool-backed",
                            greedy_first=True)
    result, records = await run_pens(llamacpp_engine, runs_dir, "majority", n=3, parallel=config, python=True)
    temperatures = {r.trajectory_id: (r.sampling or {}).get("temperature") for r in records
                    if r.kind == StepKind.REASON}
    assert temperatures == {0: 0.0, 1: 0.6, 2: 0.6}
    aggregate = next(r for r in records if r.kind == StepKind.AGGREGATE)
    outputs = {t: [r.text or "" for r in records if r.trajectory_id == t and r.kind == StepKind.OBSERVATION
                   and r.tool is not None and r.tool.name != "submit_answer" and r.tool.ok is not False]
               for t in result.answers}
    answered = {t: a for t, a in result.answers.items() if a}
    expected = {str(t): backed_by(a, outputs[t]) for t, a in answered.items()}
    assert aggregate.data["backed"] == expected
    assert any(expected.values())  # with Python, the program-first loop answers from what its program printed
    checker = QuestionEnvironment(PENS_QUESTION, gold=PENS_GOLD).checker
    votes = tool_backed_vote([Candidate(trajectory_id=t, answer=a, backed=expected[str(t)])
                              for t, a in sorted(answered.items())], checker)
    assert result.answer == votes.answer and result.decision.method == "tool-backed"


async def test_peer_comments_carry_each_peers_logged_computation(llamacpp_engine: ManagedEngine,
                                                                 runs_dir: Path) -> None:
    # rounds of one call and no answer from a program's output: trajectories meet at a barrier after their first
    # program ran, so every comment has a computation to show
    config = ParallelConfig(n=2, max_rounds=3, round_steps=1, round_tokens=10**9,
                            sharing=SharingConfig(router="all", evidence=True))
    _, records = await run_pens(llamacpp_engine, runs_dir, "leap", n=2, parallel=config,
                                agent=AgentConfig(answer_from_output=False), python=True)
    injections = [i for i, r in enumerate(records) if r.kind == StepKind.PEER_INJECT and r.data.get("sources")]
    assert injections, "no trajectory was still working at a barrier"
    for at in injections:
        inject = records[at]
        (source,) = inject.data["sources"]
        before = [r for r in records[:at] if r.trajectory_id == source]  # the log is in the order of the steps
        ran = [r for r in before if r.kind == StepKind.OBSERVATION and r.tool is not None
               and r.tool.name != "submit_answer" and r.tool.ok is not False and r.text]
        if ran:
            assert "Its last computation" in (inject.text or "")
            assert (ran[-1].text or "").strip()[:40] in (inject.text or "")
        assert "re-run the computation it shows" in (inject.text or "")
