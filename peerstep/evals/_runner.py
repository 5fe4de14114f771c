"""Run a dataset's episodes under one or more strategies, concurrently, and collect outcomes.

Each episode is one call of the runner (``peerstep.arun``): its own step log (one run file) and its
own client, so tokens are counted per episode exactly, and it is graded by the task's own checker.
Outcomes are appended to ``outcomes`` as episodes finish, and optionally to a JSONL file, so that an
interrupted eval (Ctrl-C) still reports every finished episode.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

from peerstep._errors import InputError, ModelServerError
from peerstep._runner import arun
from peerstep.agent import AgentConfig, ModelClient
from peerstep.environments import EnvironmentDataset
from peerstep.evals._baselines import BASELINES, run_baseline
from peerstep.evals._report import EpisodeOutcome
from peerstep.registry import STRATEGIES
from peerstep.strategies import VerifierFactory

OutcomeCallback = Callable[[EpisodeOutcome], None]


async def run_episode_outcome(
    dataset: EnvironmentDataset,
    index: int,
    strategy: str,
    client: ModelClient,
    *,
    n: int,
    agent: AgentConfig | None = None,
    runs_dir: Path | None = None,
    verifiers: VerifierFactory | None = None,
) -> EpisodeOutcome:
    """One task under one strategy through the one runner; failures become an outcome with ``error`` set."""
    info = dataset.info(index)
    width = 1 if strategy == "single" else n
    started = time.perf_counter()
    meta = {"dataset": dataset.name, "task_id": info.task_id, "question": info.question[:2000]}
    try:
        result = await arun(dataset.factory(index), client, strategy=strategy, n=width, agent=agent,
                            runs_dir=runs_dir, meta=meta, verifiers=verifiers)
    except Exception as exc:  # one broken episode is recorded (the runner logged it); the eval goes on
        return EpisodeOutcome(task_id=info.task_id, index=index, strategy=strategy, n=width, answer=None,
                              gold=info.gold, correct=False, tokens=client.completion_tokens, tool_calls=0,
                              seconds=round(time.perf_counter() - started, 2), run_id="",
                              error=f"{type(exc).__name__}: {exc}")
    return EpisodeOutcome(task_id=info.task_id, index=index, strategy=strategy, n=width, answer=result.answer,
                          gold=info.gold, correct=bool(result.correct), tokens=result.tokens,
                          tool_calls=result.tool_calls, seconds=round(time.perf_counter() - started, 2),
                          run_id=result.run_id, error=result.error, steps=result.steps)


async def run_eval(
    dataset: EnvironmentDataset,
    client_factory: Callable[[], ModelClient],
    strategies: list[str],
    *,
    n: int = 4,
    limit: int | None = None,
    concurrency: int = 2,
    agent: AgentConfig | None = None,
    runs_dir: Path | None = None,
    outcomes: list[EpisodeOutcome] | None = None,
    jsonl: Path | None = None,
    on_outcome: OutcomeCallback | None = None,
    wall: dict[str, float] | None = None,
    skip: set[tuple[str, int]] | None = None,
    verifiers: VerifierFactory | None = None,
) -> list[EpisodeOutcome]:
    """Every (strategy, task) pair, strategy by strategy, ``concurrency`` episodes at a time; pairs in ``skip``
    (strategy, task index) finished in an earlier, interrupted eval and are not run again. ``verifiers`` (a
    factory, see ``peerstep.strategies.verifier_factory``) replace every strategy's own."""
    unknown = [s for s in strategies if s not in STRATEGIES and s not in BASELINES]
    if unknown:
        raise InputError(f"unknown strategy {unknown[0]!r}; choose from: {', '.join([*STRATEGIES, *BASELINES])}")
    count = len(dataset) if limit is None else min(limit, len(dataset))
    outcomes = outcomes if outcomes is not None else []
    wall = wall if wall is not None else {}
    sem = asyncio.Semaphore(max(1, concurrency))

    async def episode(index: int, strategy: str) -> None:
        async with sem:
            client = client_factory()
            try:
                if strategy in BASELINES:
                    outcome = await run_baseline(dataset, index, strategy, client, runs_dir=runs_dir)
                else:
                    outcome = await run_episode_outcome(dataset, index, strategy, client, n=n, agent=agent,
                                                        runs_dir=runs_dir, verifiers=verifiers)
            finally:
                await client.close()
            if outcome.error is not None:
                await _server_alive_or_abort(client_factory, outcome, len(outcomes))
        outcomes.append(outcome)
        if jsonl is not None:
            with jsonl.open("a") as fh:
                fh.write(json.dumps(outcome.model_dump()) + "\n")
        if on_outcome is not None:
            on_outcome(outcome)

    for strategy in strategies:
        started = time.perf_counter()
        tasks = [asyncio.ensure_future(episode(i, strategy)) for i in range(count)
                 if (strategy, i) not in (skip or set())]
        try:
            await asyncio.gather(*tasks)
        finally:  # an abort (or Ctrl-C) cancels the episodes still running; their logs close on the way out
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            wall[strategy] = time.perf_counter() - started
    return outcomes


def load_finished(jsonl: Path, dataset: EnvironmentDataset, limit: int) -> list[EpisodeOutcome]:
    """The episodes an interrupted eval finished, read back from its per-episode JSONL, checked against the
    dataset (same tasks at the same indexes) so that a file from another dataset or seed is refused."""
    if not jsonl.is_file():
        raise InputError(f"nothing to resume: {jsonl} (the per-episode results of --out) does not exist")
    finished: list[EpisodeOutcome] = []
    lines = jsonl.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            outcome = EpisodeOutcome.model_validate_json(line)
        except ValueError as exc:
            if number == len(lines):  # the line being written when the eval was killed: that episode reruns
                break
            raise InputError(f"{jsonl} line {number} is not an episode result: {exc}") from exc
        if outcome.index >= limit or dataset.info(outcome.index).task_id != outcome.task_id:
            raise InputError(f"{jsonl} holds task {outcome.task_id!r} at index {outcome.index}, which this dataset "
                             "(name, seed, limit) does not: resume with the options the eval was started with")
        finished.append(outcome)
    return finished


class EvalAborted(ModelServerError):
    """The model server died mid-eval: the episodes that finished before are kept, the rest not run.

    Without this, every later episode would be scored wrong for the server's fault, and the
    table would report a model that merely lost its server as a bad model.
    """


async def _server_alive_or_abort(client_factory: Callable[[], ModelClient], failed: EpisodeOutcome,
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
