"""Named strategies: how many trajectories, whether they share, how they are scored and combined.

=============  ================================================================================
single         one trajectory at temperature 0
majority       N independent trajectories, majority vote over equivalent answers
best-of-n      N independent trajectories, an LLM judge scores each answer, the best one wins
leap           N trajectories in rounds with LeaP peer sharing at barriers, majority vote
leap+verify    leap, plus verifiers (peer agreement, LLM judge) at barriers and at the end,
               votes weighted by score
=============  ================================================================================

Every strategy runs on the same parallel graph, so their step logs and results compare directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from peerstep.agent import AgentConfig, ModelClient, SamplingParams, Trajectory
from peerstep.agent._trajectory import Listener
from peerstep.environments import Environment
from peerstep.graphs.parallel import ParallelConfig, ParallelResult, ParallelRun
from peerstep.peers import SharingConfig
from peerstep.steplog import StepKind, StepLog
from peerstep.verify import LLMJudge, PeerAgreement, Verifier

STRATEGIES = ("single", "majority", "best-of-n", "leap", "leap+verify")


def strategy_config(name: str, n: int, agent: AgentConfig) -> ParallelConfig:
    """The parallel-graph settings of a named strategy for ``n`` trajectories."""
    whole = agent.budget.max_steps + 3  # rounds long enough that a trajectory finishes within one
    if name == "single":
        return ParallelConfig(n=1, max_rounds=1, round_steps=whole, round_tokens=10**9)
    if name == "majority":
        return ParallelConfig(n=n, max_rounds=1, round_steps=whole, round_tokens=10**9)
    if name == "best-of-n":
        return ParallelConfig(n=n, max_rounds=1, round_steps=whole, round_tokens=10**9, aggregate="best-of-n")
    # LeaP shares every T generated tokens (reference: 2048, with 256-token summaries, i.e. ~12% overhead per
    # round). Tool-using trajectories here finish in a few hundred tokens, so a round is 3 model calls or 1024
    # tokens: sharing reaches the trajectories that are still working, and costs little on easy problems.
    if name == "leap":
        return ParallelConfig(n=n, max_rounds=4, round_steps=3, round_tokens=1024, sharing=SharingConfig())
    if name == "leap+verify":
        return ParallelConfig(n=n, max_rounds=4, round_steps=3, round_tokens=1024, sharing=SharingConfig(),
                              barrier_verify=True, aggregate="weighted")
    raise ValueError(f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}")


def strategy_verifiers(name: str, client: ModelClient) -> list[Verifier]:
    if name == "best-of-n":
        return [LLMJudge(client)]
    if name == "leap+verify":
        return [PeerAgreement(), LLMJudge(client)]
    return []


def trajectory_sampling(base: SamplingParams, tid: int, n: int) -> SamplingParams:
    """Several trajectories need different samples: LeaP's temperature/top_p and a seed per trajectory."""
    if n == 1:
        return base
    temperature = base.temperature if base.temperature > 0 else 0.6
    seed = (base.seed or 0) + tid
    return base.model_copy(update={"temperature": temperature, "top_p": min(base.top_p, 0.95), "seed": seed})


async def run_strategy(
    name: str,
    env_factory: Callable[[], Environment],
    client: ModelClient,
    *,
    n: int = 4,
    agent: AgentConfig | None = None,
    config: ParallelConfig | None = None,
    verifiers: list[Verifier] | None = None,
    log: StepLog | None = None,
    listeners: list[Listener] | None = None,
    meta: dict[str, Any] | None = None,
) -> ParallelResult:
    """Run one problem with a named strategy; ``config``/``verifiers`` override the strategy's defaults."""
    agent = agent or AgentConfig()
    config = config or strategy_config(name, n, agent)
    verifiers = strategy_verifiers(name, client) if verifiers is None else verifiers
    own_log = log is None
    log = log or StepLog.create(meta={"model": client.model, "base_url": client.base_url, "strategy": name,
                                      "n": config.n, "config": config.model_dump(), **(meta or {})})
    envs = [env_factory() for _ in range(config.n)]
    trajectories = [
        Trajectory(client, env, log, agent.model_copy(update={"sampling": trajectory_sampling(agent.sampling, i,
                                                                                              config.n)}),
                   trajectory_id=i, listeners=listeners)
        for i, env in enumerate(envs)
    ]
    try:
        result = await ParallelRun(trajectories, config, log, verifiers, listeners).run()
        log.log(StepKind.RUN_END, trajectory_id=-1, text=result.answer,
                data={"strategy": name, "rounds": result.rounds, "tokens": result.tokens,
                      "stop_reason": result.stop_reason})
        log.set_meta({"status": "done", "answer": result.answer})
        return result
    finally:
        for env in envs:
            await env.close()
        if own_log:
            log.close()
