"""One eval episode, and where it runs: the episode function every executor calls, and the local executor.

``run_eval`` (``_runner``) is the one orchestration path: what runs, in what order, how many at once, what
is recorded and when an eval aborts. An executor only decides *where* one episode runs: in this process
(``LocalExecutor``, the default) or in a Ray task on a cluster (``_ray.RayExecutor``). Both call ``play``,
so an episode is the same code wherever it runs. Everything an episode needs travels in an ``EpisodePlan``,
whose model side is a ``ClientSpec`` (settings, not a live client) so that a remote worker builds its own.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from peerstep._runner import arun
from peerstep.agent import AgentConfig, ModelClient
from peerstep.environments import EnvironmentDataset
from peerstep.evals._baselines import BASELINES, run_baseline
from peerstep.evals._report import EpisodeOutcome
from peerstep.graphs.parallel import ParallelConfig
from peerstep.strategies import VerifierFactory, strategy_config, strategy_width

SESSION_HEADERS = ("X-Session-Id", "x-peerstep-episode")  # what routers keep an episode's requests sticky by


@dataclass(frozen=True)
class ClientSpec:
    """How to reach the model: one or more OpenAI-compatible replicas and the client settings.

    It is plain data, so it can be shipped to a Ray worker, which builds its own client. With several
    ``base_urls`` an episode picks one by rendezvous hashing of its id: all requests of one episode (its N
    trajectories and their peers) reach one replica and share its prefix cache, and adding a replica moves
    only the episodes that now hash to it. The episode id also goes out as a header for routers in front of
    a fleet (vLLM's production-stack router, Ray Serve) to be sticky by. ``per_node`` (Ray node id, base URL)
    pairs, for engines started on every node (``--per-node``): an episode talks to the engine of the node it
    runs on, wherever that is; a process on no such node falls back to ``base_urls``.
    """

    base_urls: tuple[str, ...]
    model: str
    api_key: str | None = None
    timeout: float = 600.0
    max_retries: int = 4
    supports_continue: bool = False
    supports_seed: bool = True
    per_node: tuple[tuple[str, str], ...] = ()
    tool_choice: str | None = None
    context_tokens: int | None = None

    @classmethod
    def of(cls, client: ModelClient, more_base_urls: tuple[str, ...] = ()) -> ClientSpec:
        """The settings of a live client (and, optionally, more replicas of the same model)."""
        urls = tuple(dict.fromkeys((client.base_url, *(u.rstrip("/") for u in more_base_urls))))
        return cls(urls, client.model, client.api_key, client.timeout, client.max_retries,
                   client.supports_continue, client.supports_seed, tool_choice=client.tool_choice,
                   context_tokens=client.context_tokens)

    def replica(self, episode: str) -> str:
        """The replica this episode's requests go to: this node's engine, else by highest random weight."""
        if self.per_node and (url := dict(self.per_node).get(this_node() or "")):
            return url
        return max(self.base_urls, key=lambda url: hashlib.sha256(f"{url}|{episode}".encode()).digest())

    def client(self, episode: str = "") -> ModelClient:
        headers = {h: episode for h in SESSION_HEADERS} if episode else None
        return ModelClient(self.replica(episode), self.model, self.api_key, timeout=self.timeout,
                           max_retries=self.max_retries, supports_continue=self.supports_continue,
                           supports_seed=self.supports_seed, headers=headers, tool_choice=self.tool_choice,
                           context_tokens=self.context_tokens)

    def __call__(self) -> ModelClient:
        """A spec is a client factory too (the first replica's, without an episode header)."""
        return self.client()


def this_node() -> str | None:
    """The Ray node id of this process, when it is part of a Ray cluster (without importing Ray otherwise)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    return str(ray.get_runtime_context().get_node_id())


ClientSource = Callable[[], ModelClient] | ClientSpec


@dataclass(frozen=True)
class RoundShape:
    """Round length and count for the strategies that run in rounds (``leap``, ``leap+verify``), in place of their
    own (``--round-steps``, ``--rounds``): where LeaP shares and verifiers score, which decides what sharing can do
    at all (with leap's three calls a round, a trajectory that finishes in two never hears a peer). A one-round
    strategy (``single``, ``majority``, ``best-of-n``: the whole budget in one round) and one whose rounds are waves
    of whole trajectories (``adaptive``) are left as they are, so one eval can compare them with leap at a new round
    length."""

    round_steps: int | None = None
    max_rounds: int | None = None

    def apply(self, config: ParallelConfig) -> ParallelConfig:
        if config.max_rounds == 1 or config.wave:
            return config
        return config.model_copy(update={"round_steps": self.round_steps or config.round_steps,
                                         "max_rounds": self.max_rounds or config.max_rounds})


def episode_key(dataset: str, strategy: str, index: int) -> str:
    return f"{dataset}/{strategy}/{index}"


@dataclass
class EpisodePlan:
    """What every episode of one eval shares; a Ray executor puts it in the object store once."""

    dataset: EnvironmentDataset
    clients: ClientSource
    n: int | None = None  # None: each strategy's own default
    agent: AgentConfig | None = None
    runs_dir: Path | None = None
    verifiers: VerifierFactory | None = None
    rounds: RoundShape | None = None

    def client(self, strategy: str, index: int) -> ModelClient:
        if isinstance(self.clients, ClientSpec):
            return self.clients.client(episode_key(self.dataset.name, strategy, index))
        return self.clients()


async def run_episode_outcome(
    dataset: EnvironmentDataset,
    index: int,
    strategy: str,
    client: ModelClient,
    *,
    n: int | None,
    agent: AgentConfig | None = None,
    runs_dir: Path | None = None,
    verifiers: VerifierFactory | None = None,
    rounds: RoundShape | None = None,
) -> EpisodeOutcome:
    """One task under one strategy through the one runner; failures become an outcome with ``error`` set."""
    info = dataset.info(index)
    width = strategy_width(strategy, n)
    parallel = rounds.apply(strategy_config(strategy, width, agent or AgentConfig())) if rounds else None
    started = time.perf_counter()
    meta = {"dataset": dataset.name, "task_id": info.task_id, "question": info.question[:2000]}
    if node := this_node():  # on a Ray cluster: which node ran it (and, --per-node, whose engine served it)
        meta["ray_node"] = node
    try:
        result = await arun(dataset.factory(index), client, strategy=strategy, n=width, agent=agent,
                            parallel=parallel, runs_dir=runs_dir, meta=meta, verifiers=verifiers)
    except Exception as exc:  # one broken episode is recorded (the runner logged it); the eval goes on
        return EpisodeOutcome(task_id=info.task_id, index=index, strategy=strategy, n=width, answer=None,
                              gold=info.gold, correct=False, tokens=client.completion_tokens, tool_calls=0,
                              seconds=round(time.perf_counter() - started, 2), run_id="",
                              error=f"{type(exc).__name__}: {exc}")
    return EpisodeOutcome(task_id=info.task_id, index=index, strategy=strategy, n=width, answer=result.answer,
                          gold=info.gold, correct=bool(result.correct), tokens=result.tokens,
                          tool_calls=result.tool_calls, seconds=round(time.perf_counter() - started, 2),
                          run_id=result.run_id, error=result.error, steps=result.steps)


async def play(plan: EpisodePlan, strategy: str, index: int, runs_dir: Path | None) -> EpisodeOutcome:
    """The episode function every executor runs: its own client, its own step log in ``runs_dir``."""
    client = plan.client(strategy, index)
    try:
        if strategy in BASELINES:
            return await run_baseline(plan.dataset, index, strategy, client, runs_dir=runs_dir)
        return await run_episode_outcome(plan.dataset, index, strategy, client, n=plan.n, agent=plan.agent,
                                         runs_dir=runs_dir, verifiers=plan.verifiers, rounds=plan.rounds)
    finally:
        await client.close()


class Executor(Protocol):
    """Where episodes run. ``open`` once per eval (connect, check), ``run`` per episode, ``close`` at the end."""

    remote: bool  # episodes leave this process: the plan must be shippable (a ClientSpec, not a factory)

    async def open(self, plan: EpisodePlan) -> None: ...

    async def run(self, strategy: str, index: int) -> EpisodeOutcome: ...

    async def close(self) -> None: ...


class LocalExecutor:
    """Episodes as asyncio tasks in this process (the default)."""

    remote = False

    def __init__(self) -> None:
        self._plan: EpisodePlan | None = None

    async def open(self, plan: EpisodePlan) -> None:
        self._plan = plan

    async def run(self, strategy: str, index: int) -> EpisodeOutcome:
        assert self._plan is not None, "open the executor first"
        return await play(self._plan, strategy, index, self._plan.runs_dir)

    async def close(self) -> None:
        self._plan = None
