"""Checkpointed runs: resume after SIGKILL, pause for decisions in parallel, and refusals that touch nothing."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from peerstep import AgentConfig, InputError, StepKind, StepLog, afork, aresume, arun
from peerstep.environments import QuestionEnvironment
from peerstep.graphs.parallel import ParallelConfig
from tests.checkpoint_child import SCRIPTS, ConversationClient, calc, submit
from tests.scripted import PerTrajectoryClient

ROOT = Path(__file__).resolve().parents[1]


def killed_run(runs_dir: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "tests.checkpoint_child", str(runs_dir)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr  # it died by SIGKILL, not by finishing or failing
    return proc.stdout.strip().splitlines()[-1]


def chain_ok(records: list) -> bool:
    ids = {r.step_id for r in records}
    return all(r.parent_id is None or r.parent_id in ids for r in records)


async def test_a_killed_leap_run_resumes_where_it_stopped(tmp_path: Path) -> None:
    run_id = killed_run(tmp_path)
    with StepLog.open(run_id, tmp_path) as log:
        assert log.meta()["status"] == "interrupted"  # its writer is gone: opening the log settles that
        before = list(log.records())
    assert any(r.kind == StepKind.BARRIER for r in before) and not any(r.kind == StepKind.RUN_END for r in before)
    # the step that was being written when the process died: trajectory 2's second reply
    killed_step = [r for r in before if r.trajectory_id == 2 and r.kind == StepKind.REASON][-1]

    result = await aresume(run_id, ConversationClient(), runs_dir=tmp_path)

    assert result.run_id == run_id and result.answer == "42" and result.status == "done"
    with StepLog.open(run_id, tmp_path) as log:
        after = list(log.records())
        superseded = [r for r, _ in log.superseded()]
        meta = log.meta()
    assert meta["status"] == "done" and meta["resumes"] == 1
    # The killed reply was written after the last checkpoint: it left the log (kept on disk) and its node ran
    # again. So did any sibling step of the same round whose node's writes had not reached the checkpoint file
    # (how many depends on when the kill landed); never a step from before the round's start.
    barrier = max(r.created_at for r in before if r.kind == StepKind.BARRIER)
    assert killed_step.step_id in {r.step_id for r in superseded}
    assert all(r.created_at > barrier and r.kind in (StepKind.REASON, StepKind.TOOL_CALL, StepKind.OBSERVATION)
               for r in superseded)
    kept = {r.step_id for r in before} - {r.step_id for r in superseded}
    assert kept <= {r.step_id for r in after}  # every other step from before the kill is still there
    assert len({r.step_id for r in after}) == len(after) and chain_ok(after)
    # each trajectory's replies are its script, each exactly once and in order: nothing redone, nothing skipped
    for tid, script in SCRIPTS.items():
        replies = [r.text for r in after if r.trajectory_id == tid and r.kind == StepKind.REASON]
        assert replies == script[:len(replies)] and replies[-1] == script[-1]
    assert sum(r.kind == StepKind.RUN_START for r in after) == 3
    resumed = [r for r in after if r.kind == StepKind.RESUME]
    assert len(resumed) == 1 and resumed[0].data["superseded"] == len(superseded)
    assert sum(r.kind == StepKind.AGGREGATE for r in after) == 1 and after[-1].kind == StepKind.RUN_END


async def test_parallel_interrupts_each_reach_their_own_trajectory(tmp_path: Path) -> None:
    scripts = {t: [calc(f"{t}+1"), submit("x"), submit("x")] for t in range(3)}
    agent = AgentConfig(approve=["calc*"])
    config = ParallelConfig(n=3, max_rounds=1, round_steps=3)
    paused = await arun(lambda: QuestionEnvironment("q?"), PerTrajectoryClient(scripts), strategy="majority",
                        parallel=config, agent=agent, runs_dir=tmp_path)
    assert paused.status == "paused" and len(paused.pending) == 3
    asked = {p.value["trajectory_id"]: p for p in paused.pending}
    assert sorted(asked) == [0, 1, 2] and len({p.id for p in paused.pending}) == 3
    assert all(p.value["kind"] == "approve_tool_call" and p.value["tool"] == "calculate" for p in paused.pending)
    with StepLog.open(paused.run_id, tmp_path) as log:
        assert log.meta()["status"] == "paused"
        assert not any(r.kind == StepKind.OBSERVATION for r in log.records())  # nothing ran before a decision

    # three different answers: 0 approved, 1 and 2 rejected each with its own reason
    decisions = {asked[0].id: {"approve": True}, asked[1].id: {"approve": False, "reason": "not one"},
                 asked[2].id: {"approve": False, "reason": "not two"}}
    scripts = {t: s[1:] for t, s in scripts.items()}  # the first replies were made before the pause
    done = await aresume(paused.run_id, PerTrajectoryClient(scripts), runs_dir=tmp_path,
                         task=lambda: QuestionEnvironment("q?"), decisions=decisions)
    assert done.status == "done" and done.run_id == paused.run_id
    with StepLog.open(paused.run_id, tmp_path) as log:
        obs = [r for r in log.records(kind=StepKind.OBSERVATION) if r.data.get("approval")]
    by_tid = {r.trajectory_id: r for r in obs}
    assert by_tid[0].data["approval"] == "approved"
    assert by_tid[1].data == {"approval": "rejected", "reason": "not one", "by": "person", "rule": "calc*=ask",
                              "call": {"id": asked[1].value["call_id"], "name": "calculate",
                                       "arguments": {"expression": "1+1"}}, "edited": None}
    assert by_tid[2].data["reason"] == "not two" and "not two" in (by_tid[2].text or "")
    with StepLog.open(paused.run_id, tmp_path) as log:
        tool_outputs = [r for r in log.records(kind=StepKind.OBSERVATION) if r.tool and r.tool.name == "calculate"]
    assert [(r.trajectory_id, r.text) for r in tool_outputs] == [(0, "1")]  # only the approved call ran


def fingerprint(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


async def finished_run(tmp_path: Path) -> str:
    result = await arun("2+2?", PerTrajectoryClient({0: [submit("4")]}), python=False, runs_dir=tmp_path)
    assert result.status == "done"
    return result.run_id


def cli_resume(run: str, runs_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "peerstep", "resume", run, "--dir", str(runs_dir),
                           "--base-url", "http://127.0.0.1:9/v1"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "COLUMNS": "500"})  # one message, one line


@pytest.mark.parametrize("damage", ["finished", "missing", "corrupt", "older", "no-checkpoint"])
async def test_a_run_that_cannot_be_resumed_says_why_and_is_left_untouched(tmp_path: Path, damage: str) -> None:
    run_id = await finished_run(tmp_path)
    ckpt = tmp_path / f"{run_id}.ckpt.db"
    assert ckpt.is_file()
    if damage != "finished":  # the others: a run killed mid-way, then something is wrong with it
        with StepLog.open(run_id, tmp_path) as log:
            log.set_meta({"status": "interrupted"})
    expected = {"finished": "already finished", "missing": "no run 'nope'", "corrupt": "corrupt",
                "older": "format 0", "no-checkpoint": "has no checkpoint"}[damage]
    if damage == "corrupt":
        ckpt.write_bytes(b"this is not a database" * 100)
    elif damage in ("older", "no-checkpoint"):
        with StepLog.open(run_id, tmp_path) as log:
            meta = log.meta()["checkpoint"]
            log.set_meta({"checkpoint": {**meta, "format": 0}} if damage == "older" else {"checkpoint": None})
    before = fingerprint(tmp_path)
    target = "nope" if damage == "missing" else run_id
    proc = cli_resume(target, tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], proc.stderr
    with pytest.raises(InputError, match=expected.split("'")[0]):
        await aresume(target, ConversationClient(), runs_dir=tmp_path)
    assert fingerprint(tmp_path) == before


def test_checkpoint_file_is_not_listed_as_a_run(tmp_path: Path) -> None:
    import asyncio

    from peerstep.steplog import list_runs

    run_id = asyncio.run(finished_run(tmp_path))
    assert [r.run_id for r in list_runs(tmp_path)] == [run_id]
    with sqlite3.connect(tmp_path / f"{run_id}.ckpt.db") as db:
        assert db.execute("SELECT count(*) FROM checkpoints WHERE thread_id = ?", (run_id,)).fetchone()[0] > 0
    with StepLog.open(run_id, tmp_path) as log:
        assert json.loads(json.dumps(log.meta()["checkpoint"]))["file"] == f"{run_id}.ckpt.db"


FORK_SCRIPT = ["```python\nx = 41\nprint('x is set')\n```", calc("1+1"), submit("2")]
CONTINUATION = {2: "```python\nprint(x + 1)\n```", 3: submit("42")}


class ForkClient(ConversationClient):
    """The logged trajectory's replies, then (for the continuations) a cell that reads ``x``, then an answer."""

    def __init__(self, replies: dict[int, str]) -> None:
        super().__init__()
        self.by_position = replies

    async def chat(self, messages, *, sampling=None, **kwargs):  # type: ignore[no-untyped-def]
        k = sum(1 for m in messages if m["role"] == "assistant")
        self.replies = [self.by_position[k]]
        return await super(ConversationClient, self).chat(messages, sampling=sampling, **kwargs)


async def test_fork_four_continuations_from_step_two_with_the_sandbox_replayed(tmp_path: Path) -> None:
    parent = await arun("What is x + 1?", ForkClient(dict(enumerate(FORK_SCRIPT))), runs_dir=tmp_path)
    assert parent.status == "done"
    with StepLog.open(parent.run_id, tmp_path) as log:
        replies = [r for r in log.records(kind=StepKind.REASON)]
    step2 = replies[1].step_id  # the second model call: the calculate call, after the cell that set x

    client = ForkClient({**dict(enumerate(FORK_SCRIPT[:2])), **CONTINUATION})
    forked = await afork(parent.run_id, step2, client, k=4, runs_dir=tmp_path)

    assert forked.run_id != parent.run_id and forked.n == 4 and forked.answer == "42"
    with StepLog.open(forked.run_id, tmp_path) as log:
        meta = log.meta()
        records = list(log.records())
    assert meta["fork"] == {"run": parent.run_id, "step": step2, "trajectory": 0}
    starts = [r for r in records if r.kind == StepKind.RUN_START]
    assert sorted(r.trajectory_id for r in starts) == [0, 1, 2, 3]
    assert all(r.data["forked_from"] == meta["fork"] for r in starts)
    # each continuation ran the forked step's pending call, then sampled anew: only replies after step 2
    assert all(r.text in CONTINUATION.values() for r in records if r.kind == StepKind.REASON)
    assert sorted(r.trajectory_id for r in records if r.tool and r.tool.name == "calculate"
                  and r.kind == StepKind.OBSERVATION) == [0, 1, 2, 3]
    # the replayed sandbox holds the variable defined before step 2 in every continuation
    cells = [r for r in records if r.kind == StepKind.OBSERVATION and r.tool and r.tool.name == "python"]
    assert sorted(r.trajectory_id for r in cells) == [0, 1, 2, 3] and all(r.text.strip() == "42" for r in cells)
    # their first requests share the parent's conversation up to step 2
    first = {}
    for req in client.requests_seen:
        first.setdefault(req["sampling"].seed, req["messages"])
    prefixes = {json.dumps(m[:4]) for m in first.values()}
    assert len(prefixes) == 1


async def test_forking_from_a_missing_or_final_step_is_refused(tmp_path: Path) -> None:
    parent = await arun("What is x + 1?", ForkClient(dict(enumerate(FORK_SCRIPT))), runs_dir=tmp_path)
    with StepLog.open(parent.run_id, tmp_path) as log:
        final = next(iter(log.records(kind=StepKind.FINAL))).step_id
    with pytest.raises(InputError, match="no step"):
        await afork(parent.run_id, "nope", ForkClient({}), runs_dir=tmp_path)
    with pytest.raises(InputError, match="nothing to continue"):
        await afork(parent.run_id, final, ForkClient({}), runs_dir=tmp_path)


def test_cli_fork_refuses_an_unknown_step_before_any_engine_starts(tmp_path: Path) -> None:
    import asyncio

    run_id = asyncio.run(finished_run(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "peerstep", "fork", run_id, "nope", "--dir", str(tmp_path),
                           "--base-url", "http://127.0.0.1:9/v1"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "COLUMNS": "500"})
    assert proc.returncode == 2 and "has no step 'nope'" in proc.stderr


async def test_a_replayed_cell_whose_output_differs_is_logged_and_the_model_told(tmp_path: Path) -> None:
    script = ["```python\nimport random\nx = random.random()\nprint(x)\n```", calc("1+1"), submit("2")]
    # the first cell prints one number: a step here, not the answer (answer_from_output would submit it)
    parent = await arun("What is x?", ForkClient(dict(enumerate(script))), runs_dir=tmp_path,
                        agent=AgentConfig(answer_from_output=False))
    with StepLog.open(parent.run_id, tmp_path) as log:
        step2 = [r for r in log.records(kind=StepKind.REASON)][1].step_id
    client = ForkClient({**dict(enumerate(script[:2])), 2: submit("0.5")})
    forked = await afork(parent.run_id, step2, client, k=2, runs_dir=tmp_path)
    with StepLog.open(forked.run_id, tmp_path) as log:
        errors = [r for r in log.records(kind=StepKind.ERROR) if r.data.get("stage") == "replay"]
        notices = [r for r in log.records(kind=StepKind.OBSERVATION) if r.data.get("notice")]
    assert sorted(r.trajectory_id for r in errors) == [0, 1]
    assert sorted(r.trajectory_id for r in notices) == [0, 1] and "restarted" in (notices[0].text or "")
    told = [req for req in client.requests_seen if any("restarted" in (m.get("content") or "")
                                                       for m in req["messages"])]
    assert len(told) == 2  # each continuation's next request carried the note


async def test_a_saver_of_your_own_holds_the_checkpoints(tmp_path: Path) -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    saver = InMemorySaver()
    scripts = {0: [calc("1+1"), submit("2")]}
    paused = await arun(lambda: QuestionEnvironment("q?"), PerTrajectoryClient(scripts), agent=AgentConfig(
        approve=["calculate"]), runs_dir=tmp_path, checkpoint=saver)
    assert paused.status == "paused" and not (tmp_path / f"{paused.run_id}.ckpt.db").exists()
    with pytest.raises(InputError, match="saver of its own"):  # without it there is nothing to resume from
        await aresume(paused.run_id, PerTrajectoryClient({0: [submit("2")]}), runs_dir=tmp_path,
                      task=lambda: QuestionEnvironment("q?"))
    done = await aresume(paused.run_id, PerTrajectoryClient({0: [submit("2")]}), runs_dir=tmp_path,
                         task=lambda: QuestionEnvironment("q?"), checkpointer=saver,
                         decisions={paused.pending[0].id: True})
    assert done.status == "done" and done.answer == "2"
