"""Monte-Carlo step labels (Math-Shepherd; OmegaPRM's binary search) over logged tool-using trajectories.

One *step* is one model call (a ``reason`` record) together with the tool call(s) it made and their
observation(s): the unit a ReAct agent acts in, and the one ToolComp labels. A step's value is measured from the
state just after its last observation (the conversation including the tool result, the sandbox replayed): ``K``
continuations are sampled from there with ``afork`` (they go to the server together, one new run per labelled
step, so the evidence for every label can be opened) and graded by the task's own checker. The step that submits
the answer is labelled by the graded answer itself: its own trajectory is the one continuation there is.

Each label is a ``label`` record appended to the original run's log (``parent_id`` = the labelled reason step):
``mc_n`` (K), ``mc_k`` (correct continuations), ``value`` = k/n (soft), ``hard`` = k > 0, ``first_error``,
``fork_run`` (the continuations' run) and ``step``. ``first_error`` follows the issue's rule: the first step whose
value is 0 *after a step with a positive value*. A trajectory whose very first step already has value 0 gets no
first error: nothing shows the model could have solved the task from before that step, so the zero may be the
problem's, not the step's. At most one step per trajectory is flagged.

Labels are append-only, so labelling is resumable: a step that already has a label is not labelled again. With
``search="binary"`` only trajectories that ended wrong are searched: the probes (steps whose value is measured)
are chosen by binary search for the first error, assuming values only fall along a trajectory, and a
trajectory's probe labels are written together when its search ends (so their ``first_error`` flags are right);
a trajectory that ended right gets its outcome label only.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from peerstep._errors import InputError
from peerstep._runner import Task, afork
from peerstep.agent import ModelClient
from peerstep.evals import load_eval
from peerstep.grading import DEFAULT_CHECKER, Checker, grade
from peerstep.steplog import StepKind, StepLog, StepRecord
from peerstep.steplog._steps import Step, labels_of, trajectory_steps
from peerstep.steplog._store import StepLogError

SEARCHES = ("full", "binary")


@dataclass
class Target:
    """One run to label: its log's id, the task its forks need, and how its answers are graded."""

    run_id: str
    task: Task | None
    gold: str
    checker: Checker = field(default=DEFAULT_CHECKER)


class LabelSummary(BaseModel):
    """What a ``label`` pass did; ``skipped`` says which runs were left out and why."""

    runs: int = 0
    trajectories: int = 0
    labelled: int = Field(default=0, description="label records written by this pass")
    already: int = Field(default=0, description="steps labelled by an earlier pass (not labelled again)")
    rollouts: int = 0
    full_rollouts: int = Field(default=0, description="what rolling out from every step would have cost")
    tokens: int = 0
    seconds: float = 0.0
    skipped: dict[str, str] = Field(default_factory=dict, description="run id -> why it was not labelled")
    skipped_trajectories: int = Field(default=0, description="trajectories without a submitted answer")
    no_comment: int = Field(default=0, description="--peers: injections that carried no peer's words (no peer was "
                                                   "left to hear), so there is nothing to take away; not labelled")


Progress = Callable[[str, dict[str, Any]], None]
"""Called as ``progress(event, info)``: ``plan`` (steps to label), ``step`` (one label written: rollouts, tokens)."""


def open_target(run_id: str, runs_dir: Path | None, dataset: dict[str, Any] | None = None) -> Target | str:
    """The run as a label target, or why it is skipped (no gold, a fork, still running). A run that is not there,
    or whose log cannot be read, is an ``InputError``: the command stops before anything starts."""
    try:
        with StepLog.open(run_id, runs_dir) as log:
            meta = log.settle_status()
            # every record is read, so a corrupt row stops the command here, before any engine starts
            starts = [r for r in log.records() if r.kind == StepKind.RUN_START]
            run_id = log.run_id
    except (StepLogError, sqlite3.Error, ValueError) as exc:  # a row that is not a record is a ValueError
        raise InputError(f"run {run_id}: cannot read its log ({str(exc).splitlines()[0]})") from exc
    if meta.get("status") == "running":
        return f"still being written (process {meta.get('pid')}); label it when it has finished"
    if meta.get("fork"):
        return "a fork (continuations made by a label or fork); label its parent run instead"
    if not isinstance(meta.get("checkpoint"), dict) or not meta["checkpoint"].get("file"):
        return "no checkpoint file (a baseline, or run with checkpoint=False): its steps cannot be forked"
    gold = meta.get("gold")
    if gold is None or str(gold).strip() == "":
        return "no gold answer: nothing can grade its continuations"
    if meta.get("dataset"):
        if dataset is None:
            return (f"an eval episode of dataset {meta['dataset']!r}: label it through its eval report "
                    "(--eval OUT.json), which names the dataset's seed and the task's index")
        return _dataset_target(run_id, meta, starts, dataset, str(gold))
    if "question" not in meta or meta.get("custom_tools"):
        return "not built from a question with the built-in tools (a custom task): use alabel(..., tasks=...)"
    return Target(run_id=run_id, task=None, gold=str(gold))


def _dataset_target(run_id: str, meta: dict[str, Any], starts: list[StepRecord], dataset: dict[str, Any],
                    gold: str) -> Target | str:
    """An eval episode's task rebuilt from the dataset registry (name and seed from the report, the index from
    the outcome), checked to be the same task (its id) before anything is forked from it."""
    from peerstep.environments import load_dataset

    index = dataset.get("index")
    if not isinstance(index, int):
        return "its eval outcome names no task index"
    python = any("python" in (r.data.get("tools") or []) for r in starts)
    try:
        ds = load_dataset(str(meta["dataset"]), seed=dataset.get("seed", 0), limit=dataset.get("limit"),
                          python=python)
        info = ds.info(index)
    except Exception as exc:  # a dataset that cannot be rebuilt here is one skipped run, not a crash
        return f"its dataset {meta['dataset']!r} cannot be rebuilt: {type(exc).__name__}: {exc}"
    if info.task_id != meta.get("task_id"):
        return (f"dataset {meta['dataset']!r} (seed {dataset.get('seed')}) holds task {info.task_id!r} at index "
                f"{index}, not the run's {meta.get('task_id')!r}")
    return Target(run_id=run_id, task=ds.factory(index), gold=gold, checker=ds.checker(index))


def eval_targets(eval_path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(run id, dataset context) of every episode of an eval report: what rebuilds its tasks."""
    report, _ = load_eval(eval_path, report_only=True)
    assert report is not None  # report_only refuses the per-episode file
    context = {"name": report.dataset, "seed": report.seed, "limit": report.limit}
    return [(o.run_id, {**context, "index": o.index}) for o in report.outcomes if o.run_id]


def open_targets(runs: list[str | tuple[str, dict[str, Any]]], runs_dir: Path | None, tasks: dict[str, Task] | None,
                 summary: LabelSummary) -> list[Target]:
    """The runs that can be labelled; the others go to ``summary.skipped`` with why (``summary.runs`` counts the
    rest)."""
    targets: list[Target] = []
    for item in runs:
        run_id, context = (item, None) if isinstance(item, str) else item
        if tasks and run_id in tasks:
            with StepLog.open(run_id, runs_dir) as log:
                meta = log.meta()
            gold = meta.get("gold")
            found: Target | str = (Target(run_id=log.run_id, task=tasks[run_id], gold=str(gold)) if gold is not None
                                   else "no gold answer: nothing can grade its continuations")
        else:
            found = open_target(run_id, runs_dir, context)
        if isinstance(found, str):
            summary.skipped[run_id] = found
        else:
            targets.append(found)
    summary.runs = len(targets)
    return targets


class _Labeller:
    """Labels one run's trajectories; shared counters feed the summary and the progress callback."""

    def __init__(self, client: ModelClient, k: int, search: str, runs_dir: Path | None, summary: LabelSummary,
                 progress: Progress | None, forks: Any = None) -> None:
        self.client, self.k, self.search, self.runs_dir = client, k, search, runs_dir
        self.summary, self.progress, self.forks = summary, progress, forks

    async def value(self, target: Target, step: Step) -> tuple[int, str, int]:
        """(correct continuations, their run id, tokens) of K continuations from just after ``step``: here, or as a
        Ray task when labelling on a cluster (``forks``); graded here either way."""
        if self.forks is not None:
            answers, run_id, tokens = await self.forks(target.run_id, step.fork_from, self.k, target.task)
        else:
            result = await afork(target.run_id, step.fork_from, self.client, k=self.k, task=target.task,
                                 runs_dir=self.runs_dir)
            answers, run_id, tokens = result.answers, result.run_id, result.tokens
        correct = sum(1 for tid in range(self.k) if grade(answers.get(tid), target.gold, target.checker))
        return correct, run_id, tokens

    def write(self, log: StepLog, tid: int, step: Step, k: int, n: int, fork_run: str | None, first_error: bool,
              extra: dict[str, Any]) -> StepRecord:
        value = k / n if n else 0.0
        return log.log(StepKind.LABEL, trajectory_id=tid, parent_id=step.reason.step_id, text=f"{k}/{n}", data={
            "mc_n": n, "mc_k": k, "value": value, "hard": k > 0, "first_error": first_error,
            "fork_run": fork_run, "step": step.reason.step_id, "index": step.index, "search": self.search, **extra})

    async def trajectory(self, target: Target, tid: int, steps: list[Step], answer: str | None,
                         done: dict[str, StepRecord]) -> None:
        correct = grade(answer, target.gold, target.checker)
        known = {s.index: float(done[s.reason.step_id].data.get("value", 0.0)) for s in steps
                 if s.reason.step_id in done}
        self.summary.already += len(known)
        flagged = any(done[s.reason.step_id].data.get("first_error") for s in steps if s.reason.step_id in done)
        rollout_steps = [s for s in steps if not s.final]
        self.summary.full_rollouts += self.k * len(rollout_steps)
        with StepLog.open(target.run_id, self.runs_dir) as log:
            if self.search == "full":
                for step in steps:
                    if step.index in known:
                        continue
                    if step.final:
                        k, n, fork_run, tokens, extra = int(correct), 1, None, 0, {"source": "outcome"}
                    else:
                        k, fork_run, tokens = await self.value(target, step)
                        n, extra = self.k, {"source": "rollouts"}
                    value = k / n
                    first = (value == 0 and not flagged
                             and any(v > 0 for i, v in known.items() if i < step.index))
                    flagged = flagged or first
                    known[step.index] = value
                    self.write(log, tid, step, k, n, fork_run, first, extra)
                    self._count(0 if step.final else self.k, tokens)
                return
            await self._binary(log, target, tid, steps, correct, known, flagged)

    async def _binary(self, log: StepLog, target: Target, tid: int, steps: list[Step], correct: bool,
                      known: dict[int, float], flagged: bool) -> None:
        """OmegaPRM's search: the first step of value 0 in a trajectory that ended wrong, by bisection."""
        final = next((s for s in steps if s.final), steps[-1])
        probes: dict[int, tuple[int, str, int]] = {}
        if not correct and not flagged:
            lo, hi = 0, final.index
            while lo < hi:
                mid = (lo + hi) // 2
                if mid not in known:
                    k, fork_run, tokens = await self.value(target, steps[mid])
                    probes[mid] = (k, fork_run, tokens)
                    known[mid] = k / self.k
                    self._count(self.k, tokens, labelled=False)
                if known[mid] > 0:
                    lo = mid + 1
                else:
                    hi = mid
            first_error = lo if lo > 0 and known.get(lo - 1, 0) > 0 else None
        else:
            first_error = None
        for index in sorted(probes):
            k, fork_run, _ = probes[index]
            self.write(log, tid, steps[index], k, self.k, fork_run, index == first_error, {"source": "rollouts"})
            self._count(0, 0)
        if final.index not in known:
            self.write(log, tid, final, int(correct), 1, None, final.index == first_error, {"source": "outcome"})
            self._count(0, 0)

    def _count(self, rollouts: int, tokens: int, *, labelled: bool = True) -> None:
        """Count rollouts (when they ran) and labels (when they were written); tell the progress display."""
        self.summary.rollouts += rollouts
        self.summary.tokens += tokens
        self.summary.labelled += int(labelled)
        if self.progress is not None:
            self.progress("step", {"labelled": int(labelled), "rollouts": rollouts, "tokens": tokens})


async def alabel(runs: list[str | tuple[str, dict[str, Any]]], client: ModelClient, *, k: int = 4,
                 search: str = "full", runs_dir: Path | None = None, tasks: dict[str, Task] | None = None,
                 concurrency: int = 1, progress: Progress | None = None, ray_address: str | None = None,
                 ) -> LabelSummary:
    """Label every step of every finished trajectory of ``runs`` (run ids, or (run id, dataset context) pairs as
    ``eval_targets`` gives) with ``k`` continuations each; returns what was done and what was skipped.

    ``tasks`` maps a run id to its task (the same environment factory) for runs built from custom tasks.
    Trajectories of different runs and of the same run are labelled ``concurrently`` (each one's steps in order).
    ``ray_address``: the rollouts run as Ray tasks on that cluster (``"auto"``: the one this node is in), each
    worker building its own client from ``client``'s settings; labels are still written here.
    """
    if k < 1:
        raise InputError(f"--rollouts must be at least 1, got {k}")
    if search not in SEARCHES:
        raise InputError(f"unknown search {search!r}; one of: {', '.join(SEARCHES)}")
    started = time.perf_counter()
    summary = LabelSummary()
    targets = open_targets(runs, runs_dir, tasks, summary)
    work: list[tuple[Target, int, list[Step], str | None, dict[str, StepRecord]]] = []
    planned = 0
    for target in targets:
        with StepLog.open(target.run_id, runs_dir) as log:
            records = list(log.records())
        done = labels_of(records)
        tids = sorted({r.trajectory_id for r in records if r.trajectory_id >= 0 and r.kind != StepKind.LABEL})
        for tid in tids:
            mine = [r for r in records if r.trajectory_id == tid]
            final = next((r for r in mine if r.kind == StepKind.FINAL), None)
            steps = trajectory_steps(mine)
            if final is None or not steps or not steps[-1].final:
                summary.skipped_trajectories += 1
                continue
            work.append((target, tid, steps, final.text, done))
            unlabelled = sum(1 for s in steps if s.reason.step_id not in done)
            if search == "binary":  # an estimate: the outcome, plus about log2(steps) probes when it ended wrong
                wrong = not grade(final.text, target.gold, target.checker)
                unlabelled = min(unlabelled, 1 + (math.ceil(math.log2(len(steps))) if wrong else 0))
            planned += unlabelled
    summary.trajectories = len(work)
    if progress is not None:
        progress("plan", {"steps": planned, "trajectories": len(work), "search": search})
    from peerstep.evals._ray import ClusterError

    forks = await _ray_forks(ray_address, client, runs_dir) if ray_address is not None and work else None
    labeller = _Labeller(client, k, search, runs_dir, summary, progress, forks)
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(item: tuple[Target, int, list[Step], str | None, dict[str, StepRecord]]) -> None:
        async with gate:
            try:
                await labeller.trajectory(*item)
            except (InputError, ClusterError) as exc:  # a step that cannot be forked (or whose rollouts were lost
                # on the cluster): the run is reported, the others go on
                summary.skipped[item[0].run_id] = f"trajectory {item[1]}: {exc}"

    try:
        await asyncio.gather(*(one(item) for item in work))
    finally:
        if forks is not None:
            await forks.close()
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


async def _ray_forks(address: str, client: ModelClient, runs_dir: Path | None) -> Any:
    """Rollouts on the Ray cluster at ``address``, the model reached with ``client``'s settings (it must be served
    over HTTP: a worker cannot use a client object of this process)."""
    from peerstep.evals._episode import ClientSpec
    from peerstep.evals._rayfork import RayForks

    if type(client) is not ModelClient:
        raise InputError(f"rollouts on a Ray cluster build their own client from a base URL; {type(client).__name__} "
                         "is not a model served over HTTP")
    forks = RayForks(address, ClientSpec.of(client), runs_dir)
    try:
        await forks.open()
    except BaseException:
        await forks.close()
        raise
    return forks
