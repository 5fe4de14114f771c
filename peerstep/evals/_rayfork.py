"""Labelling rollouts on a Ray cluster: the K continuations of one step (``afork``) as one Ray task.

The labeller stays on the driver, where the run's log is, and writes every label there; only the rollouts go
out. A task gets a consistent snapshot of the parent run's log and checkpoint file (SQLite's backup API, so a
log being appended to is copied whole), forks from it in a temporary folder on its worker, and sends back the
answers and the new run's files, which land in the driver's runs folder beside their parent.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from peerstep._runner import Task, afork
from peerstep.evals._episode import ClientSpec
from peerstep.evals._ray import ClusterError, Logs, _ray, check_nodes, connect, land, lost_reason
from peerstep.steplog import StepLog

Answers = dict[int, str | None]


def _snapshot(path: Path) -> bytes:
    with tempfile.TemporaryDirectory(prefix="peerstep-snapshot-") as tmp:
        copy = Path(tmp) / "copy.sqlite"
        src, dst = sqlite3.connect(f"file:{path}?mode=ro", uri=True), sqlite3.connect(copy)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        return copy.read_bytes()


def run_files(run_id: str, runs_dir: Path | None) -> Logs:
    """The run's log and its checkpoint file (what ``afork`` reads), by file name."""
    with StepLog.open(run_id, runs_dir) as log:
        path, meta = log.path, log.meta()
    files = {path.name: _snapshot(path)}
    checkpoint = (meta.get("checkpoint") or {}).get("file")
    if checkpoint and (path.parent / str(checkpoint)).is_file():
        files[str(checkpoint)] = _snapshot(path.parent / str(checkpoint))
    return files


def _fork_on_worker(parent: Logs, run_id: str, step_id: str, spec: ClientSpec, k: int,
                    task: Task | None) -> tuple[Answers, str, int, Logs]:
    with tempfile.TemporaryDirectory(prefix="peerstep-fork-") as tmp:
        folder = Path(tmp)
        for name, data in parent.items():
            (folder / name).write_bytes(data)

        async def go() -> Any:
            client = spec.client(f"label/{run_id}/{step_id}")
            try:
                return await afork(run_id, step_id, client, k=k, task=task, runs_dir=folder)
            finally:
                await client.close()

        result = asyncio.run(go())
        made = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name not in parent}
        return dict(result.answers), result.run_id, result.tokens, made


class RayForks:
    """``afork`` for the labeller, each call a Ray task; open once (connect, check the nodes), close at the end."""

    def __init__(self, address: str | None, spec: ClientSpec, runs_dir: Path | None, *, max_retries: int = 3,
                 num_cpus: float = 1.0) -> None:
        self.address, self.spec, self.runs_dir = address, spec, runs_dir
        self.max_retries, self.num_cpus = max_retries, num_cpus
        self._task: Any = None
        self._connected_here = False

    async def open(self) -> None:
        ray = _ray()
        self._connected_here = connect(self.address)
        await check_nodes()
        self._task = ray.remote(_fork_on_worker).options(max_retries=self.max_retries, retry_exceptions=False,
                                                         num_cpus=self.num_cpus, scheduling_strategy="SPREAD")

    async def __call__(self, run_id: str, step_id: str, k: int, task: Task | None) -> tuple[Answers, str, int]:
        ray = _ray()
        ref = self._task.remote(run_files(run_id, self.runs_dir), run_id, step_id, self.spec, k, task)
        try:
            answers, fork_run, tokens, made = await ref
        except asyncio.CancelledError:
            ray.cancel(ref, force=True)
            raise
        except ray.exceptions.RayTaskError as exc:  # the fork itself failed (e.g. a step that cannot be forked)
            cause = exc.cause if isinstance(exc.cause, Exception) else exc
            raise cause from None
        except ray.exceptions.RayError as exc:
            raise ClusterError(lost_reason(exc, self.max_retries)) from None
        land(made, self.runs_dir)
        return answers, fork_run, tokens

    async def close(self) -> None:
        if self._connected_here:
            _ray().shutdown()
            self._connected_here = False
