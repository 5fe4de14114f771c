"""The step log: append-only, readable after SIGKILL, clear errors when the disk refuses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from peerstep.steplog import StepKind, StepLog, StepLogError, StepRecord, ToolInfo, list_runs


def test_append_and_read_back(tmp_path: Path) -> None:
    log = StepLog.create(meta={"question": "q"}, directory=tmp_path)
    a = log.log(StepKind.REASON, text="thinking", trajectory_id=1)
    log.append(StepRecord(run_id=log.run_id, kind=StepKind.TOOL_CALL, parent_id=a.step_id, trajectory_id=1,
                          tool=ToolInfo(name="calculate", arguments={"expression": "1+1"})))
    log.log(StepKind.REASON, text="other trajectory", trajectory_id=2)
    log.close()
    with StepLog.open(log.run_id, tmp_path) as reader:
        recs = list(reader.records())
        assert [r.kind for r in recs] == [StepKind.REASON, StepKind.TOOL_CALL, StepKind.REASON]
        assert recs[1].parent_id == a.step_id and recs[1].tool is not None
        assert recs[1].tool.arguments == {"expression": "1+1"}
        assert [r.text for r in reader.records(trajectory_id=2)] == ["other trajectory"]
        assert reader.meta()["question"] == "q"
    runs = list_runs(tmp_path)
    assert [(r.run_id, r.steps) for r in runs] == [(log.run_id, 3)]


def test_open_by_prefix_and_errors(tmp_path: Path) -> None:
    log = StepLog.create(directory=tmp_path, run_id="abc-123")
    log.close()
    assert StepLog.open("abc", tmp_path).run_id == "abc-123"
    with pytest.raises(StepLogError, match="no run 'zzz'"):
        StepLog.open("zzz", tmp_path)


def test_sigkill_mid_run_keeps_every_committed_step(tmp_path: Path) -> None:
    """A writer killed with SIGKILL after N appends leaves N readable records."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        from pathlib import Path
        from peerstep.steplog import StepKind, StepLog
        log = StepLog.create(directory=Path({str(tmp_path)!r}), run_id="killed")
        for i in range(200):
            log.log(StepKind.REASON, text=f"step {{i}}")
            if i == 149:
                print("ready", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=Path.cwd())
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "ready" in proc.stdout
    with StepLog.open("killed", tmp_path) as reader:
        texts = [r.text for r in reader.records()]
    assert texts == [f"step {i}" for i in range(150)]


def test_full_disk_gives_clear_error_and_keeps_earlier_steps(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes the file system refuse growth, as a full disk would."""
    script = textwrap.dedent(f"""
        import resource, signal, sys
        from pathlib import Path
        from peerstep.steplog import StepKind, StepLog, StepLogError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        log = StepLog.create(directory=Path({str(tmp_path)!r}), run_id="full")
        for i in range(5):
            log.log(StepKind.REASON, text=f"small {{i}}")
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
        try:
            for i in range(1000):
                log.log(StepKind.REASON, text="x" * 5000)
        except StepLogError as exc:
            print("ERROR:", exc)
            sys.exit(3)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    assert "cannot write to step log" in proc.stdout and "full.sqlite" in proc.stdout
    with StepLog.open("full", tmp_path) as reader:
        texts = [r.text for r in reader.records()]
    assert texts[:5] == [f"small {i}" for i in range(5)]
    assert all(t == "x" * 5000 for t in texts[5:])  # nothing half-written


def test_unwritable_directory(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = Path("/proc/peerstep-cannot-write-here")  # root ignores file modes; /proc refuses everyone
    else:
        target = tmp_path / "ro"
        target.mkdir(mode=0o500)
    with pytest.raises(StepLogError, match="cannot open step log"):
        StepLog.create(directory=target)
