"""End-to-end: the list-wise judge and the ``listwise`` strategy on the real embedded model."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from peerstep.engines import ManagedEngine
from peerstep.environments import QuestionEnvironment
from peerstep.steplog import StepKind
from peerstep.verify import ListwiseJudge, TrajectoryView, group_answers
from peerstep.verify.aggregate import Candidate

from ._runs import PENS_GOLD, PENS_QUESTION, run_pens

pytestmark = pytest.mark.slow

QUESTION = "A crate holds 6 rows of 7 jars, and 5 jars are broken. How many whole jars are there?"


async def test_the_judge_reads_the_real_servers_verdict_probabilities(llamacpp_engine: ManagedEngine) -> None:
    # llama.cpp only: the judge is one request through the same client as every other (vLLM's logprobs are proven
    # by the LLM-judge and PRM tests); what is checked here is that the real server's top logprobs carry the option
    # numbers, so the verdict is read from probabilities in both orders and averaged
    client = llamacpp_engine.client()
    options = [TrajectoryView(trajectory_id=t, question=QUESTION, answer=a, finished=True,
                              steps=[f"```python\nprint({expr})\n```\n<tool_response>\n{a}\n</tool_response>"])
               for t, (a, expr) in enumerate([("37", "6*7 - 5"), ("47", "6*7 + 5")])]
    try:
        choice = await ListwiseJudge(client).choose(QUESTION, options)
    finally:
        await client.close()
    assert choice.probabilities is not None and len(choice.probabilities) == 2
    assert math.isclose(sum(choice.probabilities), 1.0, abs_tol=1e-3)
    assert choice.index == max(range(2), key=lambda i: (choice.probabilities[i], -i))  # type: ignore[index]
    assert "averaged over both orders" in choice.rationale


async def test_listwise_judges_only_disagreeing_answers_and_its_pick_is_the_decision(
        llamacpp_engine: ManagedEngine, runs_dir: Path) -> None:
    result, records = await run_pens(llamacpp_engine, runs_dir, "listwise", n=4)
    aggregate = next(r for r in records if r.kind == StepKind.AGGREGATE)
    kept = aggregate.data["listwise"]
    answers = [Candidate(trajectory_id=t, answer=a) for t, a in sorted(result.answers.items())]
    groups = group_answers(answers, QuestionEnvironment(PENS_QUESTION, gold=PENS_GOLD).checker)  # as the run grouped
    if len(groups) < 2:  # the samples agree: no judge, the vote's answer
        assert kept is None and result.decision.method == "listwise"
        assert result.answer == (groups[0][0] if groups else None)
    elif "error" in kept:  # the judge could not say: the vote decides, and the error is a step
        assert result.decision.method == "majority (list-wise judge failed)" and result.answer == kept["majority"]
    else:
        assert sorted(kept["options"]) == sorted(rep for rep, _ in groups)
        assert result.answer == kept["options"][kept["choice"]] and result.decision.method == "listwise"
        assert math.isclose(sum(kept["probabilities"]), 1.0, abs_tol=1e-3)
    assert aggregate.text == result.answer
