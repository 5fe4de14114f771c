"""Human approval of tool calls: the policy, each decision's effect on the run, its step, and approvals in parallel."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from peerstep import (
    AgentConfig,
    ApprovalDecision,
    ApprovalPolicy,
    ApprovalRequest,
    ApprovalRule,
    InputError,
    StepKind,
    StepLog,
    StepRecord,
    aresume,
    arun,
)
from peerstep.cli import app
from peerstep.environments import QuestionEnvironment
from tests.checkpoint_child import calc, submit
from tests.scripted import PerTrajectoryClient, ScriptedClient

Q = "What is six times seven?"


def policy_of(spec: str) -> ApprovalPolicy:
    return ApprovalPolicy.parse(spec)


# --- the policy -------------------------------------------------------------------------------------------------
def test_a_spec_is_one_rule_per_entry_in_order() -> None:
    policy = policy_of("python=ask, calculator=auto,search=auto")
    assert [(r.tool, r.action) for r in policy.rules] == [("python", "ask"), ("calculator", "auto"),
                                                          ("search", "auto")]
    assert policy.check("python", {"code": "1"}) == ("ask", policy.rules[0])
    assert policy.check("calculate", {"expression": "1"}) == ("auto", None)  # no rule: the default
    everything = policy_of("*=ask")
    assert everything.check("search", {"query": "x"})[0] == "ask"
    assert everything.check("submit_answer", {"answer": "4"}) == ("auto", None)  # the finishing tool is never asked
    assert everything.spec() == "*=ask (default auto)" and ApprovalPolicy().spec() == "default auto"


@pytest.mark.parametrize("spec", ["python=maybe", "python", "=ask", "", "python=ask,,search=auto"])
def test_a_bad_spec_names_the_entry_and_the_actions(spec: str) -> None:
    with pytest.raises(InputError) as caught:
        ApprovalPolicy.parse(spec)
    message = str(caught.value)
    assert "\n" not in message and "auto, ask, reject" in message and "entry" in message


def test_a_policy_file_in_yaml_or_json(tmp_path: Path) -> None:
    data = {"default": "ask", "rules": [
        {"tool": "python", "action": "ask", "imports": ["os", "subprocess"]},
        {"tool": "python", "action": "ask", "writes_files": True},
        {"tool": "*", "action": "reject", "network": True, "reason": "no network here"},
        {"tool": "python", "action": "auto"}]}
    (tmp_path / "p.json").write_text(json.dumps(data))
    (tmp_path / "p.yaml").write_text("""\
default: ask
rules:
  - {tool: python, action: ask, imports: [os, subprocess]}
  - {tool: python, action: ask, writes_files: true}
  - {tool: "*", action: reject, network: true, reason: no network here}
  - {tool: python, action: auto}
""")
    for name in ("p.json", "p.yaml"):
        policy = ApprovalPolicy.from_option(str(tmp_path / name))
        assert policy == ApprovalPolicy.model_validate(data)
        assert policy.check("python", {"code": "import os\nos.listdir()"})[1] is policy.rules[0]
        assert policy.check("python", {"code": "open('x', 'w').write('1')"})[1] is policy.rules[1]
        assert policy.check("python", {"code": "import requests"})[0] == "reject"
        assert policy.check("search", {"query": "see https://example.org"})[1] is policy.rules[2]
        assert policy.check("python", {"code": "print(6*7)"}) == ("auto", policy.rules[3])
        assert policy.check("calculate", {"expression": "6*7"}) == ("ask", None)  # the default


@pytest.mark.parametrize(("text", "says"), [
    ("rules: [{tool: python, action: maybe}]", "malformed at rules.0.action"),
    ("rules: [{tool: python}", "not valid YAML"),
    ("- python=ask", "must be a mapping"),
    ("rules: [{tool: python, action: ask, pattern: '('}]", "not a valid regex"),
])
def test_a_malformed_policy_file_is_one_line(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=says) as caught:
        ApprovalPolicy.load(path)
    assert "\n" not in str(caught.value)
    with pytest.raises(InputError, match="cannot read") as missing:
        ApprovalPolicy.from_option(str(tmp_path / "missing.yaml"))
    assert "\n" not in str(missing.value)


@pytest.mark.parametrize(("code", "imports_os_or_subprocess"), [
    ("import os", True), ("from os import path", True), ("import os.path as p", True),
    ("__import__('os').getcwd()", True), ("from subprocess import run\nrun(['ls'])", True),
    ("import importlib\nimportlib.import_module('subprocess')", True), ("import osmosis", False),
    ("import math\nprint(math.pi)", False), ("def f(:\n", True),  # unparseable: the safe side
])
def test_the_imports_condition(code: str, imports_os_or_subprocess: bool) -> None:
    rule = ApprovalRule(tool="python", action="ask", imports=["os", "subprocess"])
    assert rule.applies("python", {"code": code}) is imports_os_or_subprocess
    assert rule.applies("python", json.dumps({"code": code})) is imports_os_or_subprocess  # raw JSON arguments


@pytest.mark.parametrize(("code", "writes"), [
    ("open('f', 'w').write('x')", True), ("open('f', mode='a')", True), ("open('f', 'r+')", True),
    ("from pathlib import Path\nPath('f').write_text('x')", True), ("Path('f').open('x')", True),
    ("import os\nos.remove('f')", True), ("import shutil\nshutil.rmtree('d')", True),
    ("from shutil import copy\ncopy('a', 'b')", True), ("open('f', m)", True),  # a mode computed at run time
    ("print(open('f').read())", False), ("open('f', 'rb')", False), ("'a-b'.replace('-', '+')", False),
    ("df.rename(columns={})", False), ("x = (", True),
])
def test_the_writes_files_condition(code: str, writes: bool) -> None:
    asks = ApprovalRule(tool="python", action="ask", writes_files=True)
    assert asks.applies("python", {"code": code}) is writes
    assert ApprovalRule(tool="python", action="auto", writes_files=False).applies("python", {"code": code}) \
        is not writes


def test_the_network_and_pattern_conditions() -> None:
    net = ApprovalRule(tool="*", action="reject", network=True)
    assert net.applies("python", {"code": "import requests\nrequests.get(u)"})
    assert net.applies("python", {"code": "from urllib.request import urlopen"})
    assert net.applies("python", {"code": "import http.client"})
    assert not net.applies("python", {"code": "print(6*7)"})
    assert net.applies("web", {"url": "https://example.org"}) and net.applies("search", "http://x")
    assert not net.applies("calculate", {"expression": "6*7"})
    pattern = ApprovalRule(tool="calc*", action="ask", pattern=r"\*\s*1000")
    assert pattern.applies("calculate", {"expression": "3 * 1000"})
    assert not pattern.applies("calculate", {"expression": "3 + 1000"})
    assert not pattern.applies("python", {"code": "3 * 1000"})  # the glob first


def test_the_first_matching_rule_wins_and_with_rule_puts_one_first() -> None:
    policy = ApprovalPolicy(rules=[
        ApprovalRule(tool="python", action="reject", imports=["subprocess"], reason="no processes"),
        ApprovalRule(tool="python", action="ask"), ApprovalRule(tool="python", action="auto")])
    assert policy.check("python", {"code": "import subprocess"}) == ("reject", policy.rules[0])
    assert policy.check("python", {"code": "print(1)"}) == ("ask", policy.rules[1])
    live = policy.with_rule("python", "auto")
    # the unconditional python rules are replaced; the conditional one stays, after the new rule
    assert [r.describe() for r in live.rules] == ["python=auto", "python=reject[imports subprocess]"]
    assert live.check("python", {"code": "import subprocess"})[0] == "auto"
    assert [r.describe() for r in policy.rules][1:] == ["python=ask", "python=auto"]  # the original is unchanged
    with pytest.raises(InputError, match="auto, ask, reject"):
        policy.with_rule("python", "later")  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "expected"), [
    (True, ApprovalDecision(action="approve")), (False, ApprovalDecision(action="reject")),
    ("approve", ApprovalDecision(action="approve")), ("yes", ApprovalDecision(action="approve")),
    ("no", ApprovalDecision(action="reject")), ("reject: too slow", ApprovalDecision(action="reject",
                                                                                      reason="too slow")),
    ("stop", ApprovalDecision(action="end")),
    ('edit:{"expression": "6*8"}', ApprovalDecision(action="edit", arguments={"expression": "6*8"})),
    ({"approve": False, "reason": "no"}, ApprovalDecision(action="reject", reason="no")),
    ({"approve": True}, ApprovalDecision(action="approve")),
    ({"action": "edit", "arguments": {"code": "1"}, "by": "ci"},
     ApprovalDecision(action="edit", arguments={"code": "1"}, by="ci")),
])
def test_decisions_old_and_new(value: Any, expected: ApprovalDecision) -> None:
    assert ApprovalDecision.coerce(value) == expected


@pytest.mark.parametrize("value", [None, 3, "perhaps", "edit:[1]", "edit:{nope", {"action": "edit"},
                                   {"action": "later"}, {"reason": "x"}])
def test_a_bad_decision_is_an_input_error(value: Any) -> None:
    with pytest.raises(InputError):
        ApprovalDecision.coerce(value)


def test_the_config_takes_the_old_glob_list_a_spec_and_its_own_dump() -> None:
    legacy = AgentConfig(approve=["calc*", "python"])  # type: ignore[arg-type]
    assert [r.describe() for r in legacy.approve.rules] == ["calc*=ask", "python=ask"]
    assert AgentConfig(approve="python=ask").approve.rules[0].action == "ask"  # type: ignore[arg-type]
    assert AgentConfig.model_validate(legacy.model_dump()) == legacy  # a stored run meta reads back
    assert AgentConfig().approve.allows_all
    assert AgentConfig.model_validate({"approve": ["calculate"]}).approve.check("calculate", "{}")[0] == "ask"


# --- each decision in a run -----------------------------------------------------------------------------------
def approvals(run_dir: Path, run_id: str) -> list[StepRecord]:
    with StepLog.open(run_id, run_dir) as log:
        return [r for r in log.records(kind=StepKind.OBSERVATION) if r.data.get("approval")]


def tool_outputs(run_dir: Path, run_id: str) -> list[str | None]:
    with StepLog.open(run_id, run_dir) as log:
        return [r.text for r in log.records(kind=StepKind.OBSERVATION) if r.tool and r.tool.name == "calculate"]


async def run_with(tmp_path: Path, script: list[Any], decision: Any, policy: str = "calculate=ask",
                   ) -> tuple[Any, ScriptedClient, list[ApprovalRequest]]:
    asked: list[ApprovalRequest] = []

    def approver(request: ApprovalRequest) -> ApprovalDecision:  # a sync approver is called directly
        asked.append(request)
        return ApprovalDecision.coerce(decision)

    client = ScriptedClient(script)
    result = await arun(Q, client, python=False, agent=AgentConfig(approve=policy),  # type: ignore[arg-type]
                        approver=approver, runs_dir=tmp_path)
    return result, client, asked


async def test_an_approved_call_runs(tmp_path: Path) -> None:
    result, _, asked = await run_with(tmp_path, [calc("6*7"), submit("42")], "approve")
    assert result.answer == "42" and result.status == "done"
    assert asked == [ApprovalRequest(trajectory_id=0, call_id=asked[0].call_id, tool="calculate",
                                     arguments={"expression": "6*7"}, rule="calculate=ask")]
    [step] = approvals(tmp_path, result.run_id)
    assert step.data == {"approval": "approved", "by": "person", "rule": "calculate=ask", "edited": None,
                         "reason": "", "call": {"id": asked[0].call_id, "name": "calculate",
                                                "arguments": {"expression": "6*7"}}}
    assert tool_outputs(tmp_path, result.run_id) == ["42"]


async def test_an_edited_call_runs_with_the_new_arguments_and_the_model_is_told(tmp_path: Path) -> None:
    edit = {"action": "edit", "arguments": {"expression": "6*8"}}
    result, client, _ = await run_with(tmp_path, [calc("6*7"), submit("48")], edit)
    assert result.answer == "48"
    [step] = approvals(tmp_path, result.run_id)
    assert step.data["approval"] == "edited" and step.data["edited"] == {"expression": "6*8"}
    assert step.data["call"]["arguments"] == {"expression": "6*7"}  # the original call, as the model made it
    assert tool_outputs(tmp_path, result.run_id)[0].startswith("48")  # type: ignore[union-attr]
    seen = client.requests_seen[1]["messages"][-1]["content"]
    assert "48" in seen and "edited this call" in seen and "6*8" in seen


async def test_a_rejected_call_does_not_run_and_the_model_sees_the_reason(tmp_path: Path) -> None:
    result, client, _ = await run_with(tmp_path, [calc("6*7"), submit("42")], "reject: work it out by hand")
    assert result.answer == "42" and tool_outputs(tmp_path, result.run_id) == []
    [step] = approvals(tmp_path, result.run_id)
    assert step.data["approval"] == "rejected" and step.data["reason"] == "work it out by hand"
    assert client.requests_seen[1]["messages"][-1]["content"] == (
        "The call was not approved: work it out by hand. Do not repeat it; continue another way.")


async def test_end_finishes_the_trajectory_with_nothing_run(tmp_path: Path) -> None:
    result, client, _ = await run_with(tmp_path, [calc("6*7"), submit("42")], "stop")
    assert result.answer is None and "ended by the person at an approval" in (result.error or "")
    assert len(client.requests_seen) == 1 and tool_outputs(tmp_path, result.run_id) == []
    [step] = approvals(tmp_path, result.run_id)
    assert step.data["approval"] == "ended" and step.data["by"] == "person"


async def test_a_policy_rejection_does_not_pause(tmp_path: Path) -> None:
    policy = ApprovalPolicy(rules=[ApprovalRule(tool="calculate", action="reject", pattern=r"\*",
                                                reason="multiply in your head")])
    client = ScriptedClient([calc("6*7"), calc("40+2"), submit("42")])
    result = await arun(Q, client, python=False, agent=AgentConfig(approve=policy), runs_dir=tmp_path)
    assert result.status == "done" and result.answer == "42"  # no approver, no pause: nobody is asked
    [step] = approvals(tmp_path, result.run_id)
    assert step.data["by"] == "policy" and step.data["rule"].startswith("calculate=reject")
    assert client.requests_seen[1]["messages"][-1]["content"] == (
        "The call was not approved: multiply in your head. Do not repeat it; continue another way.")
    assert tool_outputs(tmp_path, result.run_id) == ["42"]  # only the allowed call ran


async def test_a_paused_call_is_answered_with_the_new_shapes_and_bad_ones_are_refused(tmp_path: Path) -> None:
    paused = await arun(lambda: QuestionEnvironment(Q), PerTrajectoryClient({0: [calc("6*7")]}),
                        agent=AgentConfig(approve=["calculate"]), runs_dir=tmp_path)  # type: ignore[arg-type]
    [pending] = paused.pending
    assert pending.value == {"kind": "approve_tool_call", "trajectory_id": 0, "call_id": pending.value["call_id"],
                             "tool": "calculate", "arguments": {"expression": "6*7"}, "rule": "calculate=ask"}
    assert ApprovalRequest.model_validate(pending.value).tool == "calculate"
    task = lambda: QuestionEnvironment(Q)  # noqa: E731
    with pytest.raises(InputError, match="bad approval decision"):  # refused before anything runs
        await aresume(paused.run_id, PerTrajectoryClient({0: []}), runs_dir=tmp_path, task=task,
                      decisions={pending.id: "perhaps"})
    with pytest.raises(InputError, match="waits for no decision"):
        await aresume(paused.run_id, PerTrajectoryClient({0: []}), runs_dir=tmp_path, task=task,
                      decisions={"nope": "approve"})
    done = await aresume(paused.run_id, PerTrajectoryClient({0: [submit("48")]}), runs_dir=tmp_path, task=task,
                         decisions={pending.id: 'edit:{"expression": "6*8"}'})
    assert done.answer == "48" and tool_outputs(tmp_path, paused.run_id)[0].startswith("48")  # type: ignore[union-attr]
    [step] = approvals(tmp_path, paused.run_id)
    assert step.data["approval"] == "edited" and step.data["edited"] == {"expression": "6*8"}


def two_calls() -> list[dict[str, Any]]:
    return [{"id": f"call_{i}", "type": "function",
             "function": {"name": "calculate", "arguments": json.dumps({"expression": expr})}}
            for i, expr in enumerate(["6*7", "6*8"])]


async def test_several_calls_in_one_reply_are_asked_one_by_one(tmp_path: Path) -> None:
    """Native calls: one interrupt per call in the same node; LangGraph matches the answers by order, so the run
    pauses once per call, and each answer reaches its own call."""
    task = lambda: QuestionEnvironment(Q)  # noqa: E731
    agent = AgentConfig(approve="calculate=ask")  # type: ignore[arg-type]
    first = await arun(task, PerTrajectoryClient({0: [two_calls()]}), agent=agent, runs_dir=tmp_path)
    assert [p.value["call_id"] for p in first.pending] == ["call_0"]
    second = await aresume(first.run_id, PerTrajectoryClient({0: []}), runs_dir=tmp_path, task=task,
                           decisions={first.pending[0].id: "reject:not that one"})
    assert [p.value["call_id"] for p in second.pending] == ["call_1"] and second.pending[0].id != first.pending[0].id
    assert approvals(tmp_path, first.run_id) == []  # nothing is logged until every call of the node is decided
    client = PerTrajectoryClient({0: [submit("48")]})
    done = await aresume(first.run_id, client, runs_dir=tmp_path, task=task,
                         decisions={second.pending[0].id: "approve"})
    assert done.answer == "48"
    steps = approvals(tmp_path, first.run_id)
    assert [(s.data["call"]["id"], s.data["approval"]) for s in steps] == [("call_0", "rejected"),
                                                                          ("call_1", "approved")]
    assert tool_outputs(tmp_path, first.run_id) == ["48"]
    tool_messages = [m for m in client.requests_seen[0]["messages"] if m["role"] == "tool"]
    assert {m["tool_call_id"] for m in tool_messages} == {"call_0", "call_1"}  # each native call is answered


# --- in parallel ----------------------------------------------------------------------------------------------
# Products need a person; sums do not. Trajectories 0 and 1 multiply (asked at the same time), 2 adds and finishes.
PARALLEL_POLICY = ApprovalPolicy(rules=[ApprovalRule(tool="calculate", action="ask", pattern=r"\*")])
REASON = "no products today"


def parallel_scripts() -> dict[int, list[Any]]:
    return {0: [calc("6*7"), submit("42")], 1: [calc("6*8"), submit("42")], 2: [calc("40+2"), submit("42")]}


def check_parallel_log(run_dir: Path, run_id: str, client: PerTrajectoryClient) -> None:
    steps = {s.trajectory_id: s for s in approvals(run_dir, run_id)}
    assert sorted(steps) == [0, 1]
    assert steps[0].data["approval"] == "approved" and steps[1].data["approval"] == "rejected"
    assert steps[1].data["reason"] == REASON
    with StepLog.open(run_id, run_dir) as log:
        outputs = [(r.trajectory_id, r.text) for r in log.records(kind=StepKind.OBSERVATION)
                   if r.tool and r.tool.name == "calculate"]
    assert sorted(outputs) == [(0, "42"), (2, "42")]  # the rejected product never ran
    told = [req for req in client.requests_seen if req["sampling"].seed == 1
            and REASON in (req["messages"][-1].get("content") or "")]
    assert len(told) == 1  # trajectory 1's next request carried the reason


async def test_parallel_approvals_paused_together_answered_differently(tmp_path: Path) -> None:
    agent = AgentConfig(approve=PARALLEL_POLICY)
    task = lambda: QuestionEnvironment(Q)  # noqa: E731
    paused = await arun(task, PerTrajectoryClient(parallel_scripts()), strategy="leap", n=3, agent=agent,
                        runs_dir=tmp_path)
    assert paused.status == "paused"
    asked = {p.value["trajectory_id"]: p for p in paused.pending}
    assert sorted(asked) == [0, 1]  # two requests wait at once, each on its own
    with StepLog.open(paused.run_id, tmp_path) as log:  # the third needed none and finished meanwhile
        assert [r.trajectory_id for r in log.records(kind=StepKind.FINAL)] == [2]
    client = PerTrajectoryClient({t: s[1:] for t, s in parallel_scripts().items()})
    done = await aresume(paused.run_id, client, runs_dir=tmp_path, task=task, decisions={
        asked[0].id: "approve", asked[1].id: {"action": "reject", "reason": REASON}})
    assert done.status == "done" and done.answer == "42" and done.answers == {0: "42", 1: "42", 2: "42"}
    check_parallel_log(tmp_path, paused.run_id, client)


async def test_parallel_approvals_with_an_async_approver_others_run_meanwhile(tmp_path: Path) -> None:
    waiting: dict[int, ApprovalRequest] = {}
    third_final = asyncio.Event()
    both_waiting_after_third = asyncio.Event()
    timeline: list[str] = []

    def release() -> None:
        if third_final.is_set() and len(waiting) == 2:
            both_waiting_after_third.set()

    def listener(rec: StepRecord) -> None:
        if rec.kind == StepKind.FINAL and rec.trajectory_id == 2:
            timeline.append("final 2")
            third_final.set()
            release()

    async def approver(request: ApprovalRequest) -> ApprovalDecision:
        waiting[request.trajectory_id] = request
        timeline.append(f"asked {request.trajectory_id}")
        release()
        await both_waiting_after_third.wait()  # answered only once the third has finished and both wait
        timeline.append(f"answered {request.trajectory_id}")
        return ApprovalDecision(action="approve") if request.trajectory_id == 0 else \
            ApprovalDecision(action="reject", reason=REASON)

    client = PerTrajectoryClient(parallel_scripts())
    result = await asyncio.wait_for(arun(
        lambda: QuestionEnvironment(Q), client, strategy="leap", n=3, agent=AgentConfig(approve=PARALLEL_POLICY),
        approver=approver, runs_dir=tmp_path, listeners=[listener]), timeout=60)
    assert result.status == "done" and result.answers == {0: "42", 1: "42", 2: "42"}
    assert sorted(timeline[:3]) == ["asked 0", "asked 1", "final 2"]  # all three before any answer
    assert sorted(timeline[3:5]) == ["answered 0", "answered 1"]
    check_parallel_log(tmp_path, result.run_id, client)


# --- the command line -----------------------------------------------------------------------------------------
def test_solve_with_a_bad_approval_spec_is_refused_in_one_line() -> None:
    result = CliRunner().invoke(app, ["solve", "1+1?", "--approve", "python=sometimes", "--engine", "none"],
                                env={"COLUMNS": "300"})
    assert result.exit_code == 2
    assert "bad approval entry 'python=sometimes'" in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1


def test_solve_pauses_off_a_terminal_and_resume_decide_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a terminal: the run pauses (exit 3) showing the call and the command that answers it; ``resume --decide``
    takes an id prefix and the new decision shapes, and refuses a bad one before any engine starts."""
    import peerstep._runner as runner_module

    clients = iter([ScriptedClient([calc("6*7")]), ScriptedClient([submit("42")])])

    async def scripted_endpoint(endpoint: Any, work: Any) -> Any:
        return await work(next(clients))

    monkeypatch.setattr(runner_module, "on_endpoint", scripted_endpoint)
    monkeypatch.setenv("PEERSTEP_HOME", str(tmp_path))
    cli = CliRunner()
    env = {"COLUMNS": "300"}
    paused = cli.invoke(app, ["solve", Q, "--approve", "calculate=ask", "--no-python", "--base-url",
                              "http://scripted.invalid/v1", "--model", "scripted", "--json", "-q"], env=env)
    assert paused.exit_code == 3, paused.output
    run_id = json.loads(paused.stdout)["run_id"]
    [pending] = json.loads(paused.stdout)["pending"]
    assert "t0 asks to run calculate" in paused.output and "6*7" in paused.output
    assert f"peerstep resume {run_id} --decide ID=approve" in paused.output
    bad = cli.invoke(app, ["resume", run_id, "--decide", f"{pending['id'][:8]}=perhaps"], env=env)
    assert bad.exit_code == 2 and "bad approval decision 'perhaps'" in bad.output
    done = cli.invoke(app, ["resume", run_id, "--base-url", "http://scripted.invalid/v1", "--decide",
                            f"{pending['id'][:8]}=reject:count in your head", "--json", "-q"], env=env)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["answer"] == "42"
    with StepLog.open(run_id) as log:
        [step] = [r for r in log.records(kind=StepKind.OBSERVATION) if r.data.get("approval")]
    assert step.data["approval"] == "rejected" and step.data["reason"] == "count in your head"


async def test_the_terminal_approver_asks_one_request_at_a_time() -> None:
    from rich.console import Console

    from peerstep.cli._approve import TerminalApprover

    answers = iter(["e", "print(1)", "print(2)", ".", "what?", "r", "too slow", "e", "{bad", "e", '{"x": 1}',
                    "s"])
    prompts: list[str] = []
    console = Console(record=True, width=200)

    def reader(prompt: str) -> str:
        prompts.append(prompt)
        answer = next(answers, None)
        if answer is None:
            raise EOFError
        return answer

    approver = TerminalApprover(console, reader)
    code = ApprovalRequest(trajectory_id=0, call_id="a", tool="python", arguments={"code": "import os"},
                           rule="python=ask")
    other = ApprovalRequest(trajectory_id=1, call_id="b", tool="search", arguments={"query": "q"}, rule="*=ask")
    first, second = await asyncio.wait_for(asyncio.gather(approver(code), approver(other)), timeout=10)
    assert first == ApprovalDecision(action="edit", arguments={"code": "print(1)\nprint(2)"})
    # the second request was asked only after the first was answered: its prompts come after the code's
    assert [p for p in prompts if p.startswith("t")] == ["t0 [a]pprove / [e]dit / [r]eject / [s]top: "] + \
        ["t1 [a]pprove / [e]dit / [r]eject / [s]top: "] * 2
    assert second == ApprovalDecision(action="reject", reason="too slow")
    assert await approver(other) == ApprovalDecision(action="edit", arguments={"x": 1})  # after one bad JSON
    assert (await approver(other)).action == "end"
    assert (await approver(other)).action == "end"  # end of input: the turn ends, nothing hangs
    shown = console.export_text()
    assert "t0 asks to run python" in shown and "import os" in shown and "answer a, e, r or s" in shown


async def test_a_policy_changed_in_place_during_a_run_applies_to_the_next_call(tmp_path: Path) -> None:
    """What ``/approve calculate=auto`` relies on: every trajectory's config shares the run's policy object, so
    replacing its rules in place (with ``with_rule``'s) takes effect at the next call."""
    agent = AgentConfig(approve="calculate=ask")  # type: ignore[arg-type]
    asked: list[str] = []

    def approver(request: ApprovalRequest) -> ApprovalDecision:
        asked.append(request.call_id)
        agent.approve.rules[:] = agent.approve.with_rule("calculate", "auto").rules
        return ApprovalDecision(action="approve")

    client = ScriptedClient([calc("6*7"), calc("42+0"), submit("42")])
    result = await arun(Q, client, python=False, agent=agent, approver=approver, runs_dir=tmp_path)
    assert result.answer == "42" and len(asked) == 1 and tool_outputs(tmp_path, result.run_id) == ["42", "42"]


def test_a_rule_for_no_tool_is_pointed_out() -> None:
    from typer.testing import CliRunner

    from peerstep.cli import app

    policy = ApprovalPolicy.parse("python=ask,calculator=auto,search*=auto")
    assert policy.unmatched(["python", "calculate", "search_docs"]) == ["calculator"]
    shown = CliRunner().invoke(app, ["solve", "1+1?", "--approve", "calculator=ask", "--engine", "no-such-engine"],
                               env={"COLUMNS": "200"})
    assert "approval rule 'calculator' matches no tool" in shown.output and "calculate" in shown.output


def test_the_example_policy_file_loads_and_decides() -> None:
    from pathlib import Path

    policy = ApprovalPolicy.from_option(str(Path(__file__).parents[1] / "examples" / "approval_policy.yaml"))
    assert policy.check("python", {"code": "import urllib.request"})[0] == "reject"
    assert policy.check("python", {"code": "import os\nos.listdir('.')"})[0] == "ask"
    assert policy.check("python", {"code": "open('out.txt', 'w').write('x')"})[0] == "ask"
    assert policy.check("python", {"code": "print(sum(range(10)))"})[0] == "auto"
    assert policy.check("calculate", {"expression": "2+2"})[0] == "auto"
