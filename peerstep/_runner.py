"""The one runner: a task (a question, an environment, or a factory of them) under a strategy.

The CLI's ``solve``, ``run`` and ``eval``, the Python ``run``/``solve`` and the eval runner all
call ``arun``. It is the only place that creates a run's step log, writes its metadata and its
RUN_END record, and closes it; it builds one environment per trajectory, runs the parallel graph
(``single`` is that graph with one trajectory), and reports the decision graded by the task's
own checker, so the reward, the vote, the verdict and the eval's grade cannot disagree.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from langgraph.checkpoint.base import BaseCheckpointSaver
from pydantic import BaseModel, Field

from peerstep._endpoint import Endpoint, _run_sync
from peerstep._errors import InputError
from peerstep.agent import AgentConfig, ApprovalDecision, Approver, ModelClient, Trajectory
from peerstep.agent._trajectory import APPROVAL_KIND, Listener, TokenSink
from peerstep.environments import Environment, QuestionEnvironment
from peerstep.graphs import ParallelConfig, ParallelRun
from peerstep.graphs.parallel import Paused, PendingDecision
from peerstep.registry import STRATEGIES
from peerstep.steplog import StepKind, StepLog, StepRecord
from peerstep.steplog._store import StepLogError, _process_start
from peerstep.strategies import (
    NamedVerifiers,
    VerifierFactory,
    strategy_config,
    strategy_verifiers,
    strategy_width,
    trajectory_sampling,
    verifier_factory,
)
from peerstep.tools import Tool
from peerstep.verify import Decision, ListwiseJudge, Verifier

Task = str | Environment | Callable[[], Environment]
WITHOUT_INJECTION = "peer_inject"
"""A fork's meta ``fork.without``: it continues from a peer injection minus the peer comment."""
T = TypeVar("T")
RESTARTED = ("Note: the Python session was restarted and your earlier cells were run again, but some printed "
             "something different this time, so variables they set may differ from before; recompute what you need.")


RunHook = Callable[[Path, str], None]
_AFTER_RUN: contextvars.ContextVar[tuple[RunHook, ...]] = contextvars.ContextVar("peerstep_after_run", default=())


@contextlib.contextmanager
def after_run(hook: RunHook) -> Iterator[None]:
    """While inside, ``hook(log_path, run_id)`` is called when each run this context starts ends (done, failed or
    paused; not when interrupted), after its log is complete. It runs in a thread, so a slow hook (sending the run's
    trace: ``--trace-to``) does not stall the other runs of an eval; an exception it raises is logged, never the
    run's. One mechanism for every command, since every run passes through ``_drive``."""
    token = _AFTER_RUN.set((*_AFTER_RUN.get(), hook))
    try:
        yield
    finally:
        _AFTER_RUN.reset(token)


async def _call_after_run(log: StepLog) -> None:
    for hook in _AFTER_RUN.get():
        try:
            await asyncio.to_thread(hook, log.path, log.run_id)
        except Exception:  # a hook's failure is its own; the run has ended and is logged
            logging.getLogger(__name__).warning("after-run hook failed for run %s", log.run_id, exc_info=True)


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
    status: str = Field(default="done", description="done | error | paused (waiting for ``pending`` decisions)")
    pending: list[PendingDecision] = Field(default_factory=list, description="decisions a paused run waits for")
    transcripts: dict[int, list[dict[str, Any]]] = Field(
        default_factory=dict, exclude=True, repr=False,
        description="each trajectory's conversation at the end, as the model saw it (a chat's next turn continues "
        "from the adopted one); in memory only: the step log is the record")


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


def check_run(strategy: str, n: int | None, *, python: bool = True) -> int:
    """Validate a run's shape before anything starts (an engine takes minutes); returns the trajectory count.

    Unknown strategies and ``n < 1`` raise ``InputError``; more trajectories with Python than sandboxes may run at
    once raise ``SandboxCapacityError`` (one sandbox per trajectory).
    """
    if strategy not in STRATEGIES:
        raise InputError(f"unknown strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    width = strategy_width(strategy, n)
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
    n: int | None = None,
    agent: AgentConfig | None = None,
    parallel: ParallelConfig | None = None,
    verifiers: list[Verifier] | VerifierFactory | None = None,
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
    checkpoint: bool | BaseCheckpointSaver[Any] = True,
    approver: Approver | None = None,
    judge: ListwiseJudge | None = None,
) -> EpisodeResult:
    """Run ``task`` under ``strategy`` with ``client``; every step goes to ``log`` (a new run if None). ``n``
    trajectories (default: the strategy's own, ``Strategy.default_n``: 8 for ``adaptive``, 4 for the others).

    ``task`` is a question (with ``gold``, ``tools``, ``python``, ``search`` for its environment), an
    environment (one trajectory only), or a zero-argument factory of environments (one per trajectory).
    ``parallel``/``verifiers`` override the strategy's defaults (``verifiers`` may be a factory of them, called
    with the client and the task's checker). ``on_token(trajectory_id, text)`` streams
    the model's tokens for every strategy. With ``checkpoint`` (the default) the run is checkpointed beside its
    log, so ``aresume`` can continue it after a crash and a paused run (``EpisodeResult.pending``) can be answered;
    a LangGraph saver of your own (``checkpoint=saver``) holds the checkpoints instead, and is passed to ``aresume``.
    Calls that ``agent.approve`` asks about go to ``approver`` (a callable, sync or async, taking an
    ``ApprovalRequest`` and returning an ``ApprovalDecision``) while the other trajectories run on; without one
    the run pauses for them. ``judge`` is the list-wise judge of the ``listwise`` aggregation (default: one on
    ``client``); give one on a larger model, since a small model judging its own samples loses to the vote.
    """
    agent = agent or AgentConfig()
    width = check_run(strategy, n, python=python and isinstance(task, str))
    config = parallel or strategy_config(strategy, width, agent)
    if isinstance(task, Environment) and config.n > 1:
        raise InputError(f"strategy {strategy!r} runs {config.n} trajectories, and each needs its own "
                         "environment: pass a factory (a function that returns a new environment)")
    if isinstance(task, str):
        # what ``resume`` needs to rebuild the environments (custom tools cannot be rebuilt from a log)
        meta = {"question": task.strip()[:2000], "python": python, "search": search,
                "max_question_chars": max_question_chars, "custom_tools": tools is not None, **(meta or {})}
    factory, pool = _factory_for(task, {"python": python, "search": search, "gold": gold,
                                        "max_question_chars": max_question_chars}, config.n, tools=tools)
    return await _drive(factory, client, strategy=strategy, agent=agent, config=config, verifiers=verifiers,
                        log=log, runs_dir=runs_dir, listeners=listeners, on_token=on_token, meta=meta, pool=pool,
                        checkpoint=checkpoint, approver=approver, judge=judge)


async def aresume(run_id: str, client: ModelClient, *, task: Task | None = None, runs_dir: Path | None = None,
                  decisions: dict[str, Any] | None = None,
                  verifiers: list[Verifier] | VerifierFactory | None = None,
                  listeners: list[Listener] | None = None, on_token: TokenSink | None = None,
                  checkpointer: BaseCheckpointSaver[Any] | None = None,
                  approver: Approver | None = None) -> EpisodeResult:
    """Continue a run from its checkpoint: after a crash or a kill, or, with ``decisions`` (interrupt id → value),
    a run paused for decisions. An approval's value is anything ``ApprovalDecision.coerce`` takes; it is checked
    before anything runs. Approvals asked after the resume go to ``approver`` when one is given; a call the run
    paused at is then asked of it again, so give ``decisions`` or an ``approver`` for the paused calls, not both.

    Finished model and tool calls are not redone: each trajectory continues from its last checkpointed reason/act
    step, and steps the killed process wrote after it are superseded (kept on disk, out of the log). The Python
    sandbox is rebuilt by replaying the trajectory's logged cells. The step log continues in the same file. A run
    built from a question is rebuilt from its log; any other needs its ``task`` (the same factory) again.
    """
    meta = resumable(run_id, runs_dir, task_given=task is not None, checkpointer=checkpointer)
    decisions = checked_decisions(decisions, meta.get("pending") or [])
    log = StepLog.open(run_id, runs_dir)
    try:
        if task is None:
            task = meta["question"]
        try:
            agent = AgentConfig.model_validate(meta["agent"])
            config = ParallelConfig.model_validate(meta["config"])
        except (KeyError, ValueError) as exc:
            raise InputError(f"run {log.run_id}'s recorded configuration cannot be read back: {exc}") from exc
        strategy = str(meta.get("strategy", "single"))
        if verifiers is None and isinstance(meta.get("verifiers"), list):  # the run's own --verifier choice
            verifiers = verifier_factory([str(v) for v in meta["verifiers"]])
        factory, pool = _factory_for(task, meta, config.n)
        fork = None
        if isinstance(meta.get("fork"), dict):  # a fork killed before its start is rebuilt from its parent again
            fork = await fork_origin(meta["fork"]["run"], meta["fork"]["step"], runs_dir,
                                     without_injection=meta["fork"].get("without") == WITHOUT_INJECTION)
            fork.pop("meta")
            verifiers = verifiers if verifiers is not None else []
        log.set_meta({"status": "running", "pid": os.getpid(), "pid_started": _process_start(os.getpid()),
                      "resumes": int(meta.get("resumes", 0)) + 1})
        return await _drive(factory, client, strategy=strategy, agent=agent, config=config, verifiers=verifiers,
                            log=log, runs_dir=runs_dir, listeners=listeners, on_token=on_token, meta=None, pool=pool,
                            checkpoint=checkpointer or True, resume=True, decisions=decisions, own_log=True,
                            fork=fork, approver=approver)
    except BaseException:
        log.close()
        raise


async def afork(run_id: str, step_id: str, client: ModelClient, *, k: int = 4, task: Task | None = None,
                runs_dir: Path | None = None, agent: AgentConfig | None = None, listeners: list[Listener] | None = None,
                on_token: TokenSink | None = None, approver: Approver | None = None,
                without_injection: bool = False) -> EpisodeResult:
    """Start ``k`` new continuations of a logged trajectory from its step ``step_id``: the same conversation up to
    that step (from the run's checkpoints), new samples after it, and the Python sandbox rebuilt by replaying the
    cells logged up to it. The continuations are a new run (a majority vote of the ``k``) whose meta names its
    parent run, step and trajectory; they go to the server together, so vLLM batches them and serves their shared
    prefix from its cache. Monte-Carlo step labels are fractions of such continuations that end correct.

    ``without_injection`` makes the counterfactual of a LeaP injection: ``step_id`` must be a ``peer_inject`` step,
    and the continuations start from the same state minus exactly the peer comment it added (the meta says
    ``"without": "peer_inject"``), which is how a peer label measures what the comment changed.
    """
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    origin = await fork_origin(run_id, step_id, runs_dir, without_injection=without_injection)
    parent_meta = origin.pop("meta")
    if task is None:
        if "question" not in parent_meta or parent_meta.get("custom_tools"):
            raise InputError(f"run {run_id} was not built from a question with the built-in tools: pass its task "
                             "(the same environment factory) to fork it")
        task = parent_meta["question"]
    agent = agent or AgentConfig.model_validate(parent_meta["agent"])
    config = strategy_config("majority", k, agent)
    factory, pool = _factory_for(task, parent_meta, config.n)
    keep = {key: parent_meta.get(key) for key in ("question", "python", "search", "max_question_chars",
                                                  "custom_tools", "engine") if key in parent_meta}
    return await _drive(factory, client, strategy="majority", agent=agent, config=config, verifiers=[], log=None,
                        runs_dir=runs_dir or origin["parent_path"].parent, listeners=listeners, on_token=on_token,
                        meta={**keep, "fork": {key: origin[key] for key in ("run", "step", "trajectory", "without")
                                               if key in origin}},
                        pool=pool, checkpoint=True, fork=origin, approver=approver)


async def fork_origin(run_id: str, step_id: str, runs_dir: Path | None, *,
                      without_injection: bool = False) -> dict[str, Any]:
    """What a fork continues from: the trajectory state at the step, where it was logged, the parent's meta; with
    ``without_injection``, the state at a peer injection minus the comment it added (``drop_injection``)."""
    from peerstep._checkpoint import checkpoint_file, open_saver, state_at

    with _open_run(run_id, runs_dir) as parent:
        meta = parent.meta()
        path = checkpoint_file(parent, meta)
        async with open_saver(path) as saver:
            state = await state_at(saver, parent, step_id)
        if state.get("done"):
            raise InputError(f"trajectory {state['trajectory_id']} of run {parent.run_id} had finished at step "
                             f"{step_id}: there is nothing to continue; fork from an earlier step")
        last = next(r for r in parent.records(trajectory_id=state["trajectory_id"])
                    if r.step_id == state["last_step_id"])
        origin = {"run": parent.run_id, "step": step_id, "trajectory": state["trajectory_id"], "state": state,
                  "until": last.created_at, "parent_path": parent.path, "meta": meta}
        if without_injection:
            inject = next(r for r in parent.records(trajectory_id=state["trajectory_id"]) if r.step_id == step_id)
            origin.update(state=drop_injection(parent.run_id, state, inject), without=WITHOUT_INJECTION)
        return origin


def drop_injection(run_id: str, state: dict[str, Any], inject: StepRecord) -> dict[str, Any]:
    """``state`` (a trajectory's state just after the injection ``inject``) without the one message the injection
    appended (``peerstep.peers._share.share``: the comment block as a user turn); nothing else changes, so a fork
    from it differs from the fork with the comment by that message alone. An ``InputError`` when the step is not an
    injection or the state is not exactly at it."""
    if inject.kind != StepKind.PEER_INJECT:
        raise InputError(f"step {inject.step_id} of run {run_id} is a {inject.kind.value} step, not a peer "
                         "injection: only an injection can be forked without its comment")
    messages = list(state.get("messages") or [])
    if state.get("last_step_id") != inject.step_id or not messages \
            or messages[-1] != {"role": "user", "content": inject.text}:
        raise InputError(f"run {run_id}'s checkpoint at injection {inject.step_id} does not end with its comment; "
                         "it cannot be forked without it")
    return {**state, "messages": messages[:-1]}


def _open_run(run_id: str, runs_dir: Path | None) -> StepLog:
    """An existing run's log; a run that is not there is the caller's input error."""
    try:
        return StepLog.open(run_id, runs_dir)
    except StepLogError as exc:
        raise InputError(str(exc)) from exc


def _factory_for(task: Task, meta: dict[str, Any], width: int, *,
                 tools: list[Tool] | None = None) -> tuple[Callable[[], Environment], Any]:
    """The environments of a run (new, resumed or forked): a question's from its settings (``python``, ``search``,
    ``gold``, ``max_question_chars`` in ``meta``), else the given environment or factory."""
    pool = None
    if isinstance(task, str):
        python = bool(meta.get("python", True))
        if python and width > 1:  # pre-started sandboxes, so N trajectories do not pay N cold starts
            from peerstep.tools.sandbox import SandboxPool, make_sandbox

            pool = SandboxPool(make_sandbox, size=width)
        return question_factory(task, gold=meta.get("gold"), tools=tools, python=python, search=meta.get("search"),
                                max_question_chars=meta.get("max_question_chars"), pool=pool), pool
    if isinstance(task, Environment):
        env_instance = task
        return (lambda: env_instance), None
    return task, None


def checked_decisions(decisions: dict[str, Any] | None,
                      pending: list[dict[str, Any]]) -> dict[str, Any] | None:
    """``decisions`` with every approval's value read as an ``ApprovalDecision`` (stored as its dict), so a bad
    value is an ``InputError`` before the run continues, not a failed trajectory after it did. An id the run does
    not wait for is refused too, naming the ones it waits for."""
    if not decisions:
        return decisions
    kinds = {str(p.get("id")): (p.get("value") or {}).get("kind") if isinstance(p.get("value"), dict) else None
             for p in pending}
    out = {}
    for key, value in decisions.items():
        if pending and key not in kinds:
            raise InputError(f"the run waits for no decision {key!r}; it waits for: {', '.join(kinds)}")
        out[key] = ApprovalDecision.coerce(value).model_dump() if kinds.get(key) == APPROVAL_KIND else value
    return out


def resumable(run_id: str, runs_dir: Path | None = None, *, task_given: bool = False,
              checkpointer: BaseCheckpointSaver[Any] | None = None) -> dict[str, Any]:
    """The meta of a run that ``aresume`` can continue, or an ``InputError`` saying why it cannot. Read only: cheap,
    so a CLI checks it before it starts an engine, and a run that cannot be resumed is left as it was."""
    from peerstep._checkpoint import checkpoint_file

    with _open_run(run_id, runs_dir) as log:
        meta = log.settle_status()
        status = meta.get("status")
        if status in ("done", "error"):
            raise InputError(f"run {log.run_id} already finished (status {status}); there is nothing to resume")
        if status == "running":
            raise InputError(f"run {log.run_id} is still running (process {meta.get('pid')}); stop it before "
                             "resuming it")
        if checkpointer is None:
            checkpoint_file(log, meta)
        if not task_given and ("question" not in meta or meta.get("custom_tools")):
            raise InputError(f"run {log.run_id} was not built from a question with the built-in tools: pass its "
                             "task (the same environment factory) to resume it")
    return meta


async def _drive(factory: Callable[[], Environment], client: ModelClient, *, strategy: str, agent: AgentConfig,
                 config: ParallelConfig, verifiers: list[Verifier] | VerifierFactory | None, log: StepLog | None,
                 runs_dir: Path | None, listeners: list[Listener] | None, on_token: TokenSink | None,
                 meta: dict[str, Any] | None, pool: Any, checkpoint: bool | BaseCheckpointSaver[Any],
                 resume: bool = False,
                 decisions: dict[str, Any] | None = None, own_log: bool | None = None,
                 fork: dict[str, Any] | None = None, approver: Approver | None = None,
                 judge: ListwiseJudge | None = None) -> EpisodeResult:
    """The one place a run is carried out: environments, trajectories, the graph, and how the run ended."""
    agent = agent.with_server_defaults(client)  # the same defaults whichever entry point started the run
    from peerstep._checkpoint import checkpoint_meta, checkpoint_path, open_saver, replay, sweep

    envs: list[Environment] = []
    tool_calls = 0
    finish_name = "submit_answer"

    def count(rec: StepRecord) -> None:
        nonlocal tool_calls
        if rec.kind == StepKind.TOOL_CALL and rec.tool is not None and rec.tool.name != finish_name:
            tool_calls += 1

    own_log = log is None if own_log is None else own_log
    interrupted = False
    started = time.perf_counter()
    tokens_before = client.completion_tokens
    try:
        envs = [factory() for _ in range(config.n)]
        finish_name = getattr(envs[0], "finish_tool", "submit_answer")
        named = verifiers
        if verifiers is None:
            verifiers = strategy_verifiers(strategy, client, envs[0].checker)
        elif callable(verifiers):  # a factory (``--verifier``): per task, with its checker
            verifiers = verifiers(client, envs[0].checker)
        log = log or StepLog.create(directory=runs_dir, meta={
            "model": client.model, "base_url": client.base_url, "strategy": strategy, "n": config.n,
            "gold": envs[0].gold, "agent": agent.model_dump(), "config": config.model_dump(), **(meta or {}),
            **({"verifiers": named.specs} if isinstance(named, NamedVerifiers) else {})})
        own_saver = isinstance(checkpoint, BaseCheckpointSaver)
        if checkpoint and not resume:
            info = checkpoint_meta(log)
            if own_saver:  # the checkpoints live in the caller's saver; the meta names it, no file
                info = {**info, "file": None, "saver": type(checkpoint).__name__}
            log.set_meta({"checkpoint": info})
        if pool is not None:
            await pool.start()
        trajectories = [
            Trajectory(client, env, log, agent.model_copy(update={
                "sampling": trajectory_sampling(agent.sampling, i, config.n, greedy_first=config.greedy_first)}),
                trajectory_id=i, listeners=[count, *(listeners or [])], on_token=on_token, approver=approver)
            for i, env in enumerate(envs)
        ]
        origin: dict[str, Any] | None = None
        if fork:
            origin = {key: fork[key] for key in ("run", "step", "trajectory", "without") if key in fork}
        parallel = ParallelRun(trajectories, config, log, verifiers, listeners,
                               initial=fork["state"] if fork else None, origin=origin,
                               judge=(judge or ListwiseJudge(client)) if config.aggregate == "listwise" else None)
        async with contextlib.AsyncExitStack() as stack:
            saver: BaseCheckpointSaver[Any] | None = None
            if isinstance(checkpoint, BaseCheckpointSaver):
                saver = checkpoint
            elif checkpoint:
                saver = await stack.enter_async_context(open_saver(checkpoint_path(log)))
            if fork and not resume:  # each continuation's sandbox holds what the trajectory's had at the step
                for traj in trajectories:
                    await traj.reattach()
                with StepLog(fork["parent_path"], fork["run"]) as parent_log:
                    for traj in trajectories:
                        replayed = await replay(traj.tools, parent_log, fork["trajectory"], until=fork["until"],
                                                into=log, into_trajectory=traj.trajectory_id)
                        if replayed["mismatched"]:
                            traj.notices.append(RESTARTED)
            if resume:
                for traj in trajectories:
                    await traj.reattach()
                superseded = await sweep(parallel.build(saver), parallel.graph_config(), log)
                replays = {t.trajectory_id: await replay(t.tools, log, t.trajectory_id) for t in trajectories}
                for traj in trajectories:
                    if replays[traj.trajectory_id]["mismatched"]:
                        traj.notices.append(RESTARTED)
                parallel.run_record(StepKind.RESUME, text="resumed from the last checkpoint", data={
                    "superseded": len(superseded), "replayed": replays, "decisions": sorted(decisions or {})})
            result = await parallel.run(saver, resume=resume, decisions=decisions)
        if isinstance(result, Paused):
            log.set_meta({"status": "paused", "pending": [p.model_dump() for p in result.pending]})
            return EpisodeResult(run_id=log.run_id, log_path=log.path, strategy=strategy, n=config.n, answer=None,
                                 gold=envs[0].gold, steps=0, tokens=client.completion_tokens - tokens_before,
                                 tool_calls=tool_calls, status="paused", pending=result.pending,
                                 seconds=round(time.perf_counter() - started, 3))
        error = None
        if result.answer is None:
            error = "; ".join(sorted(set(result.errors.values()))) or "no trajectory produced an answer"
        reward = result.reward if config.n == 1 else (None if result.correct is None else float(result.correct))
        out = EpisodeResult(
            run_id=log.run_id, log_path=log.path, strategy=strategy, n=config.n, answer=result.answer,
            gold=envs[0].gold, correct=result.correct, reward=reward, steps=result.steps,
            tokens=client.completion_tokens - tokens_before, tool_calls=tool_calls, rounds=result.rounds,
            stop_reason=result.stop_reason, answers=result.answers, errors=result.errors, error=error,
            decision=result.decision, seconds=round(time.perf_counter() - started, 3),
            status="error" if error else "done", transcripts=result.transcripts)
        log.log(StepKind.RUN_END, trajectory_id=-1, text=out.answer, data={
            "strategy": strategy, "error": error, "steps": out.steps, "tokens": out.tokens, "reward": out.reward,
            "correct": out.correct, "rounds": out.rounds, "stop_reason": out.stop_reason})
        log.set_meta({"status": out.status, "answer": out.answer, "correct": out.correct, "pending": []})
        return out
    except BaseException as exc:  # Ctrl-C, cancellation, a bug: the run says how it ended before it closes
        interrupted = not isinstance(exc, Exception)
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
        if log is not None and not interrupted:
            await _call_after_run(log)


def run(task: Task, *, endpoint: Endpoint | None = None, base_url: str | None = None, model: str | None = None,
        api_key: str | None = None, engine: str | None = None, engine_config: Any = None,
        **options: Any) -> EpisodeResult:
    """``arun`` from sync code: opens an endpoint built from ``base_url``, ``model``, ``api_key``, ``engine`` and
    ``engine_config`` (starting the embedded engine unless a base URL is given), runs, and closes it; or runs on
    ``endpoint``, opened if needed and left open, so one engine serves many runs until the caller closes it.
    Works inside a running event loop (Jupyter) too; there ``await arun(...)`` is better."""
    if isinstance(task, str):  # bad input fails before any engine starts
        question_factory(task, gold=options.get("gold"), tools=options.get("tools"),
                         python=False, max_question_chars=options.get("max_question_chars"))()
    given = endpoint is not None
    endpoint = _endpoint(endpoint, base_url=base_url, model=model, api_key=api_key, engine=engine,
                         engine_config=engine_config)
    return _run_sync(on_endpoint(endpoint, lambda client: arun(task, client, **options), keep_open=given))


def _endpoint(endpoint: Endpoint | None, **settings: Any) -> Endpoint:
    """The endpoint given, or one built from the settings; both at once is ambiguous."""
    if endpoint is None:
        return Endpoint(**settings)
    given = sorted(name for name, value in settings.items() if value is not None)
    if given:
        raise InputError(f"pass either endpoint= or {', '.join(given)}, not both")
    return endpoint


async def on_endpoint(endpoint: Endpoint, work: Callable[[ModelClient], Awaitable[T]], *,
                      keep_open: bool = False) -> T:
    """Open ``endpoint`` (starting its engine if it has one), check the server answers, do ``work`` with its
    client, and close both whatever happens: what every sync entry point and the CLI do around a run. With
    ``keep_open`` (an endpoint the caller passed in) the endpoint stays open for the caller to reuse and close."""
    try:
        client = await endpoint.aopen()
    except BaseException:
        if not keep_open:  # an engine that started but does not answer is stopped, not left behind
            await endpoint.aclose()
        raise
    try:
        await client.check()
        return await work(client)
    finally:
        await client.close()
        if not keep_open:
            await endpoint.aclose()


def resume(run_id: str, *, endpoint: Endpoint | None = None, base_url: str | None = None, model: str | None = None,
           api_key: str | None = None, engine: str | None = None, engine_config: Any = None,
           **options: Any) -> EpisodeResult:
    """``aresume`` from sync code: checks the run can be resumed, opens an endpoint (the embedded engine unless
    ``base_url`` is given), continues the run and closes the endpoint."""
    meta = resumable(run_id, options.get("runs_dir"), task_given=options.get("task") is not None)
    given = endpoint is not None
    if endpoint is None:
        endpoint = Endpoint(base_url=base_url, model=model or meta.get("model"), api_key=api_key,
                            engine=engine or (None if base_url else meta.get("engine")),
                            engine_config=engine_config)
    else:
        endpoint = _endpoint(endpoint, base_url=base_url, model=model, api_key=api_key, engine=engine,
                             engine_config=engine_config)
    return _run_sync(on_endpoint(endpoint, lambda client: aresume(run_id, client, **options), keep_open=given))


def fork(run_id: str, step_id: str, *, k: int = 4, endpoint: Endpoint | None = None, base_url: str | None = None,
         model: str | None = None, api_key: str | None = None, engine: str | None = None,
         engine_config: Any = None, **options: Any) -> EpisodeResult:
    """``afork`` from sync code, on an endpoint it opens and closes (or on ``endpoint``, opened if needed and left
    open for the caller; the embedded engine unless ``base_url``)."""
    given = endpoint is not None
    endpoint = _endpoint(endpoint, base_url=base_url, model=model, api_key=api_key, engine=engine,
                         engine_config=engine_config)
    return _run_sync(on_endpoint(endpoint, lambda client: afork(run_id, step_id, client, k=k, **options),
                                 keep_open=given))


async def asolve(question: str, client: ModelClient, **options: Any) -> EpisodeResult:
    """Answer one question with ``client`` (``arun`` for a question)."""
    return await arun(question, client, **options)


def solve(question: str, **options: Any) -> EpisodeResult:
    """Answer one question, starting the embedded engine unless ``base_url`` is given (``run`` for a question)."""
    return run(question, **options)
