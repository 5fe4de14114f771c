"""``peerstep chat`` driven as a person would, through a pseudo-terminal, on the real embedded model.

pexpect gives the chat a real terminal, so the real line editor (prompt_toolkit) runs, with bracketed paste; Ctrl-C
is the terminal's interrupt character and SIGKILL is SIGKILL. What the person sees is checked on the screen; what
happened is checked in the session file and the turns' step logs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from peerstep.engines import ManagedEngine
from peerstep.session import load, sessions_dir
from peerstep.steplog import StepKind, StepLog

pytestmark = pytest.mark.slow
PEERSTEP = str(Path(sys.executable).with_name("peerstep"))
PROMPT = "you>"
ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


def spawn(args: list[str], runs: Path, **env: str) -> pexpect.spawn:
    environ = {**os.environ, "PEERSTEP_RUNS": str(runs), "PEERSTEP_HOME": str(runs.parent / "home"),
               "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1", **env}
    environ.pop("PEERSTEP_BASE_URL", None)
    environ.pop("OPENAI_BASE_URL", None)
    child = pexpect.spawn(PEERSTEP, ["chat", *args], env=environ, encoding="utf-8", timeout=420,
                          dimensions=(40, 160), codec_errors="replace")
    child.logfile_read = sys.stdout  # what the person saw, in the test's output when it fails
    return child


def screen(child: pexpect.spawn) -> str:
    return ANSI.sub("", child.before or "")


def ask(child: pexpect.spawn, text: str, turn: int) -> str:
    """Type a question, wait for the turn's answer box and the next prompt; what the turn showed."""
    child.sendline(text)
    child.expect(rf"answer \(turn {turn}\)|turn {turn}: no answer")
    shown = screen(child)
    child.expect(PROMPT)
    return shown + ANSI.sub("", child.before or "")


@pytest.fixture()
def runs(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture()
def server(llamacpp_engine: ManagedEngine) -> Iterator[list[str]]:
    yield ["--base-url", llamacpp_engine.base_url or "", "--model", llamacpp_engine.served_name]


def python_outputs(runs: Path, run_id: str | None) -> list[str]:
    with StepLog.open(run_id or "", runs) as log:
        return [r.text or "" for r in log.records(kind=StepKind.OBSERVATION)
                if r.tool is not None and r.tool.name == "python"]


# its value never appears in the conversation: turn 3 can only get it from the sandbox (shown a value, the 1.5B model
# types it back as a literal instead of using the variable)
SET_HIDDEN = ("Use Python: set hidden = sum(i * i for i in range(1, 5000)) % 99991 and print(hidden > 0). "
              "Submit what it prints.")
SHOW_HIDDEN = "Run exactly this Python code: print(hidden * 2)  Then submit the printed number."
SET_SECRET = "Use Python: secret = sum(i * i for i in range(1, 5000)) % 99991, then print(secret). Submit the number."
SHOW_SECRET = "Run exactly this Python code: print(secret * 2)  Then submit the printed number."
SECRET = sum(i * i for i in range(1, 5000)) % 99991


def assert_used(runs: Path, run_id: str | None, name: str, expected: str) -> None:
    """The turn's Python read ``name`` without assigning it, and printed ``expected``: the sandbox still held it."""
    with StepLog.open(run_id or "", runs) as log:
        calls = [r.tool for r in log.records(kind=StepKind.TOOL_CALL) if r.tool is not None and r.tool.name == "python"]
    codes = [str(c.arguments.get("code") if isinstance(c.arguments, dict) else c.arguments) for c in calls]
    assert codes and not any(re.search(rf"\b{name}\s*=[^=]", c) for c in codes), codes
    assert expected in [o.strip() for o in python_outputs(runs, run_id)]


def test_three_turns_share_python_state_and_a_leap_turn(server: list[str], runs: Path) -> None:
    child = spawn(server, runs)
    child.expect(PROMPT)
    ask(child, SET_HIDDEN, 1)
    child.sendline("/strategy leap 2")
    child.expect("strategy: leap@2")
    child.expect(PROMPT)
    shown = ask(child, "What is 17 * 23?", 2)
    assert "t1" in shown and "Decision" in shown  # both trajectories and the vote are on screen
    child.sendline("/strategy single")
    child.expect(PROMPT)
    shown = ask(child, SHOW_HIDDEN, 3)
    child.sendeof()
    child.expect(pexpect.EOF)
    record = load(next(p.stem for p in sessions_dir(runs).glob("*.json")), runs)
    assert [t.status for t in record.turns] == ["done", "done", "done"]
    assert (record.turns[1].strategy, record.turns[1].n) == ("leap", 2)
    assert str(SECRET) not in json.dumps(record.turns[0].messages)  # the value was never shown to the model
    assert_used(runs, record.turns[2].run_id, "hidden", str(SECRET * 2))
    assert str(SECRET * 2) in shown


def test_reject_with_a_reason_the_model_sees(server: list[str], runs: Path) -> None:
    child = spawn([*server, "--approve", "python=ask", "--max-steps", "4"], runs)  # bounds retries of Python
    child.expect(PROMPT)
    child.sendline("Use Python to compute 2**20 and submit the result.")
    child.expect(r"asks to run python")
    child.expect(r"\[a\]pprove")
    child.sendline("r")
    child.expect("reason")
    child.sendline("no code today; compute it in your head")
    index = child.expect([r"answer \(turn 1\)", r"turn 1: no answer", r"\[a\]pprove"])
    while index == 2:  # the model may try Python again: rejected the same way
        child.sendline("r")
        child.expect("reason")
        child.sendline("no code today; compute it in your head")
        index = child.expect([r"answer \(turn 1\)", r"turn 1: no answer", r"\[a\]pprove"])
    child.expect(PROMPT)
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    record = load(next(p.stem for p in sessions_dir(runs).glob("*.json")), runs)
    with StepLog.open(record.turns[0].run_id or "", runs) as log:
        records = list(log.records())
    rejected = [r for r in records if r.data.get("approval") == "rejected"]
    assert rejected and "no code today" in (rejected[0].text or "")
    assert rejected[0].data["by"] == "person"
    after = records[records.index(rejected[0]) + 1:]
    assert any(r.kind == StepKind.REASON for r in after)  # the model was asked again, the reason in its input
    assert not [r for r in records if r.kind == StepKind.OBSERVATION and r.tool is not None
                and r.tool.name == "python"]  # no Python ran


def test_ctrl_c_stops_a_turn_and_the_session_goes_on(server: list[str], runs: Path) -> None:
    child = spawn(server, runs)
    child.expect(PROMPT)
    child.sendline("Write a long, detailed essay on the history of prime numbers, at least 800 words.")
    time.sleep(6)  # the reply is streaming by now
    child.sendintr()
    child.expect("interrupted")
    child.expect(PROMPT)
    ask(child, "What is 40 + 2? Answer with the number.", 2)
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    record = load(next(p.stem for p in sessions_dir(runs).glob("*.json")), runs)
    first, second = record.turns
    assert first.status == "interrupted" and second.status == "done"
    with StepLog.open(first.run_id or "", runs) as log:
        assert log.meta()["status"] == "interrupted"
        partial = [r for r in log.records(kind=StepKind.REASON) if r.data.get("interrupted")]
    assert partial and partial[0].text and partial[0].text == first.partial


def test_sigkill_then_resume_brings_back_turns_and_python_state(server: list[str], runs: Path) -> None:
    child = spawn(server, runs)
    child.expect(PROMPT)
    ask(child, SET_SECRET, 1)
    child.sendline("Write a long, detailed essay on the history of prime numbers, at least 800 words.")
    time.sleep(6)
    os.kill(child.pid, signal.SIGKILL)
    child.expect(pexpect.EOF)
    session_id = next(p.stem for p in sessions_dir(runs).glob("*.json"))
    assert load(session_id, runs).turns[1].status == "running"  # cut off mid-turn

    again = spawn([*server, "--resume"], runs)
    again.expect(PROMPT)
    shown = screen(again)
    # the earlier turns, the cut-off one marked lost, and the sandbox rebuilt (a deterministic cell: exactly)
    assert session_id in shown and "secret = sum" in shown and "(lost)" in shown and "rerunning 1 cell" in shown
    assert "differ" not in shown
    shown = ask(again, SHOW_SECRET, 3)
    again.sendline("/exit")
    again.expect(pexpect.EOF)
    record = load(session_id, runs)
    assert [t.status for t in record.turns] == ["done", "lost", "done"]
    assert_used(runs, record.turns[2].run_id, "secret", str(SECRET * 2))
    assert str(SECRET * 2) in shown


def test_bad_input_is_one_line_and_the_session_goes_on(server: list[str], runs: Path) -> None:
    child = spawn(server, runs)
    child.expect(PROMPT)
    child.sendline("")
    child.expect("empty line")
    child.expect(PROMPT)
    child.send("\x1b[200~" + "x" * 200_000 + "\x1b[201~\r")  # a paste, as a terminal sends it
    child.expect("200,000 characters")
    child.expect(PROMPT)
    child.send("\x1b[200~abc\x00\x01\x02\x7fdef\x1b[201~\r")
    child.expect("binary")
    child.expect(PROMPT)
    child.sendline("/frobnicate")
    child.expect("unknown command /frobnicate")
    child.expect(PROMPT)
    child.sendline("/help")
    child.expect("/undo")
    child.expect(PROMPT)
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    record = load(next(p.stem for p in sessions_dir(runs).glob("*.json")), runs)
    assert record.turns == []  # nothing bad was recorded as a turn, nothing was lost

    def run_chat(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PEERSTEP_RUNS": str(runs), "COLUMNS": "400"}
        return subprocess.run([PEERSTEP, "chat", *args], capture_output=True, text=True, env=env, timeout=120,
                              stdin=subprocess.DEVNULL, check=False)

    missing = run_chat("--resume", "no-such-session")
    assert missing.returncode == 2 and "no session 'no-such-session'" in missing.stderr
    (sessions_dir(runs) / "broken.json").write_text('{"id": "broken", "turns": [', encoding="utf-8")
    corrupt = run_chat("--resume", "broken")
    assert corrupt.returncode == 2 and "corrupt" in corrupt.stderr
    assert len([line for line in corrupt.stderr.splitlines() if line.strip()]) == 1


def test_embedded_engine_from_a_pipe(runs: Path) -> None:
    """No --base-url: the chat starts the embedded engine once, answers piped questions, and stops it."""
    env = {**os.environ, "PEERSTEP_RUNS": str(runs)}
    env.pop("PEERSTEP_BASE_URL", None)
    env.pop("OPENAI_BASE_URL", None)
    done = subprocess.run([PEERSTEP, "chat"], input="What is 6 * 7? Answer with the number.\n/exit\n",
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    record: Any = json.loads(next(sessions_dir(runs).glob("*.json")).read_text())
    assert record["engine"] == "llamacpp" and record["turns"][0]["answer"] is not None
    assert "42" in record["turns"][0]["answer"]
