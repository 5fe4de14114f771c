"""Run a dataset's episodes under one or more strategies, concurrently, and collect outcomes.

Each episode gets its own step log (one run file) and its own client, so tokens are counted per
episode exactly. Outcomes are appended to ``outcomes`` as episodes finish, and optionally to a
JSONL file, so that an interrupted eval (Ctrl-C) still reports every finished episode.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

from peerstep._errors import ModelServerError
from peerstep.agent import AgentConfig, ModelClient
from peerstep.environments import EnvironmentDataset
from peerstep.evals._report import EpisodeOutcome
from peerstep.steplog import StepKind, StepLog, StepRecord
from peerstep.strategies import STRATEGIES, run_strategy

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
) -> EpisodeOutcome:
    """One task under one strategy; failures become an outcome with ``error`` set, never an exception."""
    info = dataset.info(index)
    tool_calls = 0

    def count(rec: StepRecord) -> None:
        nonlocal tool_calls
        if rec.kind == StepKind.TOOL_CALL and rec.tool is not None and rec.tool.name != "submit_answer":
            tool_calls += 1

    width = 1 if strategy == "single" else n
    log = StepLog.create(directory=runs_dir, meta={"dataset": dataset.name, "task_id": info.task_id,
                                                   "question": info.question[:2000], "strategy": strategy,
                                                   "n": width, "model": client.model})
    started = time.perf_counter()
    answer, error = None, None
    try:
        result = await run_strategy(strategy, dataset.factory(index), client, n=width, agent=agent, log=log,
                                    listeners=[count])
        answer = result.answer
        if answer is None:
            error = "; ".join(result.errors.values()) or "no answer"
    except Exception as exc:  # one broken episode is recorded; the eval goes on
        error = f"{type(exc).__name__}: {exc}"
        log.log(StepKind.ERROR, trajectory_id=-1, text=error, data={"error": type(exc).__name__, "stage": "eval"})
    finally:
        log.close()
    correct = dataset.grade(index, answer) if answer is not None else False
    return EpisodeOutcome(task_id=info.task_id, index=index, strategy=strategy, n=width, answer=answer,
                          gold=info.gold, correct=correct, tokens=client.completion_tokens, tool_calls=tool_calls,
                          seconds=round(time.perf_counter() - started, 2), run_id=log.run_id, error=error)


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
) -> list[EpisodeOutcome]:
    """Every (strategy, task) pair, strategy by strategy, ``concurrency`` episodes at a time."""
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategy {unknown[0]!r}; choose from: {', '.join(STRATEGIES)}")
    count = len(dataset) if limit is None else min(limit, len(dataset))
    outcomes = outcomes if outcomes is not None else []
    wall = wall if wall is not None else {}
    sem = asyncio.Semaphore(max(1, concurrency))

    async def episode(index: int, strategy: str) -> None:
        async with sem:
            client = client_factory()
            try:
                outcome = await run_episode_outcome(dataset, index, strategy, client, n=n, agent=agent,
                                                    runs_dir=runs_dir)
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
        tasks = [asyncio.ensure_future(episode(i, strategy)) for i in range(count)]
        try:
            await asyncio.gather(*tasks)
        finally:  # an abort (or Ctrl-C) cancels the episodes still running; their logs close on the way out
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            wall[strategy] = time.perf_counter() - started
    return outcomes


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
