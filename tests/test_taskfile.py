"""Scripted task files: loading, checkers, episodes, and error reports that name every bad entry by line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from peerstep import arun
from peerstep._errors import InputError
from peerstep.environments import QuestionEnvironment
from peerstep.environments.taskfile import DeferredPythonChecker, TaskFileDataset, load_task_file
from peerstep.grading import NumericChecker
from peerstep.steplog import StepKind, StepLog
from tests.scripted import ScriptedClient

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tasks.yaml"


def submit(answer: str) -> str:
    return json.dumps({"name": "submit_answer", "arguments": {"answer": answer}})


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    """The per-entry lines of the one InputError that loading ``path`` raises."""
    with pytest.raises(InputError) as caught:
        TaskFileDataset(path)
    lines = str(caught.value).splitlines()
    return [line.strip() for line in lines[1:]]


# ------------------------------------------------------------------------------------------------------ the example


def test_the_example_file_loads_five_diverse_scientific_tasks() -> None:
    ds = TaskFileDataset(EXAMPLE)
    assert len(ds) == 5
    infos = [ds.info(i) for i in range(len(ds))]
    assert [i.task_id for i in infos] == ["ideal-gas-pressure", "buffer-ph", "projectile-range", "derivative",
                                          "element-symbol"]
    assert {i.tags["checker"] for i in infos} == {"numeric", "math", "exact"}
    assert {t for i in infos for t in i.tags["tools"]} == {"calculator", "python", "search"}
    assert all(i.gold for i in infos)
    assert ds.grade(0, "309.86 kPa") and not ds.grade(0, "320")
    assert ds.grade(1, "4.94") and not ds.grade(1, "4.96")  # atol 0.01 beside the bare checker name
    assert ds.grade(2, "62.7") and not ds.grade(2, "31.9")
    assert ds.grade(3, "x^3 cos(x) + 3x^2 sin(x)") and not ds.grade(3, "3*x**2*cos(x)")
    assert ds.grade(4, "Fe") and not ds.grade(4, "Iron")


def test_example_tools_are_the_ones_each_task_names() -> None:
    ds = TaskFileDataset(EXAMPLE)
    tools = {ds.info(i).task_id: set(ds.make(i).tools) for i in range(len(ds))}  # type: ignore[attr-defined]
    assert tools["ideal-gas-pressure"] == {"calculate", "python", "submit_answer"}
    assert tools["buffer-ph"] == {"calculate", "submit_answer"}
    assert tools["projectile-range"] == {"python", "submit_answer"}
    assert tools["element-symbol"] == {"search", "open_page", "submit_answer"}
    no_python = TaskFileDataset(EXAMPLE, python=False)
    assert "python" not in no_python.make(0).tools  # type: ignore[attr-defined]


async def test_task_file_episodes_reward_right_and_wrong_answers(tmp_path: Path) -> None:
    ds = TaskFileDataset(EXAMPLE)
    for answer, reward in (("309.9", 1.0), ("250", 0.0)):
        log = StepLog.create(directory=tmp_path)
        result = await arun(ds.make(0), ScriptedClient([submit(answer)]), log=log)
        finals = list(log.records(kind=StepKind.FINAL))
        log.close()
        assert result.reward == reward and [f.reward for f in finals] == [reward]


# --------------------------------------------------------------------------------------------------- valid forms


def test_jsonl_and_a_bare_list_and_every_checker_form(tmp_path: Path) -> None:
    (tmp_path / "checks.py").write_text("def is_prime(prediction, gold):\n"
                                        "    n = int(prediction)\n"
                                        "    return n > 1 and all(n % k for k in range(2, n))\n")
    jsonl = write(tmp_path, "t.jsonl", "\n".join([
        json.dumps({"question": "2+2?", "gold": 4, "checker": "numeric"}),
        "",
        json.dumps({"id": "p", "question": "Name a prime above 100.", "tools": [],
                    "checker": {"type": "python", "function": "checks.py:is_prime"}}),
        json.dumps({"question": "Half?", "gold": "1/2", "checker": {"type": "numeric", "rtol": 0, "atol": 0.01}}),
    ]))
    ds = TaskFileDataset(jsonl)
    assert [ds.info(i).task_id for i in range(3)] == ["t-1", "p", "t-3"]
    assert ds.info(0).gold == "4" and ds.info(1).gold is None
    assert ds.grade(0, "4.0") and ds.grade(1, "101") and not ds.grade(1, "100") and not ds.grade(1, "abc")
    assert ds.grade(2, "0.505") and not ds.grade(2, "0.52")
    checker = ds.checker(1)
    assert isinstance(ds.checker(2), NumericChecker) and isinstance(checker, DeferredPythonChecker)
    assert checker.loaded is not None  # imported by the first grade, not before
    bare = write(tmp_path, "bare.yaml", "- question: What is 1e-3 in words?\n  gold: one thousandth\n"
                                        "  checker: exact\n- {question: 'Gold 1.5e-19', gold: 1.5e-19, "
                                        "checker: numeric}\n")
    ds = TaskFileDataset(bare, limit=1)
    assert len(ds) == 1 and ds.info(0).tags["checker"] == "exact"
    assert TaskFileDataset(bare).info(1).gold == "1.5e-19"


async def test_a_python_checker_scores_a_task_without_gold(tmp_path: Path) -> None:
    (tmp_path / "checks.py").write_text("def check(prediction, gold):\n    return prediction.strip() == 'yes'\n")
    path = write(tmp_path, "t.yaml", "tasks:\n  - question: Say yes.\n    tools: []\n"
                                     "    checker: {type: python, function: checks.py}\n")
    ds = TaskFileDataset(path)
    env = ds.make(0)
    assert isinstance(env, QuestionEnvironment) and set(env.tools) == {"submit_answer"}
    result = await arun(env, ScriptedClient([submit("yes")]), log=StepLog.create(directory=tmp_path))
    assert result.reward == 1.0
    result = await arun(ds.make(0), ScriptedClient([submit("no")]), log=StepLog.create(directory=tmp_path))
    assert result.reward == 0.0


# -------------------------------------------------------------------------------------------------- error reports

MALFORMED = """\
tasks:
  - id: fine
    question: What is 2+2?
    gold: 4
  - id: no-question
    tools: [calculator]
    gold: 3
  - id: bad-checker
    question: What is 3+3?
    checker: fuzzy
    gold: 6
  - id: missing-function
    question: What is 4+4?
    checker:
      type: python
      function: no_such_pkg_xyz.checks:check
  - id: bad-tolerance
    question: What is 5+5?
    checker:
      type: numeric
      rtol: one percent
    gold: 10
  - id: bad-tool
    question: What is 6+6?
    tools: [calculator, abacus]
    gold: 12
  - id: typo
    question: What is 7+7?
    gole: 14
  - id: bool-tolerance
    question: What is 8+8?
    checker: numeric
    atol: yes
    gold: 16
  - id: fine
    question: Duplicate id.
  - id: not-a-number
    question: What is pi?
    checker: numeric
    gold: about three
"""


def test_a_malformed_yaml_file_reports_every_bad_entry_with_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", MALFORMED)
    found = problems(path)
    expected = [
        (5, "task 2 (id 'no-question'): question: is required"),
        (10, "task 3 (id 'bad-checker'): checker: unknown checker 'fuzzy'"),
        (16, "task 4 (id 'missing-function'): checker.function: python checker "
             "'no_such_pkg_xyz.checks:check': no module named 'no_such_pkg_xyz'"),
        (21, "task 5 (id 'bad-tolerance'): checker.rtol: Input should be a valid number"),
        (25, "task 6 (id 'bad-tool'): tools[1]: unknown tool 'abacus'; known: calculator, python, search"),
        (29, "task 7 (id 'typo'): gole: is not a known field"),
        (33, "task 8 (id 'bool-tolerance'): checker.atol: must be a number, not true/false"),
        (35, "task 9 (id 'fine'): id: duplicate id 'fine' (first used by task 1)"),
        (40, "task 10 (id 'not-a-number'): gold: 'about three' is not a number, but the checker is numeric"),
    ]
    assert len(found) == len(expected), found
    for line, (lineno, text) in zip(found, expected, strict=True):
        assert line.startswith(f"{path}:{lineno}: "), line
        assert text in line, line
    with pytest.raises(InputError, match=r"^.*bad.yaml: 9 problem\(s\) in the task file:"):
        load_task_file(path)


def test_a_yaml_syntax_error_reports_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "syntax.yaml", "tasks:\n  - question: ok\n  - question: [unclosed\n    gold: 3\n")
    with pytest.raises(InputError, match=re.escape(f"{path}:") + r"[45]:\d+: YAML syntax error"):
        TaskFileDataset(path)


def test_a_malformed_jsonl_file_reports_each_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.jsonl", "\n".join([
        json.dumps({"question": "ok", "gold": "1"}),
        "{not json",
        json.dumps({"gold": "2"}),
        json.dumps({"question": "x", "checker": {"type": "numeric", "rtol": "wide"}, "gold": "2"}),
        json.dumps(["a", "list"]),
        json.dumps({"question": "y", "checker": {"type": "python", "function": "nope.py:check"}}),
    ]) + "\n")
    found = problems(path)
    assert [line.split(": ", 1)[0] for line in found] == [f"{path}:{n}" for n in (2, 3, 4, 5, 6)], found
    assert "not valid JSON" in found[0]
    assert "task 3: question: is required" in found[1]
    assert "checker.rtol: Input should be a valid number" in found[2]
    assert "expected a task mapping" in found[3]
    assert "checker.function" in found[4] and "no such file" in found[4]


@pytest.mark.parametrize(("text", "message"), [
    ("", "has no tasks"),
    ("tasks: []\n", "has no tasks"),
    ("tasks:\n  question: not a list\n", "expected a list of tasks"),
    ("task:\n  - question: q\n", "unknown top-level key(s): task"),
    ("just a string\n", "expected a list of tasks"),
])
def test_file_level_problems(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        TaskFileDataset(write(tmp_path, "f.yaml", text))


def test_unreadable_or_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no task file"):
        TaskFileDataset(tmp_path / "missing.yaml")
    with pytest.raises(InputError, match="must end in"):
        TaskFileDataset(write(tmp_path, "tasks.txt", "question: q\n"))


# --------------------------------------------------------------------------- a task file is code, run only to grade

SIDE_EFFECT_CHECKER = """\
from pathlib import Path
Path(__file__).with_name("imported.marker").write_text("this checker ran at import")

def check(prediction, gold):
    return prediction.strip() == "42"
"""


def test_loading_a_task_file_runs_none_of_its_python_checker(tmp_path: Path) -> None:
    (tmp_path / "checks.py").write_text(SIDE_EFFECT_CHECKER)
    marker = tmp_path / "imported.marker"
    path = write(tmp_path, "t.yaml", "- question: The answer?\n  tools: []\n  gold: '42'\n"
                                     "  checker: {type: python, function: checks.py:check}\n")
    load_task_file(path)
    ds = TaskFileDataset(path)
    env = ds.make(0)
    assert not marker.exists(), "loading the task file (or making an environment) ran the checker's code"
    assert ds.python_checkers == ["checks.py:check"]  # what grading will run, for a CLI to announce
    assert ds.grade(0, "42") and not ds.grade(0, "41")
    assert marker.exists()  # grading is when it runs
    assert isinstance(env, QuestionEnvironment)


def test_a_module_checker_is_located_without_importing_its_package(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "lib" / "mychecks"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('the package __init__ ran at load time')\n")
    (package / "grading.py").write_text("def check(prediction, gold):\n    return True\n")
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    path = write(tmp_path, "t.yaml", "- question: Q?\n  checker: {type: python, function: mychecks.grading:check}\n"
                                     "- question: R?\n  checker: {type: python, function: mychecks.grading:nope}\n")
    found = problems(path)
    assert len(found) == 1 and "task 2" in found[0] and "has no function 'nope'" in found[0], found
    ok = write(tmp_path, "ok.yaml", "- question: Q?\n  checker: {type: python, function: mychecks.grading:check}\n")
    ds = TaskFileDataset(ok)  # the package __init__ would raise if it were imported now
    with pytest.raises(InputError, match="the package __init__ ran"):
        ds.grade(0, "anything")  # grading imports it, and its failure is loud


def test_what_a_checker_file_lacks_is_still_reported_at_load(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("def check(prediction, gold)\n    return True\n")
    (tmp_path / "other.py").write_text("def judge(prediction, gold):\n    return True\n")
    path = write(tmp_path, "t.yaml", "- question: A?\n  checker: {type: python, function: broken.py}\n"
                                     "- question: B?\n  checker: {type: python, function: other.py:check}\n")
    found = problems(path)
    assert len(found) == 2, found
    assert "broken.py:1: syntax error" in found[0]
    assert "has no function 'check' (it has: judge)" in found[1]


def test_peerstep_run_announces_python_checkers_before_running_them(tmp_path: Path) -> None:
    """The CLI says a task file is code before any of it runs (here it stops at the unknown engine)."""
    from typer.testing import CliRunner

    from peerstep.cli import app

    (tmp_path / "checks.py").write_text(SIDE_EFFECT_CHECKER)
    path = write(tmp_path, "t.yaml", "- question: The answer?\n  tools: []\n  gold: '42'\n"
                                     "  checker: {type: python, function: checks.py:check}\n")
    result = CliRunner().invoke(app, ["run", str(path), "--engine", "no-such-engine"])
    assert "runs with your rights" in result.output and "checks.py:check" in result.output
    assert not (tmp_path / "imported.marker").exists()
