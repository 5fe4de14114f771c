"""The command line without a model: input validation, runs and show on a recorded run."""

from __future__ import annotations

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
