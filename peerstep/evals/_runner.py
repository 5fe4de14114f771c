"""Run a dataset's episodes under one or more strategies, concurrently, and collect outcomes.

Each episode is one call of the runner (``peerstep.arun``): its own step log (one run file) and its
own client, so tokens are counted per episode exactly, and it is graded by the task's own checker.
Outcomes are appended to ``outcomes`` as episodes finish, and optionally to a JSONL file, so that an
interrupted eval (Ctrl-C) still reports every finished episode. Where an episode runs is the executor's
business (``_episode.LocalExecutor`` here, ``_ray.RayExecutor`` on a cluster); everything else is done here,
on the driver, the same way for both.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from peerstep._errors import InputError, ModelServerError
from peerstep.agent import AgentConfig, ModelClient
from peerstep.environments import EnvironmentDataset
from peerstep.evals._baselines import BASELINES
from peerstep.evals._episode import (
    ClientSource,
    ClientSpec,
    EpisodePlan,
    Executor,
    LocalExecutor,
    RoundShape,
    run_episode_outcome,
)
from peerstep.evals._load import load_eval
from peerstep.evals._report import EpisodeOutcome
from peerstep.registry import STRATEGIES
from peerstep.strategies import VerifierFactory

OutcomeCallback = Callable[[EpisodeOutcome], None]
__all__ = ["EvalAborted", "load_finished", "run_episode_outcome", "run_eval"]


async def run_eval(
    dataset: EnvironmentDataset,
    client_factory: ClientSource,
    strategies: list[str],
    *,
    n: int | None = None,
    limit: int | None = None,
    concurrency: int = 2,
    agent: AgentConfig | None = None,
    runs_dir: Path | None = None,
    outcomes: list[EpisodeOutcome] | None = None,
    jsonl: Path | None = None,
    on_outcome: OutcomeCallback | None = None,
    wall: dict[str, float] | None = None,
    skip: set[tuple[str, int]] | None = None,
    executor: Executor | None = None,
    verifiers: VerifierFactory | None = None,
    rounds: RoundShape | None = None,
) -> list[EpisodeOutcome]:
    """Every (strategy, task) pair, strategy by strategy, ``concurrency`` episodes at a time; pairs in ``skip``
    (strategy, task index) finished in an earlier, interrupted eval and are not run again.

    ``client_factory`` makes one client per episode, or is a ``ClientSpec`` (several replicas, sticky by
    episode). ``executor`` says where episodes run (default: this process); a remote one gets a ``ClientSpec``
    (read off one client of the factory when it is not one) so that its workers build their own clients.
    Each (strategy, index) is reported once, even when an executor retried it. ``verifiers`` (a factory, see
    ``peerstep.strategies.verifier_factory``) replace every strategy's own; ``rounds`` sets every strategy's round
    length and count."""
    unknown = [s for s in strategies if s not in STRATEGIES and s not in BASELINES]
    if unknown:
        raise InputError(f"unknown strategy {unknown[0]!r}; choose from: {', '.join([*STRATEGIES, *BASELINES])}")
    count = len(dataset) if limit is None else min(limit, len(dataset))
    outcomes = outcomes if outcomes is not None else []
    wall = wall if wall is not None else {}
    sem = asyncio.Semaphore(max(1, concurrency))
    executor = executor or LocalExecutor()
    clients = await _shippable(client_factory) if executor.remote else client_factory
    reported = set(skip or set()) | {(o.strategy, o.index) for o in outcomes}

    plan = EpisodePlan(dataset, clients, n=n, agent=agent, runs_dir=runs_dir, verifiers=verifiers,
                       rounds=rounds)

    async def episode(index: int, strategy: str) -> None:
        async with sem:
            outcome = await executor.run(strategy, index)
            if outcome.error is not None:  # plan.clients: an executor may have pointed them at engines it started
                await _server_alive_or_abort(plan.clients, outcome, len(outcomes))
        if (strategy, index) in reported:  # an executor's retry never counts an episode twice
            return
        reported.add((strategy, index))
        outcomes.append(outcome)
        if jsonl is not None:
            with jsonl.open("a") as fh:
                fh.write(json.dumps(outcome.model_dump()) + "\n")
        if on_outcome is not None:
            on_outcome(outcome)

    try:
        await executor.open(plan)
        await _run_all(episode, strategies, count, skip or set(), wall)
    finally:
        await executor.close()
    return outcomes


async def _run_all(episode: Callable[[int, str], Coroutine[Any, Any, None]], strategies: list[str], count: int,
                   skip: set[tuple[str, int]], wall: dict[str, float]) -> None:
    for strategy in strategies:
        started = time.perf_counter()
        tasks = [asyncio.ensure_future(episode(i, strategy)) for i in range(count) if (strategy, i) not in skip]
        try:
            await asyncio.gather(*tasks)
        finally:  # an abort (or Ctrl-C) cancels the episodes still running; their logs close on the way out
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            wall[strategy] = time.perf_counter() - started


async def _shippable(source: ClientSource) -> ClientSpec:
    """A ``ClientSpec`` for a remote executor: the source itself, or the settings of one client it makes."""
    if isinstance(source, ClientSpec):
        return source
    client = source()
    await client.close()
    if type(client) is not ModelClient:
        raise InputError(f"episodes on other machines build their own client from a base URL; {type(client).__name__}"
                         " is not a model served over HTTP (give a ClientSpec or a factory of ModelClient)")
    return ClientSpec.of(client)


def load_finished(jsonl: Path, dataset: EnvironmentDataset, limit: int) -> list[EpisodeOutcome]:
    """The episodes an interrupted eval finished, read back from its per-episode JSONL, checked against the
    dataset (same tasks at the same indexes) so that a file from another dataset or seed is refused."""
    if not jsonl.is_file():
        raise InputError(f"nothing to resume: {jsonl} (the per-episode results of --out) does not exist")
    _, finished = load_eval(jsonl, torn_tail=True)
    for outcome in finished:
        if outcome.index >= limit or dataset.info(outcome.index).task_id != outcome.task_id:
            raise InputError(f"{jsonl} holds task {outcome.task_id!r} at index {outcome.index}, which this dataset "
                             "(name, seed, limit) does not: resume with the options the eval was started with")
    return finished


class EvalAborted(ModelServerError):
    """The model server died mid-eval: the episodes that finished before are kept, the rest not run.

    Without this, every later episode would be scored wrong for the server's fault, and the
    table would report a model that merely lost its server as a bad model.
    """


async def _server_alive_or_abort(client_factory: ClientSource, failed: EpisodeOutcome,
                                 finished: int) -> None:
    """After a failed episode, ask the server for its models; if it does not answer, abort the eval."""
    probe = client_factory()
    try:
        await probe.list_models()
    except ModelServerError as exc:
        raise EvalAborted(f"the model server stopped answering during the eval ({exc}); {finished} finished "
                          f"episodes are kept; episode {failed.task_id} ({failed.strategy}) failed with: "
                          f"{failed.error}") from exc
    finally:
        await probe.close()
