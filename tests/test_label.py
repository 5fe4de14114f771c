"""``peerstep label``: Monte-Carlo step labels on afork, with values known exactly from scripted continuations."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from peerstep import AgentConfig, StepKind, StepLog, arun
from peerstep._label import alabel, eval_targets
from peerstep.steplog._steps import trajectory_steps
from tests.checkpoint_child import CONFIG, ConversationClient
from tests.label_script import (
    EXPECTED_FIRST_ERROR,
    EXPECTED_K,
    GOLD,
    QUESTION,
    ContinuationClient,
    ContinuationServer,
    ParentClient,
    calc,
    long_parent,
    recovers_until,
    submit,
)

ROOT = Path(__file__).resolve().parents[1]


async def parent_run(runs_dir: Path, script: list[str] | None = None, gold: str | None = GOLD) -> str:
    result = await arun(QUESTION, ParentClient(script), gold=gold, python=False, runs_dir=runs_dir)
    assert result.status == "done"
    return result.run_id


def labels(run_id: str, runs_dir: Path) -> list:
    with StepLog.open(run_id, runs_dir) as log:
        return list(log.records(kind=StepKind.LABEL))


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "peerstep", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "400", "PYTHONPATH": str(ROOT)})


async def test_full_labels_every_step_with_the_known_values_and_one_first_error(tmp_path: Path) -> None:
    run_id = await parent_run(tmp_path)
    summary = await alabel([run_id], ContinuationClient(), k=4, runs_dir=tmp_path)

    with StepLog.open(run_id, tmp_path) as log:
        records = list(log.records(trajectory_id=0))
    steps = trajectory_steps(records)
    got = labels(run_id, tmp_path)
    assert [r.parent_id for r in got] == [s.reason.step_id for s in steps]  # one label per step, in order
    assert [r.data["mc_k"] for r in got] == [*EXPECTED_K, 0]
    assert [r.data["mc_n"] for r in got] == [4, 4, 4, 1]  # the answer step: the graded answer itself
    assert [r.data["value"] for r in got] == [0.75, 0.25, 0.0, 0.0]
    assert [r.data["hard"] for r in got] == [True, True, False, False]
    assert [r.data["first_error"] for r in got] == [i == EXPECTED_FIRST_ERROR for i in range(4)]
    assert got[-1].data["source"] == "outcome" and got[-1].data["fork_run"] is None
    assert summary.labelled == 4 and summary.rollouts == 12 and summary.skipped == {}
    # each label's evidence is a fork of this run from just after the step's tool result
    for rec, step in zip(got[:3], steps[:3], strict=True):
        with StepLog.open(rec.data["fork_run"], tmp_path) as fork:
            meta = fork.meta()
        assert meta["fork"] == {"run": run_id, "step": step.fork_from, "trajectory": 0}
        assert step.fork_from == [r for r in step.records if r.kind == StepKind.OBSERVATION][-1].step_id
        assert meta["n"] == 4


async def test_first_step_at_zero_is_no_first_error_and_a_right_trajectory_has_none(tmp_path: Path) -> None:
    wrong = await parent_run(tmp_path)
    right = await parent_run(tmp_path, [calc("6*7"), submit("42")])
    await alabel([wrong, right], ContinuationClient(lambda p, s: submit("41")), k=2, runs_dir=tmp_path)
    # every continuation fails: no positive value before the zeros, so no step is called the first error
    assert [r.data["value"] for r in labels(wrong, tmp_path)] == [0.0, 0.0, 0.0, 0.0]
    assert not any(r.data["first_error"] for r in labels(wrong, tmp_path))
    assert [(r.data["value"], r.data["first_error"]) for r in labels(right, tmp_path)] == [(0.0, False), (1.0, False)]


async def test_binary_search_finds_the_first_error_of_full_with_fewer_rollouts(tmp_path: Path) -> None:
    full_run = await parent_run(tmp_path, long_parent(8))
    binary_run = await parent_run(tmp_path, long_parent(8))
    full = await alabel([full_run], ContinuationClient(recovers_until(5)), k=4, runs_dir=tmp_path)
    binary = await alabel([binary_run], ContinuationClient(recovers_until(5)), k=4, runs_dir=tmp_path,
                          search="binary")

    def first_error(run_id: str) -> int:
        return next(r.data["index"] for r in labels(run_id, tmp_path) if r.data["first_error"])

    assert first_error(full_run) == first_error(binary_run) == 5
    assert full.rollouts == 8 * 4 and binary.rollouts == 3 * 4 and binary.full_rollouts == 8 * 4
    probed = [r.data["index"] for r in labels(binary_run, tmp_path)]
    assert probed == [4, 5, 6, 8]  # the probes in step order, then the answer step
    full_values = {r.data["index"]: r.data["value"] for r in labels(full_run, tmp_path)}
    assert all(full_values[r.data["index"]] == r.data["value"] for r in labels(binary_run, tmp_path))


async def test_a_right_trajectory_under_binary_search_gets_its_outcome_label_only(tmp_path: Path) -> None:
    run_id = await parent_run(tmp_path, [calc("6*7"), calc("42*1"), submit("42")])
    summary = await alabel([run_id], ContinuationClient(), k=4, runs_dir=tmp_path, search="binary")
    assert summary.rollouts == 0
    assert [(r.data["index"], r.data["value"]) for r in labels(run_id, tmp_path)] == [(2, 1.0)]


async def test_a_second_pass_labels_nothing_twice(tmp_path: Path) -> None:
    run_id = await parent_run(tmp_path)
    await alabel([run_id], ContinuationClient(), k=4, runs_dir=tmp_path)
    again = await alabel([run_id], ContinuationClient(), k=4, runs_dir=tmp_path)
    assert again.labelled == 0 and again.rollouts == 0 and again.already == 4
    assert len(labels(run_id, tmp_path)) == 4


async def test_every_trajectory_of_a_leap_run_is_labelled_from_its_own_state(tmp_path: Path) -> None:
    parent = await arun("What is 6*7?", ConversationClient(), strategy="leap", parallel=CONFIG, agent=AgentConfig(),
                        gold="42", python=False, runs_dir=tmp_path)
    client = ContinuationClient(lambda p, s: submit("42") if s % 2 == 0 else submit("41"))
    summary = await alabel([parent.run_id], client, k=2, runs_dir=tmp_path)
    with StepLog.open(parent.run_id, tmp_path) as log:
        reasons = {r.step_id: r.trajectory_id for r in log.records(kind=StepKind.REASON)}
    got = labels(parent.run_id, tmp_path)
    assert sorted(r.parent_id for r in got) == sorted(reasons)  # every step of the three trajectories
    assert all(reasons[r.parent_id] == r.trajectory_id for r in got)
    assert summary.trajectories == 3
    assert all(r.data["value"] == 0.5 for r in got if r.data["source"] == "rollouts")


async def test_runs_without_gold_or_checkpoint_and_forks_are_skipped_and_counted(tmp_path: Path) -> None:
    no_gold = await parent_run(tmp_path, gold=None)
    labelled = await parent_run(tmp_path)
    first = await alabel([labelled], ContinuationClient(), k=2, runs_dir=tmp_path)
    fork = labels(labelled, tmp_path)[0].data["fork_run"]
    unforkable = (await arun(QUESTION, ParentClient(), gold=GOLD, python=False, runs_dir=tmp_path,
                             checkpoint=False)).run_id
    summary = await alabel([no_gold, fork, unforkable, labelled], ContinuationClient(), k=2, runs_dir=tmp_path)
    assert "no gold answer" in summary.skipped[no_gold] and "a fork" in summary.skipped[fork]
    assert "no checkpoint" in summary.skipped[unforkable]
    assert summary.runs == 1 and first.labelled == 4 and summary.labelled == 0
    writing = await parent_run(tmp_path)
    with StepLog.open(writing, tmp_path) as log:  # as a run whose writer (this process) is still at it
        log.set_meta({"status": "running", "pid": os.getpid(), "pid_started": None})
    later = await alabel([writing], ContinuationClient(), k=2, runs_dir=tmp_path)
    assert "still being written" in later.skipped[writing] and labels(writing, tmp_path) == []


async def test_trajectories_labelled_concurrently_get_the_same_labels(tmp_path: Path) -> None:
    runs = [await parent_run(tmp_path) for _ in range(3)]
    summary = await alabel(runs, ContinuationClient(), k=4, runs_dir=tmp_path, concurrency=3)
    assert summary.labelled == 12
    for run_id in runs:
        assert [r.data["mc_k"] for r in labels(run_id, tmp_path)] == [*EXPECTED_K, 0]


async def test_an_eval_episode_is_labelled_through_its_report(tmp_path: Path) -> None:
    from peerstep.environments import load_dataset
    from peerstep.evals import EvalReport
    from peerstep.evals._runner import run_episode_outcome

    ds = load_dataset("math", seed=0, limit=1, python=False)
    gold = ds.info(0).gold
    outcome = await run_episode_outcome(ds, 0, "single", ParentClient([calc("2+2"), submit("4")]), n=1,
                                        runs_dir=tmp_path)
    assert outcome.run_id and outcome.correct is False
    report = tmp_path / "out.json"
    report.write_text(EvalReport(dataset="math", model="scripted", seed=0, limit=1, summaries=[],
                                 outcomes=[outcome]).model_dump_json())
    skipped = await alabel([outcome.run_id], ContinuationClient(), k=2, runs_dir=tmp_path)
    assert "--eval OUT.json" in skipped.skipped[outcome.run_id]  # a bare id does not say which seed made it

    client = ContinuationClient(lambda p, s: submit(str(gold)) if s == 0 else submit("1"))
    summary = await alabel(list(eval_targets(report)), client, k=2, runs_dir=tmp_path)
    assert summary.skipped == {} and [r.data["mc_k"] for r in labels(outcome.run_id, tmp_path)] == [1, 0]
    # the continuations ran the dataset's task (its question, its tools), not a plain question
    assert ds.info(0).question in json.dumps(client.requests_seen[0]["messages"])


def test_cli_bad_input_is_one_line_before_any_engine_starts(tmp_path: Path) -> None:
    unknown = cli("label", "nope", "--dir", str(tmp_path), "--base-url", "http://127.0.0.1:9/v1")
    assert unknown.returncode == 2 and "no run 'nope'" in unknown.stderr and "Traceback" not in unknown.stderr
    (tmp_path / "20260101-000000-broken.sqlite").write_bytes(b"this is not a database" * 100)
    corrupt = cli("label", "20260101-000000-broken", "--dir", str(tmp_path), "--base-url", "http://127.0.0.1:9/v1")
    assert corrupt.returncode == 2 and "cannot read its log" in corrupt.stderr
    assert len(corrupt.stderr.strip().splitlines()) == 1
    import asyncio

    good = asyncio.run(parent_run(tmp_path))
    with sqlite3.connect(tmp_path / f"{good}.sqlite") as conn:  # one row that is not a step record
        conn.execute("INSERT INTO steps (step_id, episode_id, trajectory_id, kind, created_at, record) "
                     "VALUES ('bad', '0', 0, 'reason', 0, '{not json')")
    row = cli("label", good, "--dir", str(tmp_path), "--base-url", "http://127.0.0.1:9/v1")
    assert row.returncode == 2 and f"run {good}: cannot read its log" in row.stderr
    assert len(row.stderr.strip().splitlines()) == 1
    search = cli("label", "x", "--search", "ternary", "--dir", str(tmp_path))
    assert search.returncode == 2 and "unknown --search 'ternary'" in search.stderr
    report = cli("label", "--eval", str(tmp_path / "missing.json"), "--dir", str(tmp_path))
    assert report.returncode == 2 and "cannot read eval report" in report.stderr


async def test_a_label_process_killed_half_way_resumes_without_labelling_a_step_twice(tmp_path: Path) -> None:
    run_id = await parent_run(tmp_path, long_parent(8))
    steps = 9
    with ContinuationServer(recovers_until(5), delay=0.05) as server:
        args = ["-m", "peerstep", "label", run_id, "--rollouts", "4", "--dir", str(tmp_path), "--base-url",
                server.base_url, "--model", "scripted"]
        env = {**os.environ, "COLUMNS": "400", "PYTHONPATH": str(ROOT)}
        child = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        db = tmp_path / f"{run_id}.sqlite"
        deadline = time.time() + 90
        done = 0
        while time.time() < deadline and done < 3 and child.poll() is None:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                done = conn.execute("SELECT count(*) FROM steps WHERE kind = 'label'").fetchone()[0]
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
        assert child.returncode == -9, "the label process finished before it could be killed half-way"
        before = len(labels(run_id, tmp_path))
        assert 3 <= before < steps
        again = cli("label", run_id, "--rollouts", "4", "--dir", str(tmp_path), "--base-url", server.base_url,
                    "--model", "scripted", "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["already"] == before and summary["labelled"] == steps - before
    got = labels(run_id, tmp_path)
    assert len(got) == steps and len({r.parent_id for r in got}) == steps  # none twice, none missed
    assert [r.data["first_error"] for r in sorted(got, key=lambda r: r.data["index"])] == [
        i == 5 for i in range(steps)]
    assert "labelling" in again.stderr  # the progress display ran


def test_cli_label_prints_a_summary_with_skipped_runs(tmp_path: Path) -> None:
    import asyncio

    run_id = asyncio.run(parent_run(tmp_path))
    no_gold = asyncio.run(parent_run(tmp_path, gold=None))
    with ContinuationServer() as server:
        proc = cli("label", run_id, no_gold, "-k", "2", "--search", "binary", "--dir", str(tmp_path),
                   "--base-url", server.base_url, "--model", "scripted")
    assert proc.returncode == 0, proc.stderr
    assert f"skipped run {no_gold}: no gold answer" in proc.stderr
    assert "labelled 3 steps of 1 trajectories in 1 runs" in proc.stdout
    assert "4 rollouts (rolling out from every step: 6)" in proc.stdout


@pytest.mark.parametrize("k", [0, -1])
async def test_rollouts_must_be_positive(tmp_path: Path, k: int) -> None:
    from peerstep import InputError

    with pytest.raises(InputError, match="at least 1"):
        await alabel(["x"], ContinuationClient(), k=k, runs_dir=tmp_path)
