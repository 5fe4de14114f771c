"""A run's checkpoints: where they live, how they are opened and checked, and what a resume must repair.

Every run's graph is compiled with a LangGraph checkpointer (``AsyncSqliteSaver``) whose file sits beside the
run's step log (``RUN_ID.ckpt.db``; not ``*.sqlite``, so it is never listed as a run). The graph state is plain
data; clients, sandboxes and the log stay outside it.

Killed mid-node, a run has written steps that its checkpoint does not know about: resumed, that node runs again
and writes them anew. ``sweep`` finds them (the steps each unfinished task wrote after the checkpoint it resumes
from) and moves them out of the log (``StepLog.supersede``), so no step appears twice. What is not in a checkpoint
either is the Python kernel's memory: ``replay`` reruns a trajectory's logged cells in its fresh sandbox.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from peerstep._errors import InputError
from peerstep.steplog import StepKind, StepLog

CHECKPOINT_FORMAT = 1
"""Bumped when the graph state's shape changes so that an older checkpoint cannot be resumed correctly."""


def checkpoint_path(log: StepLog) -> Path:
    return log.path.parent / f"{log.run_id}.ckpt.db"


def checkpoint_meta(log: StepLog) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("peerstep")
    except PackageNotFoundError:  # run from a source tree that was never installed
        ours = "unknown"
    return {"file": checkpoint_path(log).name, "format": CHECKPOINT_FORMAT, "peerstep": ours}


@asynccontextmanager
async def open_saver(path: Path) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """An ``AsyncSqliteSaver`` on ``path`` (created if missing). The optional dependency fails with a clear line."""
    try:
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
    except ImportError as exc:  # pragma: no cover - a dependency of the package; checked for a broken install
        raise InputError("checkpoints need langgraph-checkpoint-sqlite: pip install langgraph-checkpoint-sqlite"
                         ) from exc
    async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
        # several trajectories' steps commit at once: wait for the lock instead of failing ("database is locked")
        await saver.conn.execute("PRAGMA busy_timeout = 10000")
        # as the step log: WAL with synchronous=NORMAL survives a killed process (what resume is for) without an
        # fsync per checkpoint; only an OS crash or power loss can lose the last checkpoints (the run then resumes
        # from an earlier one)
        await saver.conn.execute("PRAGMA journal_mode = WAL")
        await saver.conn.execute("PRAGMA synchronous = NORMAL")
        yield saver


def checkpoint_file(log: StepLog, meta: dict[str, Any]) -> Path:
    """The checkpoint file of a run, checked to hold the run (resume and fork both continue from it); an
    ``InputError`` saying why not otherwise.

    Read only: a run that cannot be resumed or forked is left exactly as it was.
    """
    info = meta.get("checkpoint")
    if not isinstance(info, dict):
        raise InputError(f"run {log.run_id} has no checkpoint: it was run without one (checkpoint=False) or by a "
                         "peerstep older than checkpoints; it cannot be resumed or forked")
    if info.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"run {log.run_id}'s checkpoint was written by peerstep {info.get('peerstep', '?')} in "
                         f"format {info.get('format')!r}; this peerstep reads format {CHECKPOINT_FORMAT} only")
    if not info.get("file"):
        raise InputError(f"run {log.run_id} was checkpointed in a saver of its own ({info.get('saver', '?')}): pass "
                         "that saver to resume it (aresume(..., checkpointer=saver))")
    path = log.path.parent / str(info.get("file"))
    if not path.is_file():
        raise InputError(f"run {log.run_id}'s checkpoint file {path} is missing; it cannot be resumed or forked")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            found = db.execute("SELECT count(*) FROM checkpoints WHERE thread_id = ?", (log.run_id,)).fetchone()[0]
    except sqlite3.Error as exc:
        raise InputError(f"run {log.run_id}'s checkpoint file {path} is unreadable or corrupt ({exc}); "
                         "it cannot be resumed or forked") from exc
    if not found:
        raise InputError(f"run {log.run_id}'s checkpoint file {path} holds no checkpoint of this run; "
                         "it cannot be resumed or forked")
    return path


def _ts(iso: str | None) -> float:
    return datetime.fromisoformat(iso).timestamp() if iso else 0.0


async def sweep(graph: Any, config: dict[str, Any], log: StepLog) -> list[str]:
    """Supersede the steps the interrupted superstep wrote after the checkpoints it resumes from.

    A task that finished in that superstep keeps its steps (LangGraph saved its writes and will not rerun it). An
    unfinished trajectory task (advance, force) resumes from its own last reason/act checkpoint: its steps after
    that are superseded. An unfinished run-level task (start, barrier, finalize) reruns whole: every step after
    the run's checkpoint is superseded. Returns the superseded step ids.
    """
    snap = await graph.aget_state(config)
    parent_ts = _ts(snap.created_at)
    states: dict[int, Any] = (snap.values or {}).get("trajectories") or {}
    finished_tids: set[int] = set()
    sub_ts: dict[int, float] = {}
    whole = False
    for task in snap.tasks:
        if task.name in ("advance", "force"):
            if task.result is not None:
                finished_tids.update((task.result.get("trajectories") or {}).keys())
                continue
            # the trajectory's own loop checkpoints under the task's namespace (LangGraph cannot see that
            # subgraph through the bound method that runs it, so it is read from the saver directly)
            sub = await graph.checkpointer.aget_tuple({"configurable": {
                "thread_id": config["configurable"]["thread_id"], "checkpoint_ns": f"{task.name}:{task.id}"}})
            if sub is not None:
                tid = (sub.checkpoint.get("channel_values") or {}).get("trajectory_id")
                # a node that finished after this checkpoint left its writes (LangGraph applies them and does not
                # rerun it): its steps stand, and nothing ran after it
                done = any(ch not in ("__error__", "__interrupt__", "__resume__")
                           for _, ch, _ in sub.pending_writes or [])
                if tid is not None:
                    sub_ts[int(tid)] = float("inf") if done else _ts(sub.checkpoint.get("ts"))
        elif task.result is None:
            whole = True
    records = list(log.records())
    if whole:
        orphans = [r.step_id for r in records if r.created_at > parent_ts]
    else:
        rerun = {tid for tid, st in states.items() if not st.get("done")} - finished_tids
        orphans = [r.step_id for r in records
                   if r.trajectory_id in rerun and r.created_at > sub_ts.get(r.trajectory_id, parent_ts)]
    log.supersede(orphans, reason="written after the checkpoint the run resumed from")
    return orphans


async def state_at(saver: BaseCheckpointSaver[Any], log: StepLog, step_id: str) -> dict[str, Any]:
    """The trajectory state a checkpoint holds just after ``step_id`` was logged (the first checkpoint of that
    trajectory whose conversation includes the step): what a fork continues from."""
    records = list(log.records())
    seq = {r.step_id: i for i, r in enumerate(records)}
    if step_id not in seq:
        raise InputError(f"run {log.run_id} has no step {step_id!r}; `peerstep show {log.run_id} --json` lists them")
    target = records[seq[step_id]]
    if target.trajectory_id < 0:
        raise InputError(f"step {step_id} is a run-level step ({target.kind.value}); fork from a trajectory's step")
    best: tuple[int, dict[str, Any]] | None = None
    async for tup in saver.alist({"configurable": {"thread_id": log.run_id}}):
        values = tup.checkpoint.get("channel_values") or {}
        candidates = [values] if "trajectory_id" in values else list((values.get("trajectories") or {}).values())
        for state in candidates:
            at = seq.get(state.get("last_step_id") or "", -1)
            if state.get("trajectory_id") == target.trajectory_id and at >= seq[step_id] and "messages" in state \
                    and (best is None or at < best[0]):
                best = (at, state)
    if best is None:
        raise InputError(f"run {log.run_id}'s checkpoints hold no state at or after step {step_id}")
    return best[1]


async def replay(tools: list[Any], log: StepLog, trajectory_id: int, until: float | None = None,
                 into: StepLog | None = None, into_trajectory: int | None = None) -> dict[str, int]:
    """Rerun a trajectory's logged Python cells in its fresh sandbox, comparing each output with the logged one.

    A cell whose output differs (time, randomness, files) is logged as an ERROR step (stage ``replay``): the
    variables are restored as well as rerunning can restore them, and the log says where they may differ. A fork
    replays the cells logged ``until`` its step, and logs mismatches ``into`` its own run, as ``into_trajectory``.
    """
    into = into or log
    into_trajectory = trajectory_id if into_trajectory is None else into_trajectory
    python = next((t for t in tools if t.name == "python"), None)
    if python is None:
        return {"replayed": 0, "mismatched": 0}
    replayed = mismatched = 0
    for rec, code, logged in python_cells(log, trajectory_id, until):
        result = await python({"code": code})
        replayed += 1
        if result.output.strip() != logged.strip():
            mismatched += 1
            into.log(StepKind.ERROR, trajectory_id=into_trajectory, parent_id=rec.step_id if into is log else None,
                    text="the Python session was restarted on resume and this cell's output differs from the logged "
                         "one: variables it defined may differ", data={"error": "ReplayMismatch", "stage": "replay",
                                                                       "replayed_output": result.output[:2000]})
    return {"replayed": replayed, "mismatched": mismatched}


def python_cells(log: StepLog, trajectory_id: int, until: float | None = None) -> list[tuple[Any, str, str]]:
    """The Python cells a trajectory ran, in order, as (call record, code, logged output): what rebuilds its
    sandbox (a resume, a fork, a chat session's next turn). A call that never ran (rejected, cut off) has no
    output in the log and is left out; a call edited at its approval ran with the edited code."""
    observations = list(log.records(trajectory_id=trajectory_id, kind=StepKind.OBSERVATION))
    outputs = {r.tool.call_id: r.tool.output if r.tool.output is not None else r.text
               for r in observations if r.tool is not None and r.tool.call_id}
    edits = {r.data["call"]["id"]: r.data["edited"] for r in observations
             if r.data.get("approval") == "edited" and isinstance(r.data.get("call"), dict)
             and isinstance(r.data.get("edited"), dict)}
    cells: list[tuple[Any, str, str]] = []
    for rec in log.records(trajectory_id=trajectory_id, kind=StepKind.TOOL_CALL):
        if rec.tool is None or rec.tool.name != "python" or rec.tool.call_id not in outputs:
            continue
        if until is not None and rec.created_at > until:
            break
        args = edits.get(rec.tool.call_id, rec.tool.arguments)
        code = str(args.get("code", "")) if isinstance(args, dict) else str(args)
        cells.append((rec, code, outputs[rec.tool.call_id] or ""))
    return cells
