"""``peerstep export --format inspect``: runs of the scripted model, exported and read back by Inspect AI itself
(``read_eval_log``), then bundled with ``inspect view bundle`` and rendered in headless Chromium."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from inspect_ai.event import InfoEvent, ModelEvent, ScoreEvent, SpanBeginEvent, ToolEvent
from inspect_ai.log import EvalLog, EvalSample, read_eval_log
from inspect_ai.model import ChatMessageAssistant, ChatMessageTool
from typer.testing import CliRunner

from peerstep import arun
from peerstep.cli import app
from peerstep.environments import QuestionEnvironment
from peerstep.evals import EvalReport, run_eval, summarize
from peerstep.export import export_inspect
from peerstep.graphs.parallel import ParallelConfig
from peerstep.peers import SharingConfig
from peerstep.steplog import StepKind, StepLog
from tests._browser import chromium
from tests.scripted import FixedScores, PerTrajectoryClient, ScriptedClient
from tests.test_evals import Answerer, TinyDataset

runner = CliRunner()


def call(name: str, **arguments: str) -> str:
    return json.dumps({"name": name, "arguments": arguments})




async def single_run(runs: Path) -> str:
    """One trajectory: a calculator call, then the right answer."""
    log = StepLog.create(directory=runs, meta={"model": "scripted", "strategy": "single", "n": 1})
    client = ScriptedClient([call("calculate", expression="6*7"), call("submit_answer", answer="42")])
    await arun(QuestionEnvironment("What is 6*7?", gold="42"), client, log=log)
    log.close()
    return log.run_id


async def leap_run(runs: Path) -> str:
    """Three trajectories with peer sharing and a verifier; two agree on the wrong answer 48 and win the vote."""
    client = PerTrajectoryClient(
        {0: [call("calculate", expression="6*7"), "still thinking", call("submit_answer", answer="42")],
         1: [call("calculate", expression="6*8"), "hmm", call("submit_answer", answer="48")],
         2: [call("calculate", expression="8*6"), "sure", call("submit_answer", answer="48")]},
        summaries={0: "the product is 42", 1: "the product is 48", 2: "it is 48"})
    log = StepLog.create(directory=runs, meta={"model": "scripted", "strategy": "leap+verify", "n": 3})
    config = ParallelConfig(n=3, max_rounds=4, round_steps=2, sharing=SharingConfig(), barrier_verify=True)
    result = await arun(lambda: QuestionEnvironment("What is 6*7?", gold="42"), client, strategy="leap+verify",
                        parallel=config, verifiers=[FixedScores({0: 0.9, 1: 0.4, 2: 0.3})], log=log)
    log.close()
    assert result.answer == "48" and result.correct is False
    return log.run_id


def interrupted_run(runs: Path) -> str:
    """A run killed after its first model call: no final answer, no vote, status ``interrupted``."""
    log = StepLog.create(directory=runs, meta={"model": "scripted", "strategy": "single", "n": 1, "gold": "7"})
    start = log.log(StepKind.RUN_START, text="What is 3+4?", data={"tools": ["calculate", "submit_answer"]})
    log.log(StepKind.REASON, parent_id=start.step_id, text="Let me think", model="scripted",
            usage={"prompt_tokens": 12, "completion_tokens": 3}, latency_s=0.5)
    log.set_meta({"status": "interrupted", "status_reason": "killed"})
    log.close()
    return log.run_id


@pytest.fixture()
async def runs(tmp_path: Path) -> dict[str, str]:
    runs_dir = tmp_path / "runs"
    return {"single": await single_run(runs_dir), "leap": await leap_run(runs_dir),
            "interrupted": interrupted_run(runs_dir)}


def export_one(ids: list[str], tmp_path: Path) -> EvalLog:
    paths = export_inspect(ids, tmp_path / "logs", tmp_path / "runs")
    assert len(paths) == 1 and paths[0].suffix == ".eval"
    return read_eval_log(str(paths[0]))


def sample_of(log: EvalLog, run_id: str) -> EvalSample:
    assert log.samples is not None
    return next(s for s in log.samples if s.id == run_id)


def test_runs_become_one_log_with_messages_tool_calls_usage_and_scores(runs: dict[str, str], tmp_path: Path) -> None:
    log = export_one([runs["single"], runs["leap"]], tmp_path)
    assert log.status == "success" and log.eval.model == "scripted"
    assert log.samples is not None and {s.id for s in log.samples} == {runs["single"], runs["leap"]}

    single = sample_of(log, runs["single"])
    assert single.input == "What is 6*7?" and single.target == "42"
    calls = [m for m in single.messages if isinstance(m, ChatMessageAssistant) and m.tool_calls]
    assert [c.tool_calls[0].function for c in calls if c.tool_calls] == ["calculate", "submit_answer"]
    assert calls[0].tool_calls is not None and calls[0].tool_calls[0].arguments == {"expression": "6*7"}
    results = [m for m in single.messages if isinstance(m, ChatMessageTool)]
    assert results[0].tool_call_id == calls[0].tool_calls[0].id and results[0].text.strip() == "42"
    assert single.scores is not None
    score = single.scores["peerstep"]
    assert (score.value, score.answer) == ("C", "42")

    with StepLog.open(runs["leap"], tmp_path / "runs") as reader:
        records = list(reader.records())
    leap = sample_of(log, runs["leap"])
    assert leap.scores is not None and leap.scores["peerstep"].value == "I"
    assert leap.scores["peerstep"].answer == "48" and leap.target == "42"
    assert leap.metadata["adopted_trajectory"] == 1  # the first member of the winning group (48: trajectories 1, 2)
    assert [t["answer"] for t in leap.metadata["trajectories"]] == ["42", "48", "48"]
    # usage: every model call of every trajectory, summaries included
    model_calls = [r for r in records if r.kind in (StepKind.REASON, StepKind.SUMMARY)]
    usage = leap.model_usage["scripted"]
    assert usage.output_tokens == sum(r.usage.completion_tokens for r in model_calls if r.usage)
    assert usage.input_tokens == sum(r.usage.prompt_tokens for r in model_calls if r.usage)
    assert log.stats.model_usage["scripted"].output_tokens == usage.output_tokens + \
        single.model_usage["scripted"].output_tokens

    events = leap.events
    spans = [e for e in events if isinstance(e, SpanBeginEvent)]
    assert [(s.name, s.type) for s in spans] == [(f"trajectory {t}", "agent") for t in range(3)]
    assert len([e for e in events if isinstance(e, ModelEvent)]) == len(model_calls)
    tools = [e for e in events if isinstance(e, ToolEvent)]
    assert {e.function for e in tools} == {"calculate", "submit_answer"}
    assert all(e.span_id and e.span_id.startswith("trajectory-") for e in tools)
    infos = [e for e in events if isinstance(e, InfoEvent)]
    exchanges = [e for e in infos if e.source == "peer exchange"]
    injected = [r for r in records if r.kind is StepKind.PEER_INJECT]
    assert len(exchanges) == len(injected) > 0
    assert [e.data["from_trajectories"] for e in exchanges] == [r.data["sources"] for r in injected]  # type: ignore
    assert any(e.source == "vote" and e.data["decision"]["answer"] == "48" for e in infos)  # type: ignore
    assert any(e.source == "barrier" for e in infos)
    verdicts = [e for e in events if isinstance(e, ScoreEvent)]
    assert verdicts and all(e.intermediate and e.scorer == "fixed" for e in verdicts)
    assert {e.score.value for e in verdicts} == {0.9, 0.4, 0.3}
    # the sampling settings of the calls: what every call shared is the log's generate config
    reason = next(r for r in records if r.kind is StepKind.REASON)
    assert reason.sampling is not None
    assert log.eval.model_generate_config.max_tokens == reason.sampling["max_tokens"]
    first_call = next(e for e in events if isinstance(e, ModelEvent))
    assert first_call.config.temperature == reason.sampling["temperature"]

    assert log.results is not None
    metrics = log.results.scores[0].metrics
    assert metrics["accuracy"].value == pytest.approx(0.5)


def test_an_interrupted_run_is_exported_unscored_with_its_reason(runs: dict[str, str], tmp_path: Path) -> None:
    log = export_one([runs["single"], runs["interrupted"]], tmp_path)
    cut = sample_of(log, runs["interrupted"])
    assert cut.scores is None and cut.error is not None and "interrupted" in cut.error.message
    assert [m.role for m in cut.messages] == ["user", "assistant"]
    assert log.results is not None
    graded = log.results.scores[0]
    assert (log.results.total_samples, log.results.completed_samples, graded.scored_samples) == (2, 1, 1)
    assert graded.metrics["accuracy"].value == 1.0  # the one graded run was right; the cut one is not counted


def test_cli_export_and_its_errors(runs: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "one.eval"
    ok = runner.invoke(app, ["export", runs["single"], "--format", "inspect", "--out", str(out),
                             "--dir", str(tmp_path / "runs")])
    assert ok.exit_code == 0, ok.output
    assert read_eval_log(str(out)).eval.task == "peerstep/single"

    unknown = runner.invoke(app, ["export", "no-such-run", "--format", "inspect", "--dir", str(tmp_path / "runs")],
                            env={"COLUMNS": "200"})
    assert unknown.exit_code == 1 and "no run 'no-such-run'" in unknown.output
    assert len(unknown.output.strip().splitlines()) == 1 and "Traceback" not in unknown.output

    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"dataset": "tiny", "outcomes": [{"run_id": ')
    bad = runner.invoke(app, ["export", "--eval", str(corrupt), "--format", "inspect"], env={"COLUMNS": "200"})
    assert bad.exit_code == 1 and "not an eval report" in bad.output and "Traceback" not in bad.output

    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "inspect_ai" else real(name))
    missing = runner.invoke(app, ["export", runs["single"], "--format", "inspect", "--dir", str(tmp_path / "runs")],
                            env={"COLUMNS": "200"})
    assert missing.exit_code == 1 and "pip install 'peerstep[inspect]'" in missing.output


async def test_an_eval_becomes_one_log_per_strategy_with_the_reports_accuracy(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    outcomes = await run_eval(TinyDataset(), Answerer, ["single", "majority"], n=3, runs_dir=runs_dir)
    summaries = [summarize(outcomes, s, wall_seconds=1.0, price_per_mtok=None) for s in ("single", "majority")]
    report = EvalReport(dataset="tiny", model="scripted", seed=7, limit=4, summaries=summaries, outcomes=outcomes)
    report_path = tmp_path / "out.json"
    report_path.write_text(report.model_dump_json())

    paths = export_inspect([], tmp_path / "logs", runs_dir, report_path)
    logs = {log.eval.task: log for log in (read_eval_log(str(p)) for p in paths)}
    assert set(logs) == {"tiny/single", "tiny/majority@3"}
    for summary in summaries:
        log = logs["tiny/single" if summary.strategy == "single" else "tiny/majority@3"]
        assert log.samples is not None and len(log.samples) == summary.episodes == 4
        assert log.results is not None
        assert log.results.scores[0].metrics["accuracy"].value == pytest.approx(summary.accuracy)
        assert log.eval.task_args["dataset_seed"] == 7 and log.eval.task_args["strategy"] == summary.strategy
        assert log.eval.dataset.name == "tiny" and log.eval.model == "scripted"
        assert sorted(s.id for s in log.samples) == [f"tiny-{i}" for i in range(4)]
    majority = logs["tiny/majority@3"]
    assert majority.samples is not None
    assert all(len([e for e in s.events if isinstance(e, SpanBeginEvent)]) == 3 for s in majority.samples)

    # the per-episode .jsonl of an eval, with an episode that failed before its run was recorded: it counts as
    # wrong in the eval's accuracy, so it does here, as a sample with its error and no transcript
    single = sorted((o for o in outcomes if o.strategy == "single"), key=lambda o: o.index)
    failed = single[0].model_copy(update={"index": 4, "task_id": "tiny-4", "run_id": "", "correct": False,
                                          "answer": None, "error": "ModelServerError: the server went away"})
    jsonl = tmp_path / "out.jsonl"
    jsonl.write_text("".join(o.model_dump_json() + "\n" for o in [*single, failed]))
    (path,) = export_inspect([], tmp_path / "logs-jsonl", runs_dir, jsonl)
    log = read_eval_log(str(path))
    assert log.eval.task == "tiny/single" and log.samples is not None and len(log.samples) == 5
    assert log.results is not None
    assert log.results.scores[0].metrics["accuracy"].value == pytest.approx(sum(o.correct for o in single) / 5)
    lost = next(s for s in log.samples if s.id == "tiny-4")
    assert lost.error is not None and "server went away" in lost.error.message and not lost.messages


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """A static server on 127.0.0.1 with HTTP range requests (Starlette's StaticFiles under uvicorn): the viewer
    reads ``.eval`` zips by ranges, which Python's http.server does not answer."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    app_ = Starlette(routes=[Mount("/", app=StaticFiles(directory=directory, html=True))])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app_, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def wait_for_text(driver: Any, text: str, seconds: float = 30.0) -> str:
    deadline = time.monotonic() + seconds
    body = ""
    while time.monotonic() < deadline:
        body = driver.find_element("tag name", "body").text
        if text in body:
            return str(body)
        time.sleep(0.25)
    raise AssertionError(f"{text!r} never appeared; the page shows: {body[:500]!r}")


def click_text(driver: Any, text: str, seconds: float = 30.0) -> None:
    """Click the element showing exactly ``text``; the viewer re-renders lists as they load, so an element found a
    moment ago may be gone (stale): find it again."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    deadline = time.monotonic() + seconds
    while True:
        try:
            driver.find_element("xpath", f"//*[normalize-space(text())='{text}']").click()
            return
        except (StaleElementReferenceException, NoSuchElementException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)


def test_inspect_view_bundle_renders_the_exported_runs(runs: dict[str, str], tmp_path: Path) -> None:
    export_inspect([runs["single"], runs["leap"]], tmp_path / "logs", tmp_path / "runs")
    bundle = tmp_path / "bundle"
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "inspect_ai", "view", "bundle", "--log-dir", str(tmp_path / "logs"),
                    "--output-dir", str(bundle)], check=True, capture_output=True, timeout=120)
    assert time.monotonic() - started < 30  # fast enough for the default suite
    # no CDN: the page may load only what the bundle holds (its content security policy says so to the browser)
    index = (bundle / "index.html").read_text()
    assert "default-src 'none'" in index and "connect-src 'self'" in index and "://" not in index.split("<body")[0]
    with serve(bundle) as url, chromium() as driver:
        driver.get(url)
        wait_for_text(driver, "peerstep/mixed")  # the log list: the task of these two runs
        click_text(driver, "peerstep/mixed")
        page = wait_for_text(driver, runs["leap"])  # the sample list of the log
        assert runs["single"] in page and "What is 6*7?" in page
        click_text(driver, runs["leap"])
        page = wait_for_text(driver, "trajectory 2")  # the sample's transcript: one agent per trajectory
        assert "trajectory 0" in page and "trajectory 1" in page
