"""The step log: append-only, readable after SIGKILL, clear errors when the disk refuses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
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


# --- a disk that really fills up, and runs whose process was killed (issue 10, item 10) ----------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs mounted for this test (root can mount; this suite runs as root in CI).

    Where mounting is refused (no CAP_SYS_ADMIN), SQLite's own page limit stands in for the disk: it raises the
    same SQLITE_FULL, "database or disk is full", through the same code path."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                             capture_output=True).returncode == 0
    try:
        yield disk
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(disk)], check=True)


def _is_mount(path: Path) -> bool:
    return any(line.split()[1] == str(path) for line in Path("/proc/self/mounts").read_text().splitlines())


def test_a_disk_that_fills_mid_run_says_so_and_keeps_every_earlier_step(small_disk: Path) -> None:
    log = StepLog.create(directory=small_disk, run_id="fills")
    if not _is_mount(small_disk):
        log._db.execute("PRAGMA max_page_count = 200")  # no mount allowed here: the page limit is the disk
    written: list[str] = []
    with pytest.raises(StepLogError) as info:
        for i in range(10_000):
            text = f"step {i} " + "x" * 3000
            log.log(StepKind.REASON, text=text)
            written.append(text)
    message = str(info.value)
    assert "cannot rollback" not in message and "no transaction is active" not in message
    assert "database or disk is full" in message
    assert "the disk is full" in message and str(log.path) in message
    assert len(written) > 5  # it did fill mid-run, after steps had been written
    # the writer still reads every committed step, and so does a fresh reader
    assert [r.text for r in log.records()] == written
    log.close()
    with StepLog.open("fills", small_disk) as reader:
        assert [r.text for r in reader.records()] == written


def test_a_killed_run_is_marked_interrupted_when_next_seen(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from peerstep.steplog import StepKind, StepLog
        log = StepLog.create(directory=Path({str(tmp_path)!r}), run_id="victim", meta={{"question": "q"}})
        log.log(StepKind.REASON, text="working")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    live = StepLog.create(directory=tmp_path, run_id="alive")  # this process: still running
    try:
        statuses = {r.run_id: r.meta.get("status") for r in list_runs(tmp_path)}
        assert statuses == {"victim": "interrupted", "alive": "running"}
        with StepLog.open("victim", tmp_path) as reader:
            meta = reader.meta()  # saved in the file, not just reported
            assert meta["status"] == "interrupted"
            assert f"process {meta['pid']} ended" in meta["status_reason"]
            assert [r.text for r in reader.records()] == ["working"]
    finally:
        live.close()


def test_a_reused_pid_does_not_keep_a_dead_run_running(tmp_path: Path) -> None:
    log = StepLog.create(directory=tmp_path, run_id="reused")
    meta = log.meta()
    assert meta["pid"] == os.getpid() and isinstance(meta["pid_started"], int)
    # the same pid, but a process that started at another time: not the writer
    log.set_meta({"pid_started": meta["pid_started"] - 1})
    log.close()
    with StepLog.open("reused", tmp_path) as reader:
        assert reader.meta()["status"] == "interrupted"


def test_a_finished_run_keeps_its_status(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        from pathlib import Path
        from peerstep.steplog import StepLog
        with StepLog.create(directory=Path({str(tmp_path)!r}), run_id="finished") as log:
            log.set_meta({{"status": "done"}})
    """)
    subprocess.run([sys.executable, "-c", script], check=True)
    assert [r.meta["status"] for r in list_runs(tmp_path)] == ["done"]
