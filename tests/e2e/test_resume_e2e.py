"""End-to-end: `peerstep solve --strategy leap -n 4` on the real model, SIGKILLed after its first barrier, then
`peerstep resume`: the same run continues in the same log, nothing written twice, a decision at the end."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from peerstep.engines import ManagedEngine
from peerstep.steplog import StepKind, StepLog

pytestmark = pytest.mark.slow

QUESTION = "What is the sum of the squares of the first 12 prime numbers?"  # 2^2 + 3^2 + ... + 37^2 = 4477


def _barriers(path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT count(*) FROM steps WHERE kind = 'barrier'").fetchone()[0])
    except sqlite3.Error:  # not created yet
        return 0


@pytest.mark.timeout(1800)
def test_leap_killed_after_its_first_barrier_resumes(llamacpp_engine: ManagedEngine, runs_dir: Path) -> None:
    env = {**os.environ, "PEERSTEP_RUNS": str(runs_dir), "COLUMNS": "200"}
    server = ["--base-url", llamacpp_engine.base_url, "--model", llamacpp_engine.served_name]
    # one model call per round and two rounds: the run is killed in its first barrier and resumed into its second
    proc = subprocess.Popen([sys.executable, "-m", "peerstep.cli", "solve", "--strategy", "leap", "-n", "4",
                             "--max-steps", "4", "--round-steps", "1", "--rounds", "2", *server, QUESTION], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 900
    log_path: Path | None = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = sorted(runs_dir.glob("*.sqlite")) if runs_dir.exists() else []
        if found and _barriers(log_path := found[0]) >= 1:
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"the run ended before its first barrier could be interrupted: {proc.stderr}"
    assert log_path is not None
    proc.kill()  # SIGKILL: no handler runs, nothing is flushed
    assert proc.wait(30) == -9
    run_id = log_path.stem
    with StepLog.open(run_id, runs_dir) as log:
        assert log.meta()["status"] == "interrupted"
        before = list(log.records())
    assert not any(r.kind == StepKind.AGGREGATE for r in before)
    unfinished = {r.trajectory_id for r in before if r.kind == StepKind.RUN_START} - {
        r.trajectory_id for r in before if r.kind == StepKind.FINAL}
    # one model call per round: after the first barrier some trajectory is still working (else this tests nothing)
    assert unfinished

    resumed = subprocess.run([sys.executable, "-m", "peerstep.cli", "resume", run_id, *server], env=env,
                             capture_output=True, text=True, timeout=1500)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert sorted(p.stem for p in runs_dir.glob("*.sqlite")) == [run_id]  # the same run, no new one
    with StepLog.open(run_id, runs_dir) as log:
        after = list(log.records())
        superseded = {r.step_id for r, _ in log.superseded()}
        assert log.meta()["status"] == "done"
    ids = [r.step_id for r in after]
    assert len(ids) == len(set(ids))
    # nothing written twice: no model call has two replies logged for the same point of its conversation
    parents = [r.parent_id for r in after if r.kind == StepKind.REASON]
    assert len(parents) == len(set(parents))
    assert {r.step_id for r in before} - superseded <= set(ids)  # every step kept from before the kill is there
    resume_at = next(i for i, r in enumerate(after) if r.kind == StepKind.RESUME)
    kept_before = {r.step_id for r in after[:resume_at]}
    for tid in unfinished:  # each trajectory that was working continues from a step it had made before the kill
        later = [r for r in after[resume_at:] if r.trajectory_id == tid and r.kind != StepKind.VERIFY]
        assert later and later[0].parent_id in kept_before, tid
        assert any(r.kind in (StepKind.FINAL, StepKind.ERROR) for r in later), tid
    assert sum(r.kind == StepKind.AGGREGATE for r in after) == 1 and after[-1].kind == StepKind.RUN_END


@pytest.mark.timeout(1200)
def test_an_eval_killed_half_way_resumes_with_resume(llamacpp_engine: ManagedEngine, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    env = {**os.environ, "PEERSTEP_RUNS": str(runs), "COLUMNS": "200"}
    out = tmp_path / "eval.json"
    jsonl = out.with_suffix(".jsonl")
    args = [sys.executable, "-m", "peerstep.cli", "eval", "math", "--limit", "3", "--concurrency", "1",
            "--base-url", llamacpp_engine.base_url, "--model", llamacpp_engine.served_name]
    proc = subprocess.Popen([*args, "--out", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if jsonl.exists() and jsonl.read_text().count("\n") >= 1:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the eval finished before it could be killed"
    proc.kill()
    assert proc.wait(30) == -9
    first = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    assert 1 <= len(first) < 3 and not out.exists()

    resumed = subprocess.run([*args, "--resume", str(out)], env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report = json.loads(out.read_text())
    assert sorted(o["index"] for o in report["outcomes"]) == [0, 1, 2]
    kept = {o["index"]: o["run_id"] for o in first}
    assert all(o["run_id"] == kept[o["index"]] for o in report["outcomes"] if o["index"] in kept)  # not rerun
    # the finished episodes were not run again: one run per remaining episode, plus the one the kill cut short
    assert len(list(runs.glob("*.sqlite"))) <= 3 + 1
