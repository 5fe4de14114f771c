"""The eval runner with a scripted model: grading, accounting, summaries, interruption."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from peerstep._errors import InputError, ModelServerError
from peerstep.agent import Completion, SamplingParams
from peerstep.environments import Environment, EnvironmentDataset, QuestionEnvironment, TaskInfo
from peerstep.evals import EvalAborted, EvalReport, load_finished, run_eval, summarize, wilson_interval
from tests.scripted import ScriptedClient

TASKS = [("What is 2+3?", "5"), ("What is 10/4?", "2.5"), ("What is 7*6?", "42"), ("Spell 'cat' backwards.", "tac")]


class TinyDataset(EnvironmentDataset):
    name = "tiny"

    def __len__(self) -> int:
        return len(TASKS)

    def info(self, index: int) -> TaskInfo:
        q, gold = TASKS[index]
        return TaskInfo(task_id=f"tiny-{index}", question=q, gold=gold)

    def make(self, index: int) -> Environment:
        q, gold = TASKS[index]
        return QuestionEnvironment(q, gold=gold)


class Answerer(ScriptedClient):
    """Computes with the calculator once, then answers; wrong on purpose for 10/4, slow for the 'cat' task."""

    answers: ClassVar[dict[str, str]] = {"2+3": "5", "10/4": "2.4", "7*6": "42", "cat": "tac"}

    def __init__(self, slow: float = 0.0) -> None:
        super().__init__([])
        self.slow = slow

    async def chat(self, messages: Sequence[dict[str, Any]], *, sampling: SamplingParams | None = None,
                   **kwargs: Any) -> list[Completion]:
        question = messages[1]["content"]
        key = next(k for k in self.answers if k in question)
        if key == "cat" and self.slow:
            await asyncio.sleep(self.slow)
        if len(messages) == 2 and key != "cat":
            expr = re.search(r"[\d+*/]+", question)
            assert expr is not None
            self.replies = [json.dumps({"name": "calculate", "arguments": {"expression": expr.group()}})]
        else:
            self.replies = [json.dumps({"name": "submit_answer", "arguments": {"answer": self.answers[key]}})]
        return await super().chat(messages, sampling=sampling, **kwargs)


async def test_eval_grades_counts_and_summarizes(tmp_path: Path) -> None:
    jsonl = tmp_path / "out.jsonl"
    outcomes = await run_eval(TinyDataset(), Answerer, ["single", "majority"], n=3, concurrency=2,
                              runs_dir=tmp_path / "runs", jsonl=jsonl)
    assert len(outcomes) == 8
    single = sorted((o for o in outcomes if o.strategy == "single"), key=lambda o: o.index)
    assert [o.correct for o in single] == [True, False, True, True]
    assert [o.tool_calls for o in single] == [1, 1, 1, 0]
    assert all(o.tokens > 0 and o.error is None for o in outcomes)
    majority = [o for o in outcomes if o.strategy == "majority"]
    assert all(o.n == 3 for o in majority) and all(o.n == 1 for o in single)
    assert sum(o.correct for o in majority) == 3
    assert [o.tool_calls for o in sorted(majority, key=lambda o: o.index)] == [3, 3, 3, 0]  # 3 trajectories each
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(lines) == 8 and {line["run_id"] for line in lines} == {o.run_id for o in outcomes}
    s = summarize(outcomes, "single", wall_seconds=2.0, price_per_mtok=10.0)
    assert (s.correct, s.episodes, s.accuracy) == (3, 4, 0.75)
    total = sum(o.tokens for o in single)
    assert s.tokens_per_correct == pytest.approx(total / 3)
    assert s.dollars_per_correct == pytest.approx(total / 3 * 10.0 / 1e6)
    report = EvalReport(dataset="tiny", model="scripted", seed=0, limit=4, summaries=[s], outcomes=outcomes)
    assert "| single | 3/4 = 75% (" in report.markdown()


def test_wilson_interval() -> None:
    low, high = wilson_interval(5, 10)
    assert math.isclose(low, 0.2366, abs_tol=1e-3) and math.isclose(high, 0.7634, abs_tol=1e-3)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and math.isclose(high, 0.2775, abs_tol=1e-3)
    assert wilson_interval(0, 0) == (0.0, 0.0)


async def interrupted_after_three(tmp_path: Path, jsonl: Path) -> list[Any]:
    """An eval of the 4 tasks cancelled once 3 have finished (the 4th is slow); its outcomes."""
    outcomes: list[Any] = []
    task = asyncio.ensure_future(run_eval(TinyDataset(), lambda: Answerer(slow=30), ["single"], concurrency=4,
                                          runs_dir=tmp_path, outcomes=outcomes, jsonl=jsonl))
    for _ in range(200):
        await asyncio.sleep(0.05)
        if len(outcomes) == 3:
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return outcomes


async def test_interrupted_eval_keeps_finished_episodes(tmp_path: Path) -> None:
    jsonl = tmp_path / "out.jsonl"
    outcomes = await interrupted_after_three(tmp_path, jsonl)
    assert sorted(o.index for o in outcomes) == [0, 1, 2]
    assert len(jsonl.read_text().splitlines()) == 3


async def test_an_interrupted_eval_resumes_without_rerunning_finished_episodes(tmp_path: Path) -> None:
    jsonl = tmp_path / "out.jsonl"
    await interrupted_after_three(tmp_path, jsonl)
    with jsonl.open("a") as fh:
        fh.write('{"task_id": "tiny-3", "ind')  # the line being written when the process died
    finished = load_finished(jsonl, TinyDataset(), limit=4)
    assert sorted(o.index for o in finished) == [0, 1, 2]
    ran: list[str] = []

    class Counting(Answerer):
        async def chat(self, messages: Sequence[dict[str, Any]], **kwargs: Any) -> list[Completion]:
            ran.append(messages[1]["content"])
            return await super().chat(messages, **kwargs)

    resumed = await run_eval(TinyDataset(), Counting, ["single"], runs_dir=tmp_path, outcomes=list(finished),
                             skip={(o.strategy, o.index) for o in finished})
    assert sorted(o.index for o in resumed) == [0, 1, 2, 3]
    assert set(ran) == {TASKS[3][0]}  # only the unfinished task reached the model


def test_resuming_with_another_datasets_results_is_refused(tmp_path: Path) -> None:
    jsonl = tmp_path / "out.jsonl"
    jsonl.write_text(json.dumps({"task_id": "other-0", "index": 0, "strategy": "single", "n": 1, "answer": "5",
                                 "gold": "5", "correct": True, "tokens": 1, "tool_calls": 0, "seconds": 0.1,
                                 "run_id": "r", "error": None, "steps": 1}) + "\n")
    with pytest.raises(InputError, match="does not: resume with the options"):
        load_finished(jsonl, TinyDataset(), limit=4)
    with pytest.raises(InputError, match="nothing to resume"):
        load_finished(tmp_path / "missing.jsonl", TinyDataset(), limit=4)
    jsonl.write_text('{"task_id": "tiny-0", "ind\n' + jsonl.read_text())  # torn, but not the last line
    with pytest.raises(InputError, match="line 1: not an episode result"):
        load_finished(jsonl, TinyDataset(), limit=4)


class Server:
    """Whether the (pretend) model server is up; ``dies_after`` episodes' worth of first calls are served."""

    def __init__(self, dies_after: int | None) -> None:
        self.dies_after = dies_after
        self.first_calls = 0

    @property
    def up(self) -> bool:
        return self.dies_after is None or self.first_calls <= self.dies_after


class FlakyAnswerer(Answerer):
    """Answers like ``Answerer`` while the server is up; the 'cat' task always fails with a server error."""

    def __init__(self, server: Server) -> None:
        super().__init__()
        self.server = server

    async def chat(self, messages: Sequence[dict[str, Any]], **kwargs: Any) -> list[Completion]:
        if len(messages) == 2:
            self.server.first_calls += 1
        if not self.server.up or "cat" in messages[1]["content"]:
            raise ModelServerError("model server http://x/v1 answered HTTP 500: EngineCore encountered an issue")
        return await super().chat(messages, **kwargs)

    async def list_models(self) -> list[str]:
        if not self.server.up:
            raise ModelServerError("model server unreachable at http://x/v1 after 1 attempts")
        return [self.model]


async def test_an_episode_error_with_the_server_up_is_scored_and_the_eval_goes_on(tmp_path: Path) -> None:
    server = Server(dies_after=None)
    outcomes = await run_eval(TinyDataset(), lambda: FlakyAnswerer(server), ["single"], concurrency=1,
                              runs_dir=tmp_path)
    assert len(outcomes) == 4
    cat = next(o for o in outcomes if o.index == 3)
    assert not cat.correct and cat.error is not None and "HTTP 500" in cat.error


async def test_a_dead_server_aborts_the_eval_and_keeps_finished_episodes(tmp_path: Path) -> None:
    server = Server(dies_after=2)
    jsonl = tmp_path / "out.jsonl"
    outcomes: list[Any] = []
    with pytest.raises(EvalAborted, match=r"stopped answering.*2 finished episodes are kept"):
        await run_eval(TinyDataset(), lambda: FlakyAnswerer(server), ["single", "majority"], concurrency=1,
                       runs_dir=tmp_path, outcomes=outcomes, jsonl=jsonl)
    assert [o.index for o in outcomes] == [0, 1]  # the third episode met the dead server: not scored as wrong
    assert all(o.error is None for o in outcomes)
    assert len(jsonl.read_text().splitlines()) == 2


async def test_unknown_strategy() -> None:
    with pytest.raises(InputError, match="unknown strategy 'best'"):
        await run_eval(TinyDataset(), Answerer, ["best"])


def test_dataset_grade_uses_the_environment_checker() -> None:
    ds = TinyDataset()
    assert ds.grade(1, "5/2") and ds.grade(3, "TAC") and not ds.grade(3, "cat") and not ds.grade(0, None)


def test_resuming_with_other_strategies_keeps_the_first_runs_episodes(tmp_path: Path) -> None:
    """``eval --resume`` with another strategy than the first run (as bench/heldout.py does, one strategy at a time)
    once rewrote the per-episode file with only the strategies being run: the first run's episodes were gone."""
    from peerstep.cli.evals import run_and_report
    from tests.test_client import MODEL, FakeOpenAIServer

    out = tmp_path / "r.json"
    jsonl = out.with_suffix(".jsonl")
    first = [json.dumps({"task_id": f"tiny-{i}", "index": i, "strategy": "majority", "n": 4, "answer": gold,
                         "gold": gold, "correct": True, "tokens": 7, "tool_calls": 1, "seconds": 0.1, "run_id": f"r{i}",
                         "error": None, "steps": 3}) for i, (_, gold) in enumerate(TASKS)]
    jsonl.write_text("\n".join(first) + "\n")
    server = FakeOpenAIServer()
    server.start()
    try:
        run_and_report(TinyDataset(), ["single"], n=1, limit=None, concurrency=1, seed=0, engine="llamacpp",
                       model=MODEL, base_url=server.base_url, api_key=None, out=out, price_per_mtok=None,
                       max_steps=2, resume=True)
    finally:
        server.stop()
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r for r in rows if r["strategy"] == "majority"] == [json.loads(line) for line in first]
    assert sorted(r["index"] for r in rows if r["strategy"] == "single") == list(range(len(TASKS)))


def test_sticky_replicas_move_only_the_episodes_of_a_new_replica() -> None:
    """Rendezvous hashing: each episode keeps its replica when one is added, unless it now goes to the new one."""
    from peerstep.evals import ClientSpec

    episodes = [f"math/leap/{i}" for i in range(300)]
    three = ClientSpec(("http://a/v1", "http://b/v1", "http://c/v1"), "m")
    four = ClientSpec((*three.base_urls, "http://d/v1"), "m")
    before = {e: three.replica(e) for e in episodes}
    after = {e: four.replica(e) for e in episodes}
    moved = [e for e in episodes if before[e] != after[e]]
    assert all(after[e] == "http://d/v1" for e in moved) and 40 < len(moved) < 110  # about a quarter
    assert all(sum(v == url for v in before.values()) > 70 for url in three.base_urls)  # balanced
    client = three.client("math/leap/7")
    assert client.base_url == before["math/leap/7"] and client.headers["X-Session-Id"] == "math/leap/7"
    asyncio.run(client.close())


def test_executor_bad_input_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from typer.testing import CliRunner

    from peerstep.cli import app

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, ["eval", "math", *args])
        return result.exit_code, " ".join(result.output.split())

    assert run("--executor", "ray") == (2, "error: --executor ray needs --base-url: a model server every node of "
                                           "the cluster can reach (a vLLM fleet, Ray Serve LLM, or a router in "
                                           "front of them), or --per-node: an engine on every node")
    code, out = run("--executor", "spark")
    assert code == 2 and "unknown --executor 'spark'" in out
    code, out = run("--per-node", "--executor", "ray", "--base-url", "http://127.0.0.1:9/v1")
    assert code == 2 and "--base-url names a server instead: give one or the other" in out
    code, out = run("--per-node")
    assert (code, out) == (2, "error: --per-node starts an engine on every Ray node: it needs --executor ray")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    code, out = run("--executor", "ray", "--base-url", "http://127.0.0.1:9/v1")
    assert (code, out) == (2, "error: the ray executor needs Ray: pip install 'peerstep[ray]'")


@pytest.mark.parametrize("round_steps, shared", [(None, False), (1, True)])
def test_round_steps_reach_every_episode_of_an_eval(tmp_path: Path, round_steps: int | None, shared: bool) -> None:
    """`run --round-steps 1`: each of the scripted server's two-call trajectories meets a barrier after its first
    call and hears its peer; with leap's default (three calls a round) both finish before any barrier, nothing is
    shared. The number reaches the runs through the one eval runner, as `solve --round-steps` does; `single` in the
    same eval keeps its one round (a round of one call would force its answer after the calculator)."""
    from typer.testing import CliRunner

    from peerstep.cli import app
    from peerstep.steplog import StepKind, StepLog
    from peerstep.testing.server import ScriptedServer

    tasks, runs, out = tmp_path / "tasks.yaml", tmp_path / "runs", tmp_path / "out.json"
    tasks.write_text("tasks:\n" + "".join(f'  - {{id: q{i}, question: "What is {a}*{b}?", tools: [calculator], '
                                          f'checker: exact, gold: "{a * b}"}}\n'
                                          for i, (a, b) in enumerate([(12, 7), (9, 9)])))
    more = ["--round-steps", str(round_steps)] if round_steps else []
    with ScriptedServer() as server:
        result = CliRunner(env={"PEERSTEP_RUNS": str(runs)}).invoke(app, [
            "run", str(tasks), "--base-url", server.base_url, "--model", "scripted", "--strategy", "single,leap",
            "-n", "2", "--out", str(out), *more])
    assert result.exit_code == 0, result.output
    outcomes = json.loads(out.read_text())["outcomes"]
    assert len(outcomes) == 4 and all(o["error"] is None and o["correct"] for o in outcomes)
    for o in (o for o in outcomes if o["strategy"] == "single"):
        with StepLog.open(o["run_id"], runs) as log:
            assert not [r for r in log.records() if r.kind == StepKind.BUDGET]  # never forced to answer
    for o in (o for o in outcomes if o["strategy"] == "leap"):
        with StepLog.open(o["run_id"], runs) as log:
            injections = [r for r in log.records() if r.kind == StepKind.PEER_INJECT and r.data.get("sources")]
            barriers = [r for r in log.records() if r.kind == StepKind.BARRIER]
        # the first barrier comes after one call each (both still active) or after both finished
        assert bool(injections) == shared and bool(barriers[0].data["active"]) == shared, (round_steps, barriers)


async def test_the_bare_program_baseline_answers_with_the_programs_last_printed_line(tmp_path: Path) -> None:
    from peerstep.evals._baselines import run_baseline

    client = ScriptedClient(["```python\nprint('working')\nprint(7 * 6)\n```"])
    outcome = await run_baseline(TinyDataset(), 2, "bare-program", client, runs_dir=tmp_path)
    assert (outcome.answer, outcome.correct, outcome.tool_calls, outcome.error) == ("42", True, 1, None)
    wordy = await run_baseline(TinyDataset(), 2, "bare-program", ScriptedClient(["It is 42."]), runs_dir=tmp_path)
    assert (wordy.answer, wordy.correct, wordy.tool_calls) == (None, False, 0)  # no program, no answer
