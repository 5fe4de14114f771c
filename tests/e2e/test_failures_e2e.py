"""End-to-end failure handling with real processes: a server killed mid-run, Ctrl-C, no orphans."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from peerstep.models import SMALL_MODEL
from peerstep.steplog import StepKind, StepLog

pytestmark = pytest.mark.slow

LONG_QUESTION = ("Explain in detail, in about 300 words, how long multiplication works, then compute 4817 * 2963 "
                 "with the calculator and submit it.")


def _env(runs: Path, state: Path) -> dict[str, str]:
    return {**os.environ, "PEERSTEP_RUNS": str(runs), "PEERSTEP_ENGINE_STATE": str(state), "COLUMNS": "200"}


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _records(runs: Path) -> list[str]:
    files = sorted(runs.glob("*.sqlite"))
    if not files:
        return []
    with StepLog(files[0], files[0].stem) as log:
        return [r.kind.value for r in log.records()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for every purpose but its exit status
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _children_named(parent: int, needle: str) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split(")")[-1].split()
            cmd = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[1]) == parent and needle in cmd:
            out.append(int(stat.parent.name))
    return out


@contextlib.contextmanager
def _served_small_model(env: dict[str, str], state: Path) -> Iterator[dict[str, Any]]:
    """``peerstep serve`` in a child process; yields its state file (base_url, pid); stopped with Ctrl-C."""
    serve = subprocess.Popen([sys.executable, "-m", "peerstep.cli", "serve", "--model", SMALL_MODEL],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        _wait_for(lambda: any(state.glob("*.json")), 120, "peerstep serve to start")
        yield json.loads(next(state.glob("*.json")).read_text())
    finally:
        serve.send_signal(signal.SIGINT)
        serve.wait(timeout=30)


def test_server_killed_mid_run(tmp_path: Path) -> None:
    runs, state = tmp_path / "runs", tmp_path / "state"
    env = _env(runs, state)
    with _served_small_model(env, state) as info:
        solve = subprocess.Popen(
            [sys.executable, "-m", "peerstep.cli", "solve", "--base-url", info["base_url"], "--model", SMALL_MODEL,
             LONG_QUESTION], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        _wait_for(lambda: "run_start" in _records(runs), 60, "the run to start")
        time.sleep(2)  # the first reply is streaming now
        os.kill(info["pid"], signal.SIGKILL)
        out, err = solve.communicate(timeout=120)
    assert solve.returncode == 1, out + err
    assert "unreachable" in err and info["base_url"] in err
    kinds = _records(runs)
    assert kinds[0] == "run_start" and "error" in kinds
    files = sorted(runs.glob("*.sqlite"))
    with StepLog(files[0], files[0].stem) as log:
        errors = list(log.records(kind=StepKind.ERROR))
        assert errors and "unreachable" in (errors[0].text or "")
        assert log.meta()["status"] == "error"


def test_ctrl_c_stops_the_engine_and_keeps_the_log(tmp_path: Path) -> None:
    runs, state = tmp_path / "runs", tmp_path / "state"
    solve = subprocess.Popen(
        [sys.executable, "-m", "peerstep.cli", "solve", "--model", SMALL_MODEL, LONG_QUESTION],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(runs, state))
    _wait_for(lambda: "run_start" in _records(runs), 120, "the run to start")
    servers = _children_named(solve.pid, "peerstep.engines._llamacpp_server")
    assert len(servers) == 1, "solve should have started its own llama.cpp server"
    time.sleep(1)
    solve.send_signal(signal.SIGINT)
    out, err = solve.communicate(timeout=60)
    assert solve.returncode == 130, out + err
    assert "interrupted" in err
    _wait_for(lambda: not _pid_alive(servers[0]), 30, "the engine to exit")
    assert _records(runs)[0] == "run_start"
    assert not list(state.glob("*.json")), "the state file of a stopped engine must be removed"


def test_eval_aborts_when_its_server_is_killed_and_keeps_finished_episodes(tmp_path: Path) -> None:
    runs, state, out = tmp_path / "runs", tmp_path / "state", tmp_path / "eval.json"
    env = _env(runs, state)
    # eight one-line sums (the eval runner behind `peerstep run` and `peerstep eval` alike): the first episode
    # finishes in seconds; the built-in math set's first task took the small model ~200 s of CI to finish
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text("tasks:\n" + "".join(
        f"  - {{id: sum{i}, question: 'What is {100 + i} + {200 + i}?', tools: [calculator], checker: numeric, "
        f"gold: '{300 + 2 * i}'}}\n" for i in range(8)))
    with _served_small_model(env, state) as info:
        evaluation = subprocess.Popen(
            [sys.executable, "-m", "peerstep.cli", "run", str(tasks), "--concurrency", "1",
             "--max-steps", "3", "--base-url", info["base_url"], "--model", SMALL_MODEL, "--out", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        jsonl = out.with_suffix(".jsonl")
        _wait_for(lambda: jsonl.exists() and jsonl.read_text().count("\n") >= 1, 600, "a first finished episode")
        os.kill(info["pid"], signal.SIGKILL)
        stdout, stderr = evaluation.communicate(timeout=300)
    assert evaluation.returncode == 1, stdout + stderr
    assert "aborted" in stderr and "stopped answering" in stderr
    report = json.loads(out.read_text())
    finished = jsonl.read_text().splitlines()
    assert report["aborted"] and 1 <= len(report["outcomes"]) == len(finished) < 8
    # the episode that met the dead server is not scored as the model's failure
    assert not any("unreachable" in (o["error"] or "") for o in report["outcomes"])
    unreachable = []
    for path in runs.glob("*.sqlite"):
        with StepLog(path, path.stem) as log:
            unreachable += [r for r in log.records(kind=StepKind.ERROR) if "unreachable" in (r.text or "")]
    assert unreachable, "the episode cut off by the dead server logs the error as a step"


def _group_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split(")")[-1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def test_sigterm_stops_serve_and_its_whole_engine(tmp_path: Path) -> None:
    runs, state = tmp_path / "runs", tmp_path / "state"
    serve = subprocess.Popen([sys.executable, "-m", "peerstep.cli", "serve", "--model", SMALL_MODEL],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(runs, state))
    try:
        _wait_for(lambda: any(state.glob("*.json")), 120, "peerstep serve to start")
        engine_pid = json.loads(next(state.glob("*.json")).read_text())["pid"]
        assert _group_members(engine_pid), "the engine runs in its own process group"
        serve.send_signal(signal.SIGTERM)
        out, _ = serve.communicate(timeout=60)
    finally:
        if serve.poll() is None:
            serve.kill()
    assert serve.returncode == 0 and "stopped" in out, out
    _wait_for(lambda: not _group_members(engine_pid), 30, "every process of the engine's group to exit")
    assert not list(state.glob("*.json")), "a stopped engine's state file must be removed"
