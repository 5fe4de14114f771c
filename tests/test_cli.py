"""The command line without a model: input validation, runs and show on a recorded run."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from peerstep import arun
from peerstep.cli import app
from peerstep.environments import QuestionEnvironment
from peerstep.steplog import StepLog
from tests.scripted import ScriptedClient

runner = CliRunner()


def test_empty_question_is_refused_before_any_engine_starts() -> None:
    result = runner.invoke(app, ["solve", "   ", "--engine", "no-such-engine"])
    assert result.exit_code == 2
    assert "the question is empty" in result.output


def test_huge_question_is_refused() -> None:
    result = runner.invoke(app, ["solve", "-"], input="x" * 200_000)
    assert result.exit_code == 2
    assert "200,000 characters" in result.output


def test_bad_tool_choice() -> None:
    result = runner.invoke(app, ["solve", "1+1?", "--tool-choice", "sometimes"])
    assert result.exit_code == 2 and "--tool-choice" in result.output


def test_unknown_engine() -> None:
    result = runner.invoke(app, ["serve", "--engine", "tgi"])
    assert result.exit_code != 0
    assert "unknown engine 'tgi'" in str(result.exception or result.output)


@pytest.fixture()
async def recorded_run(tmp_path: Path) -> Path:
    client = ScriptedClient(['{"name": "calculate", "arguments": {"expression": "6*7"}}',
                             '{"name": "submit_answer", "arguments": {"answer": "42"}}'])
    log = StepLog.create(directory=tmp_path, meta={"question": "What is six times seven?"})
    await arun(QuestionEnvironment("What is six times seven?", gold="42"), client, log=log)
    log.close()
    return tmp_path


def test_runs_and_show(recorded_run: Path) -> None:
    listed = runner.invoke(app, ["runs", "--dir", str(recorded_run)], env={"COLUMNS": "200"})
    assert listed.exit_code == 0
    assert "What is six times seven?" in listed.output and "42" in listed.output
    run_id = next(recorded_run.glob("*.sqlite")).stem
    shown = runner.invoke(app, ["show", run_id[:12], "--dir", str(recorded_run)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    assert "→ calculate(" in shown.output and "Final answer: 42" in shown.output
    as_json = runner.invoke(app, ["show", run_id, "--dir", str(recorded_run), "--json"])
    lines = [line for line in as_json.output.splitlines() if line.startswith("{")]
    assert len(lines) == 11 and '"kind":"final"' in lines[-4] and '"kind":"aggregate"' in lines[-2]


def test_show_unknown_run(tmp_path: Path) -> None:
    result = runner.invoke(app, ["show", "nope", "--dir", str(tmp_path)])
    assert result.exit_code == 1 and "no run 'nope'" in result.output


def test_invalid_utf8_on_stdin_is_one_clear_error_and_no_run(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEERSTEP_RUNS", str(tmp_path))
    result = runner.invoke(app, ["solve", "-", "--engine", "no-such-engine"], input=b"What is 2+2? \xff")
    assert result.exit_code == 2
    assert "not valid UTF-8" in result.output and "Traceback" not in result.output
    assert list(tmp_path.glob("*.sqlite")) == []  # nothing started, no orphaned run


@pytest.mark.parametrize(("option", "value", "says"), [
    ("--max-steps", "0", "--max-steps"), ("--max-tokens", "0", "--max-tokens"), ("--wall-time", "0", "--wall-time"),
    ("--max-steps", "-3", "--max-steps"), ("--wall-time", "-1", "--wall-time"),
])
def test_bad_budgets_are_one_line_and_exit_2(option: str, value: str, says: str) -> None:
    result = runner.invoke(app, ["solve", "What is 2+2?", option, value, "--engine", "no-such-engine"])
    assert result.exit_code == 2
    assert says in result.output and "Traceback" not in result.output and "pydantic" not in result.output


def test_too_many_trajectories_for_the_sandbox_is_refused_before_starting() -> None:
    result = runner.invoke(app, ["solve", "What is 2+2?", "--strategy", "majority", "-n", "1000",
                                 "--engine", "no-such-engine"])
    assert result.exit_code == 2 and "more than the limit" in result.output
    result = runner.invoke(app, ["solve", "What is 2+2?", "--strategy", "majority", "-n", "0"])
    assert result.exit_code == 2 and "at least 1" in result.output


def test_a_dead_openai_base_url_is_named_and_no_engine_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    monkeypatch.delenv("PEERSTEP_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    # an unknown engine would fail if peerstep tried to start one; the named server is tried instead
    result = runner.invoke(app, ["solve", "1+1?", "--engine", "no-such-engine", "--no-python", "-q"])
    assert result.exit_code != 0
    assert f"unreachable at {url}" in result.output and "comes from OPENAI_BASE_URL" in result.output
    assert "starting the" not in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.timeout(300)
def test_serve_env_serves_math_to_an_aviary_client_and_stops_on_ctrl_c() -> None:
    """``peerstep serve-env math`` as a real process; Aviary's own client plays one episode; SIGINT stops it."""
    import httpx
    from aviary.core import TaskDatasetClient, ToolCall, ToolRequestMessage

    from peerstep.environments import load_dataset

    port = _free_port()
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen([sys.executable, "-m", "peerstep", "serve-env", "math", "--port", str(port)],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(f"{url}/info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass  # not listening yet
            assert time.monotonic() < deadline, "serve-env did not start listening"
            time.sleep(0.5)

        gold = load_dataset("math", python=False).info(0).gold  # the same seed gives the same tasks

        async def episode() -> tuple[float, bool]:
            tasks = TaskDatasetClient(server_url=url)
            assert len(tasks) == len(load_dataset("math", python=False))
            client_env = tasks.get_new_env_by_idx(0)
            (opening,), tools = await client_env.reset()
            assert "call submit_answer" in opening.content and opening.info["task_id"].startswith("math-")
            assert "python" not in [t.info.name for t in tools]  # off unless --python
            _, reward, done, _ = await client_env.step(ToolRequestMessage(tool_calls=[
                ToolCall.from_name("submit_answer", answer=gold)]))
            await client_env.close()
            return reward, done

        assert asyncio.run(episode()) == (1.0, True)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            out, errors = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, errors = proc.communicate()
    assert proc.returncode == 0, errors
    assert f"at {url}" in out and f'TaskDatasetClient(server_url="{url}")' in out
    assert out.rstrip().endswith("stopped")
    assert "Traceback" not in errors


def test_serve_env_unknown_dataset_is_one_clear_line() -> None:
    result = runner.invoke(app, ["serve-env", "no-such-dataset"])
    assert result.exit_code == 2
    assert "'no-such-dataset' is neither a dataset" in result.output and "math" in result.output
