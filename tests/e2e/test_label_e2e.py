"""End-to-end: a real run of the embedded model, labelled with real continuations, exported as TRL PRM rows.

Kept small for CI: one calculator question (no Python), short replies, K = 4 (the issue's size); the peer labels
run on a two-trajectory leap run of the same question, K = 1 a side (CI proves the path; bench/ measures).
"""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest

from peerstep import AgentConfig, StepKind, StepLog, arun
from peerstep._label import alabel
from peerstep._label_peers import alabel_peers, commented, peer_effects
from peerstep.agent import SamplingParams
from peerstep.agent._config import DEFAULT_STOP
from peerstep.engines import ManagedEngine
from peerstep.export._prm import export_prm
from peerstep.graphs.parallel import ParallelConfig
from peerstep.peers import SharingConfig
from peerstep.steplog._steps import trajectory_steps

pytestmark = pytest.mark.slow
QUESTION = "What is 48123 * 9177?"
PROMPT = ('Reply with one JSON object and nothing else. To compute: {"name": "calculate", "arguments": '
          '{"expression": "..."}}. To answer: {"name": "submit_answer", "arguments": {"answer": "..."}}.')


def terse() -> AgentConfig:
    agent = AgentConfig(sampling=SamplingParams(max_tokens=48, stop=list(DEFAULT_STOP)), system_prompt=PROMPT)
    agent.budget.max_steps = 3
    return agent


async def test_a_real_run_is_labelled_and_exported_as_trl_prm_rows(llamacpp_engine: ManagedEngine,
                                                                    runs_dir: Path, tmp_path: Path) -> None:
    # a terse prompt and short replies: the model calls the calculator, then submits (2 model calls), and each
    # continuation from after the calculation submits (1 call each): CI pays for about 6 short calls
    agent = terse()
    client = llamacpp_engine.client()
    try:
        run = await arun(QUESTION, client, gold="441624771", python=False, agent=agent, runs_dir=runs_dir)
        assert run.status == "done" and run.answer is not None
        summary = await alabel([run.run_id], client, k=4, runs_dir=runs_dir)
    finally:
        await client.close()

    with StepLog.open(run.run_id, runs_dir) as log:
        records = list(log.records())
    steps = trajectory_steps([r for r in records if r.trajectory_id == 0])
    labels = {r.parent_id: r for r in records if r.kind == StepKind.LABEL}
    assert len(steps) >= 2, "the model answered without a tool call: no step to roll out from"
    assert summary.skipped == {} and summary.labelled == len(steps) == len(labels)
    assert [labels[s.reason.step_id].data["mc_n"] for s in steps] == [4] * (len(steps) - 1) + [1]
    assert summary.rollouts == 4 * (len(steps) - 1) and summary.tokens > 0
    for step in steps[:-1]:  # every label's continuations are a run that can be opened, forked from this one
        with StepLog.open(labels[step.reason.step_id].data["fork_run"], runs_dir) as fork:
            assert fork.meta()["fork"]["run"] == run.run_id
            assert len([r for r in fork.records(kind=StepKind.RUN_START)]) == 4

    path, count = export_prm([run.run_id], "trl-prm", tmp_path / "prm.jsonl", runs_dir=runs_dir)
    rows = datasets.load_dataset("json", data_files=str(path), split="train")
    assert count == rows.num_rows == 1
    assert rows[0]["prompt"] == QUESTION and len(rows[0]["completions"]) == len(steps)
    assert rows[0]["labels"] == [labels[s.reason.step_id].data["hard"] for s in steps]


async def test_real_peer_injections_are_labelled_with_and_without_their_comment(llamacpp_engine: ManagedEngine,
                                                                              runs_dir: Path) -> None:
    # two trajectories, one model call a round: both call the calculator in round 1, the barrier passes each the
    # other's summary, both submit in round 2; each commented injection is then forked once with its comment and
    # once without (one short call each)
    config = ParallelConfig(n=2, max_rounds=2, round_steps=1, sharing=SharingConfig(summary_tokens=32))
    client = llamacpp_engine.client()
    try:
        run = await arun(QUESTION, client, gold="441624771", python=False, strategy="leap", parallel=config,
                         agent=terse(), runs_dir=runs_dir)
        summary = await alabel_peers([run.run_id], client, k=1, runs_dir=runs_dir)
    finally:
        await client.close()

    with StepLog.open(run.run_id, runs_dir) as log:
        records = list(log.records())
    heard = [r for r in records if commented(r)]
    assert heard, "no injection carried a peer's summary: nothing to label"
    labels = {r.parent_id: r for r in records if r.kind == StepKind.LABEL and r.data.get("peer")}
    assert summary.skipped == {} and summary.labelled == len(heard) == len(labels)
    assert summary.rollouts == 2 * len(heard)
    for inject in heard:
        data = labels[inject.step_id].data
        assert data["with"]["n"] == data["without"]["n"] == 1
        assert data["effect"] == pytest.approx(data["with"]["value"] - data["without"]["value"])
        for side in ("with", "without"):  # the evidence of each side is a run forked from the injection
            with StepLog.open(data[side]["fork_run"], runs_dir) as fork:
                meta = fork.meta()["fork"]
                assert meta["run"] == run.run_id and meta["step"] == inject.step_id
                assert (meta.get("without") == "peer_inject") == (side == "without")
    effects = peer_effects([run.run_id], runs_dir)
    assert effects.labelled == len(heard) and effects.helped + effects.hurt + effects.neutral == len(heard)
