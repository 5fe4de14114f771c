"""The one runner: a task (a question, an environment, or a factory of them) under a strategy.

The CLI's ``solve``, ``run`` and ``eval``, the Python ``run``/``solve`` and the eval runner all
call ``arun``. It is the only place that creates a run's step log, writes its metadata and its
RUN_END record, and closes it; it builds one environment per trajectory, runs the parallel graph
(``single`` is that graph with one trajectory), and reports the decision graded by the task's
own checker, so the reward, the vote, the verdict and the eval's grade cannot disagree.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from peerstep._endpoint import Endpoint, _run_sync
from peerstep._errors import InputError
from peerstep.agent import AgentConfig, ModelClient, Trajectory
from peerstep.agent._trajectory import Listener, TokenSink
from peerstep.environments import Environment, QuestionEnvironment
from peerstep.graphs import ParallelConfig, ParallelRun
from peerstep.registry import STRATEGIES
from peerstep.steplog import StepKind, StepLog, StepRecord
from peerstep.strategies import strategy_config, strategy_verifiers, trajectory_sampling
from peerstep.tools import Tool
from peerstep.verify import Decision, Verifier

Task = str | Environment | Callable[[], Environment]


class EpisodeResult(BaseModel):
    """The outcome of one task under one strategy."""

    run_id: str
    log_path: Path
    strategy: str = "single"
    n: int = 1
    answer: str | None
    gold: str | None = None
    correct: bool | None = Field(default=None, description="the answer graded by the task's checker; None w/o gold")
    reward: float | None = Field(default=None, description="the environment's reward; None when nothing scores it")
    steps: int = Field(description="model calls, all trajectories")
    tokens: int = Field(description="generated tokens, all trajectories (summaries and judges included)")
    tool_calls: int = 0
    rounds: int = 0
    stop_reason: str = ""
    answers: dict[int, str | None] = Field(default_factory=dict)
    errors: dict[int, str] = Field(default_factory=dict)
    error: str | None = Field(default=None, description="why there is no answer, when there is none")
    decision: Decision | None = None
    seconds: float = 0.0


def question_factory(question: str, *, gold: str | None = None, tools: list[Tool] | None = None,
                     python: bool = True, search: str | None = None, max_question_chars: int | None = None,
                     pool: Any = None) -> Callable[[], Environment]:
    """A factory of ``QuestionEnvironment``s for ``question``; builds one at once so bad input fails early."""
    from peerstep.tools.python import PythonSession

    def make() -> Environment:
        offered = tools
        if search:
            from peerstep.tools import default_tools
            from peerstep.tools.search import open_index, search_tools

            offered = [*(tools if tools is not None else default_tools()), *search_tools(open_index(search))]
        session: PythonSession | bool = PythonSession(pool=pool) if (python and pool is not None) else python
        kwargs: dict[str, Any] = {} if max_question_chars is None else {"max_chars": max_question_chars}
        return QuestionEnvironment(question, gold=gold, tools=offered, python=session, **kwargs)

    return make


def check_run(strategy: str, n: int, *, python: bool = True) -> int:
    """Validate a run's shape before anything starts (an engine takes minutes); returns the trajectory count.

    Unknown strategies and ``n < 1`` raise ``InputError``; more trajectories with Python than sandboxes may run at
    once raise ``SandboxCapacityError`` (one sandbox per trajectory).
    """
    if strategy not in STRATEGIES:
        raise InputError(f"unknown strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    width = 1 if strategy == "single" else n
    if width < 1:
        raise InputError(f"n must be at least 1, got {n}")
    if python:
        from peerstep.tools.sandbox import check_pool_size

        check_pool_size(width)
    return width


async def arun(
    task: Task,
    client: ModelClient,
    *,
    strategy: str = "single",
    n: int = 4,
    agent: AgentConfig | None = None,
    parallel: ParallelConfig | None = None,
    verifiers: list[Verifier] | None = None,
    gold: str | None = None,
    tools: list[Tool] | None = None,
    python: bool = True,
    search: str | None = None,
    max_question_chars: int | None = None,
    log: StepLog | None = None,
    runs_dir: Path | None = None,
    listeners: list[Listener] | None = None,
    on_token: TokenSink | None = None,
    meta: dict[str, Any] | None = None,
) -> EpisodeResult:
    """Run ``task`` under ``strategy`` with ``client``; every step goes to ``log`` (a new run if None).

    ``task`` is a question (with ``gold``, ``tools``, ``python``, ``search`` for its environment), an
    environment (one trajectory only), or a zero-argument factory of environments (one per trajectory).
    ``parallel``/``verifiers`` override the strategy's defaults. ``on_token(trajectory_id, text)`` streams
    the model's tokens for every strategy.
    """
    agent = agent or AgentConfig()
    width = check_run(strategy, n, python=python and isinstance(task, str))
    config = parallel or strategy_config(strategy, width, agent)
    pool = None
    if isinstance(task, str):
        if python and config.n > 1:  # pre-started sandboxes, so N trajectories do not pay N cold starts
            from peerstep.tools.sandbox import SandboxPool, make_sandbox

            pool = SandboxPool(make_sandbox, size=config.n)
        factory = question_factory(task, gold=gold, tools=tools, python=python, search=search,
                                   max_question_chars=max_question_chars, pool=pool)
        meta = {"question": task.strip()[:2000], **(meta or {})}
    elif isinstance(task, Environment):
        if config.n > 1:
            raise InputError(f"strategy {strategy!r} runs {config.n} trajectories, and each needs its own "
                             "environment: pass a factory (a function that returns a new environment)")
        env_instance = task
        factory = lambda: env_instance  # noqa: E731
    else:
        factory = task
    envs: list[Environment] = []
    tool_calls = 0
    finish_name = "submit_answer"

    def count(rec: StepRecord) -> None:
        nonlocal tool_calls
        if rec.kind == StepKind.TOOL_CALL and rec.tool is not None and rec.tool.name != finish_name:
            tool_calls += 1

    own_log = log is None
    started = time.perf_counter()
    tokens_before = client.completion_tokens
    try:
        envs = [factory() for _ in range(config.n)]
        finish_name = getattr(envs[0], "finish_tool", "submit_answer")
        if verifiers is None:
            verifiers = strategy_verifiers(strategy, client, envs[0].checker)
        log = log or StepLog.create(directory=runs_dir, meta={
            "model": client.model, "base_url": client.base_url, "strategy": strategy, "n": config.n,
            "gold": envs[0].gold, "agent": agent.model_dump(), "config": config.model_dump(), **(meta or {})})
        if pool is not None:
            await pool.start()
        trajectories = [
            Trajectory(client, env, log, agent.model_copy(update={
                "sampling": trajectory_sampling(agent.sampling, i, config.n)}),
                trajectory_id=i, listeners=[count, *(listeners or [])], on_token=on_token)
            for i, env in enumerate(envs)
        ]
        result = await ParallelRun(trajectories, config, log, verifiers, listeners).run()
        error = None
        if result.answer is None:
            error = "; ".join(sorted(set(result.errors.values()))) or "no trajectory produced an answer"
        reward = result.reward if config.n == 1 else (None if result.correct is None else float(result.correct))
        out = EpisodeResult(
            run_id=log.run_id, log_path=log.path, strategy=strategy, n=config.n, answer=result.answer,
            gold=envs[0].gold, correct=result.correct, reward=reward, steps=result.steps,
            tokens=client.completion_tokens - tokens_before, tool_calls=tool_calls, rounds=result.rounds,
            stop_reason=result.stop_reason, answers=result.answers, errors=result.errors, error=error,
            decision=result.decision, seconds=round(time.perf_counter() - started, 3))
        log.log(StepKind.RUN_END, trajectory_id=-1, text=out.answer, data={
            "strategy": strategy, "error": error, "steps": out.steps, "tokens": out.tokens, "reward": out.reward,
            "correct": out.correct, "rounds": out.rounds, "stop_reason": out.stop_reason})
        log.set_meta({"status": "error" if error else "done", "answer": out.answer, "correct": out.correct})
        return out
    except BaseException as exc:  # Ctrl-C, cancellation, a bug: the run says how it ended before it closes
        if log is not None:
            with contextlib.suppress(Exception):  # a full disk must not hide the original error
                log.log(StepKind.ERROR, trajectory_id=-1, text=f"{type(exc).__name__}: {exc}",
                        data={"error": type(exc).__name__, "stage": "run"})
                log.set_meta({"status": "interrupted" if isinstance(exc, KeyboardInterrupt | GeneratorExit)
                              or type(exc).__name__ == "CancelledError" else "error"})
        raise
    finally:
        for env in envs:
            await env.close()
        if pool is not None:
            await pool.close()
        if own_log and log is not None:
            log.close()


def run(task: Task, *, base_url: str | None = None, model: str | None = None, api_key: str | None = None,
        engine: str | None = None, engine_config: Any = None, **options: Any) -> EpisodeResult:
    """``arun`` from sync code: opens an endpoint (starting the embedded engine unless ``base_url`` is given),
    runs, and closes it. Works inside a running event loop (Jupyter) too; there ``await arun(...)`` is better."""
    if isinstance(task, str):  # bad input fails before any engine starts
        question_factory(task, gold=options.get("gold"), tools=options.get("tools"),
                         python=False, max_question_chars=options.get("max_question_chars"))()
    endpoint = Endpoint(base_url=base_url, model=model, api_key=api_key, engine=engine, engine_config=engine_config)

    async def main() -> EpisodeResult:
        async with endpoint as client:
            try:
                await client.check()
                return await arun(task, client, **options)
            finally:
                await client.close()

    return _run_sync(main())


async def asolve(question: str, client: ModelClient, **options: Any) -> EpisodeResult:
    """Answer one question with ``client`` (``arun`` for a question)."""
    return await arun(question, client, **options)


def solve(question: str, **options: Any) -> EpisodeResult:
    """Answer one question, starting the embedded engine unless ``base_url`` is given (``run`` for a question)."""
    return run(question, **options)
