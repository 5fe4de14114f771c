"""End-to-end: the adaptive strategy (waves of two until the vote is settled) on the real embedded model."""

from __future__ import annotations

from pathlib import Path

import pytest

from peerstep.engines import ManagedEngine
from peerstep.steplog import StepKind
from peerstep.verify import Candidate, agreement_reached

from ._runs import run_pens

pytestmark = pytest.mark.slow


async def test_adaptive_samples_waves_until_the_vote_is_settled(llamacpp_engine: ManagedEngine,
                                                                runs_dir: Path) -> None:
    # llama.cpp only: the strategy is graph logic over the same client calls every other strategy makes (proven on
    # vLLM by the leap and concurrency tests); one real run shows the waves and the stop on a sampled model
    result, records = await run_pens(llamacpp_engine, runs_dir, "adaptive", n=4)
    started = sorted(r.trajectory_id for r in records if r.kind == StepKind.RUN_START)
    barriers = [r.data for r in records if r.kind == StepKind.BARRIER]
    # trajectories start two at a time, a wave only after the one before has answered and left the vote unsettled
    assert started == list(range(len(started))) and len(started) in (2, 4)
    assert sorted(result.answers) == started
    assert [t for b in barriers for t in b.get("started", [])] == started[2:]
    answers = [Candidate(trajectory_id=t, answer=a) for t, a in sorted(result.answers.items())]
    first_wave_agrees = agreement_reached(answers[:2], 2, lead=1) is not None
    assert (len(started) == 2) == first_wave_agrees
    if result.stop_reason.startswith("early stop"):
        assert agreement_reached(answers, 2, lead=1) == result.answer
    else:
        assert len(started) == 4 and result.stop_reason == "all trajectories finished"
    aggregate = [r for r in records if r.kind == StepKind.AGGREGATE]
    assert len(aggregate) == 1 and aggregate[0].text == result.answer
