"""Sessions (peerstep.Session): turns that share a conversation and a Python sandbox, saved and resumable.

The scripted model drives the graph; the sandbox, the step logs and the session files are real.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from peerstep import InputError
from peerstep.agent import Completion
from peerstep.session import (
    AnswerEvent,
    ApprovalEvent,
    Session,
    StepEvent,
    SyncSession,
    check_text,
    list_sessions,
    load,
    sessions_dir,
)
from peerstep.session._history import fit
from peerstep.steplog import StepKind, StepLog
from tests.scripted import ScriptedClient, native_call


def code(source: str) -> list[dict[str, Any]]:
    return [native_call("python", code=source)]


def submit(answer: str) -> list[dict[str, Any]]:
    return [native_call("submit_answer", answer=answer)]


def tool_outputs(client: ScriptedClient) -> list[str]:
    """What the tools answered, as the model was shown it in its last request."""
    last = client.requests_seen[-1]["messages"]
    return [str(m.get("content")) for m in last if m.get("role") == "tool"]


async def test_turns_share_the_conversation_and_the_python_state(tmp_path: Path) -> None:
    client = ScriptedClient([code("x = 6 * 7\nprint(x)"), submit("42"),
                             code("print(x + 1)"), submit("43")])
    async with Session(client=client, runs_dir=tmp_path) as s:
        first = await s.send("What is 6 times 7? Keep it in x.")
        second = await s.send("And x plus one?")
    assert (first.status, first.answer, second.answer) == ("done", "42", "43")
    assert tool_outputs(client)[-1].strip() == "43"  # x from turn 1 exists in turn 2's sandbox
    opening = [m.get("content") for m in client.requests_seen[2]["messages"]]
    assert any("What is 6 times 7?" in str(c) for c in opening)  # turn 1 opens turn 2
    assert any(str(c) == "The answer is 42." for c in opening)
    assert opening[-1] == "And x plus one?"
    record = load(s.id, tmp_path)
    assert [t.status for t in record.turns] == ["done", "done"]
    assert [c.code for c in record.turns[0].cells] == ["x = 6 * 7\nprint(x)"]
    with StepLog.open(second.run_id or "", tmp_path) as log:  # each turn is a run, tagged with its session
        assert (log.meta()["session"], log.meta()["turn"]) == (s.id, 2)


async def test_resume_replays_the_sandbox_and_marks_a_cut_off_turn_lost(tmp_path: Path) -> None:
    async with Session(client=ScriptedClient([code("x = 21"), submit("ok")]), runs_dir=tmp_path) as s:
        await s.send("Set x to 21.")
    record = load(s.id, tmp_path)  # a turn in flight when the process was killed: status "running" on disk
    record.turns.append(record.turns[0].model_copy(update={"index": 2, "status": "running", "question": "cut",
                                                           "cells": []}))
    from peerstep.session import _store

    _store.save(record, tmp_path)
    client = ScriptedClient([code("print(x * 2)"), submit("42")])
    async with Session(client=client, runs_dir=tmp_path, resume=True) as again:
        assert again.id == s.id
        events = [e async for e in again.stream("Double x.")]
    turn = events[-1].turn  # type: ignore[union-attr]
    assert isinstance(events[-1], AnswerEvent) and turn.answer == "42"
    assert tool_outputs(client)[-1].strip() == "42"
    statuses = [t.status for t in load(s.id, tmp_path).turns]
    assert statuses == ["done", "lost", "done"]
    notes = [getattr(e, "text", "") for e in events]
    assert any("marked lost" in n for n in notes) and any("rerunning 1 cell" in n for n in notes)
    history = [m.get("content") for m in client.requests_seen[0]["messages"]]
    assert not any(c == "cut" for c in history)  # the lost turn is not in the conversation


async def test_undo_drops_the_turn_and_its_python_state(tmp_path: Path) -> None:
    client = ScriptedClient([code("a = 1"), submit("1"), code("b = 2"), submit("2"),
                             code("print('b' in globals(), a)"), submit("done")])
    async with Session(client=client, runs_dir=tmp_path) as s:
        await s.send("Set a.")
        await s.send("Set b.")
        undone = await s.undo()
        await s.send("Is b there?")
    assert undone.index == 2
    assert tool_outputs(client)[-1].strip() == "False 1"
    assert [t.status for t in load(s.id, tmp_path).turns] == ["done", "undone", "done"]
    opening = [m.get("content") for m in client.requests_seen[-2]["messages"]]
    assert "Set b." not in opening


async def test_interrupted_turn_keeps_the_partial_reply(tmp_path: Path) -> None:
    class Stalls(ScriptedClient):
        async def chat(self, messages: Any, **kwargs: Any) -> list[Completion]:
            kwargs["on_token"](0, "Let me think about ")
            await asyncio.sleep(3600)
            raise AssertionError("unreachable")

    async with Session(client=Stalls([]), runs_dir=tmp_path, python=False) as s:
        seen: list[Any] = []

        async def consume() -> None:
            async for event in s.stream("A long question"):
                seen.append(event)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    turn = load(s.id, tmp_path).turns[0]
    assert turn.status == "interrupted" and turn.partial == "Let me think about "
    with StepLog.open(turn.run_id or "", tmp_path) as log:
        replies = list(log.records(kind=StepKind.REASON))
        assert log.meta()["status"] == "interrupted"
    assert replies[-1].text == "Let me think about " and replies[-1].data["interrupted"] is True


async def test_a_rejected_call_reaches_the_model_with_its_reason(tmp_path: Path) -> None:
    client = ScriptedClient([code("import os; print(os.listdir('/'))"), submit("no")])
    async with Session(client=client, runs_dir=tmp_path, approve="python=ask") as s:
        async for event in s.stream("List the root directory."):
            if isinstance(event, ApprovalEvent):
                assert event.request.tool == "python" and "os.listdir" in str(event.request.arguments)
                event.reject("do not look at my files")
    text = json.dumps(client.requests_seen[-1]["messages"])
    assert "do not look at my files" in text
    assert load(s.id, tmp_path).approve["rules"][0]["action"] == "ask"  # the policy is saved with the session


async def test_send_puts_approvals_on_a_queue(tmp_path: Path) -> None:
    client = ScriptedClient([code("print(1 + 1)"), submit("2")])
    async with Session(client=client, runs_dir=tmp_path, approve="python=ask") as s:
        async def answer() -> None:
            event = await s.approvals.get()
            event.approve()

        answering = asyncio.create_task(answer())
        turn = await s.send("1 + 1?")
        await answering
    assert turn.answer == "2" and tool_outputs(client)[-1].strip() == "2"


async def test_parallel_turn_adopts_the_voted_trajectory(tmp_path: Path) -> None:
    from tests.scripted import PerTrajectoryClient

    scripts = {0: [code("v = 1"), submit("1")], 1: [code("v = 2"), submit("2")], 2: [code("v = 2"), submit("2")]}
    client = PerTrajectoryClient(scripts)
    async with Session(client=client, runs_dir=tmp_path, strategy="majority", n=3) as s:
        turn = await s.send("Pick v.")
        assert (turn.answer, turn.trajectory) == ("2", 1)
        client.scripts = {0: [code("print(v)"), submit("v")]}
        s.set_strategy("single")
        await s.send("What is v?")
    # the session's sandbox was rebuilt from the adopted trajectory's cells, not trajectory 0's
    assert tool_outputs(client)[-1].strip() == "2"


def test_bad_messages_are_one_clear_line() -> None:
    with pytest.raises(InputError, match="empty"):
        check_text("   ")
    with pytest.raises(InputError, match="200,000 characters"):
        check_text("x" * 200_000)
    with pytest.raises(InputError, match="binary"):
        check_text("abc\x00\x01\x02def")
    assert check_text("  What is 2+2?\n") == "What is 2+2?"


def test_missing_and_corrupt_sessions_say_so(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no session 'nope'"):
        load("nope", tmp_path)
    with pytest.raises(InputError, match="no session to resume"):
        load(None, tmp_path)
    folder = sessions_dir(tmp_path)
    folder.mkdir(parents=True)
    (folder / "broken.json").write_text('{"id": "broken", "turns": [', encoding="utf-8")
    with pytest.raises(InputError, match="corrupt"):
        load("broken", tmp_path)
    listed = list_sessions(tmp_path)
    assert isinstance(listed[0], tuple) and "corrupt" in listed[0][1]


def test_history_folds_old_outputs_then_drops_old_turns() -> None:
    big = "```output\n" + "1234567890" * 300 + "\n```"
    turns = [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "code"},
              {"role": "user", "content": big}] for i in range(4)]
    flat, note = fit(turns, budget=10_000)
    assert note is None and len(flat) == 12
    flat, note = fit(turns, budget=1_500)
    assert note is not None and "folded" in note
    assert big in [m["content"] for m in flat]  # the newest turn keeps its output
    assert any("left out to fit" in str(m["content"]) for m in flat)
    flat, note = fit(turns, budget=100)
    assert note is not None and "dropped" in note
    assert "earlier turn" in str(flat[0]["content"])


def test_sync_session_works_inside_a_running_event_loop(tmp_path: Path) -> None:
    async def inside_a_loop() -> str | None:  # as in a notebook cell
        client = ScriptedClient(["The answer is 4.", submit("4")])
        with SyncSession(client=client, runs_dir=tmp_path, python=False) as s:
            return s.send("2 + 2?").answer

    assert asyncio.run(inside_a_loop()) == "4"


def test_sync_session_refuses_a_policy_that_asks_without_an_approver(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="approver="):
        SyncSession(client=ScriptedClient([]), runs_dir=tmp_path, approve="python=ask")


async def test_stream_reports_tool_steps(tmp_path: Path) -> None:
    client = ScriptedClient([code("print(3)"), submit("3")])
    async with Session(client=client, runs_dir=tmp_path) as s:
        kinds = [e.record.kind async for e in s.stream("3?") if isinstance(e, StepEvent)]
    assert StepKind.TOOL_CALL in kinds and StepKind.OBSERVATION in kinds and StepKind.FINAL in kinds


async def test_an_edited_cell_is_kept_as_it_ran(tmp_path: Path) -> None:
    from peerstep import ApprovalDecision

    def edit_to_two(request: Any) -> ApprovalDecision:
        return ApprovalDecision(action="edit", arguments={"code": "x = 2"})

    client = ScriptedClient([code("x = 1"), submit("1")])
    async with Session(client=client, runs_dir=tmp_path, approve="python=ask", approver=edit_to_two) as s:
        await s.send("Set x.")
    assert [c.code for c in load(s.id, tmp_path).turns[0].cells] == ["x = 2"]
    again = ScriptedClient([code("print(x)"), submit("2")])
    async with Session(client=again, runs_dir=tmp_path, resume=True, approve="python=auto") as resumed:
        await resumed.send("What is x?")  # the sandbox was rebuilt from the cell as it ran, not as it was asked
    assert tool_outputs(again)[-1].strip() == "2"


async def test_sessions_and_show_on_the_command_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from peerstep.cli import app

    async with Session(client=ScriptedClient([code("print(6 * 7)"), submit("42")]), runs_dir=tmp_path) as s:
        await s.send("What is six times seven?")
    runner = CliRunner()
    listed = runner.invoke(app, ["sessions", "--dir", str(tmp_path)], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and s.id in listed.output and "What is six times seven?" in listed.output
    shown = runner.invoke(app, ["show", s.id, "--dir", str(tmp_path)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "turn 1" in shown.output and "print(6 * 7)" in shown.output and "Final answer: 42" in shown.output
    as_json = runner.invoke(app, ["show", s.id, "--dir", str(tmp_path), "--json"])
    assert json.loads(as_json.output)["turns"][0]["answer"] == "42"
    missing = runner.invoke(app, ["chat", "--resume", "nope", "--dir", str(tmp_path)])
    assert missing.exit_code == 2 and "no session 'nope'" in missing.output
    stray = runner.invoke(app, ["chat", "some-id", "--dir", str(tmp_path)])
    assert stray.exit_code == 2 and "--resume" in stray.output


async def test_chat_commands(tmp_path: Path) -> None:
    from rich.console import Console

    from peerstep.cli._chat import ChatUI

    client = ScriptedClient([code("y = 5"), submit("5"), code("y = 6"), submit("6")])
    lines = ["/tools", "/strategy bogus", "/strategy majority 2", "/strategy single", "/undo", "/approve",
             "/model other-model", "Set y.", "/retry", f"/save {tmp_path / 'talk.md'}", "/sessions", "/undo",
             "/frob", "", "/exit"]
    console = Console(record=True, width=200)
    async with Session(client=client, runs_dir=tmp_path) as s:
        ui = ChatUI(s, console, interactive=False)

        async def read(message: str, default: str = "") -> str | None:
            return lines.pop(0) if lines else None

        ui.read = read  # type: ignore[method-assign]
        assert await ui.run() == 0
    out = console.export_text()
    for expected in ("python", "submit_answer", "unknown strategy 'bogus'", "strategy: majority@2",
                     "there is no turn to undo", "approval:", "not 'other-model'", "answer (turn 1)",
                     "answer (turn 2)", "conversation written to", "unknown command /frob", "empty line"):
        assert expected in out, expected
    assert client.requests_seen[2]["sampling"].temperature >= 0.7  # /retry re-samples
    assert "y = 6" in (tmp_path / "talk.md").read_text()
    statuses = [t.status for t in load(s.id, tmp_path).turns]
    assert statuses == ["undone", "undone"]  # /retry undid turn 1, /undo the retried turn


async def test_a_turn_that_outgrows_the_window_folds_old_outputs(tmp_path: Path) -> None:
    from peerstep import AgentConfig, arun
    from peerstep.agent._context import estimate

    client = ScriptedClient([code("print('a' * 5000)"), code("print('b' * 5000)"), code("print('c' * 5000)"),
                             submit("done")])
    agent = AgentConfig(context_tokens=4000)
    agent.sampling.max_tokens = 300
    result = await arun("Print a lot.", client, agent=agent, runs_dir=tmp_path)
    assert result.answer == "done"
    for request in client.requests_seen:  # every request fitted the window, with room for the reply
        assert estimate(request["messages"]) <= 4000 - 300
    last = json.dumps(client.requests_seen[-1]["messages"])
    assert "c" * 5000 in last and "a" * 5000 not in last  # the newest output kept, the oldest folded
    with StepLog.open(result.run_id, tmp_path) as log:
        folds = [r for r in log.records(kind=StepKind.BUDGET) if r.data.get("context_folded")]
    assert folds and "folded to fit" in (folds[0].text or "")
