"""Runs as OpenTelemetry traces: the span mapping (through the SDK's InMemorySpanExporter), the live ``--trace-to``
hook of the runner, and what a dead endpoint does (one error line for ``export``, one warning for a run)."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

import pytest
from click.testing import Result
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from typer.testing import CliRunner

from peerstep import arun
from peerstep.cli import app
from peerstep.environments import QuestionEnvironment
from peerstep.evals import EpisodeOutcome, EvalReport
from peerstep.export import ExportError, trace_to
from peerstep.export._otlp import deliver, send, spans_of
from peerstep.export._spans import span_id_of, trace_id_of
from peerstep.steplog import StepKind, StepLog
from tests._otlp_runs import SCRIPTS, leap4_run
from tests.scripted import PerTrajectoryClient


@pytest.fixture()
async def leap_run(tmp_path: Path) -> tuple[str, Path]:
    return await leap4_run(tmp_path), tmp_path


def dead_endpoint() -> str:
    """A loopback URL nothing listens on (a port just freed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1/traces"


def exported(run_id: str, directory: Path) -> list:
    memory = InMemorySpanExporter()
    deliver(spans_of(run_id, directory), memory)
    return list(memory.get_finished_spans())


async def test_a_leap_run_is_one_trace_run_trajectories_calls(leap_run: tuple[str, Path]) -> None:
    run_id, directory = leap_run
    spans = exported(run_id, directory)
    assert {s.context.trace_id for s in spans} == {trace_id_of(run_id)}
    by_id = {s.context.span_id: s for s in spans}
    roots = [s for s in spans if s.parent is None]
    assert len(roots) == 1 and roots[0].name == "peerstep leap@4"
    root = roots[0]
    assert root.attributes["openinference.span.kind"] == "CHAIN"
    assert root.attributes["input.value"] == "What is 6*7?" and root.attributes["output.value"] == "42"
    agents = sorted((s for s in spans if s.attributes.get("openinference.span.kind") == "AGENT"),
                    key=lambda s: s.attributes["peerstep.trajectory_id"])
    assert [s.name for s in agents] == [f"invoke_agent trajectory {t}" for t in range(4)]
    assert all(s.parent.span_id == root.context.span_id for s in agents)
    assert all(s.attributes["gen_ai.operation.name"] == "invoke_agent" for s in agents)
    assert [s.attributes["output.value"] for s in agents] == ["42", "48", "42", "42"]
    # every non-root span sits under a span of the same trace
    assert all(s.parent.span_id in by_id for s in spans if s.parent is not None)

    with StepLog.open(run_id, directory) as log:
        records = list(log.records())
    reasons = [r for r in records if r.kind == StepKind.REASON]
    llm = {s.attributes["peerstep.step_id"]: s for s in spans if s.attributes.get("peerstep.kind") == "reason"}
    assert len(llm) == len(reasons) == sum(len(s) for s in SCRIPTS.values())
    for rec in reasons:
        span = llm[rec.step_id]
        assert by_id[span.parent.span_id].attributes["peerstep.trajectory_id"] == rec.trajectory_id
        assert span.attributes["openinference.span.kind"] == "LLM"
        assert span.attributes["gen_ai.operation.name"] == "chat"
        assert span.attributes["llm.model_name"] == span.attributes["gen_ai.request.model"] == "scripted"
        assert span.attributes["llm.token_count.prompt"] == rec.usage.prompt_tokens == \
            span.attributes["gen_ai.usage.input_tokens"]
        assert span.attributes["llm.token_count.completion"] == rec.usage.completion_tokens
        assert span.attributes["llm.token_count.total"] == rec.usage.prompt_tokens + rec.usage.completion_tokens
        assert span.attributes["output.value"] == rec.text
        assert span.attributes["gen_ai.request.seed"] == rec.sampling["seed"]
        assert json.loads(span.attributes["llm.invocation_parameters"])["temperature"] == rec.sampling["temperature"]
        # logged times, not the export's: the call ends at its record and lasts its latency
        assert span.end_time == int(rec.created_at * 1e9)
        assert span.start_time == int((rec.created_at - rec.latency_s) * 1e9)
    first = llm[next(r.step_id for r in reasons if r.trajectory_id == 0)]
    assert first.attributes["llm.input_messages.0.message.role"] == "system"
    assert first.attributes["llm.input_messages.1.message.content"].startswith("What is 6*7?")
    assert first.attributes["llm.output_messages.0.message.tool_calls.0.tool_call.function.name"] == "calculate"


async def test_tool_spans_carry_the_call_and_its_result(leap_run: tuple[str, Path]) -> None:
    run_id, directory = leap_run
    spans = exported(run_id, directory)
    tools = [s for s in spans if s.attributes.get("openinference.span.kind") == "TOOL"]
    calcs = [s for s in tools if s.attributes["tool.name"] == "calculate"]
    assert len(calcs) == 4 and len([s for s in tools if s.attributes["tool.name"] == "submit_answer"]) == 4
    by_expr = {json.loads(s.attributes["tool.parameters"])["expression"]: s for s in calcs}
    assert set(by_expr) == {"6*7", "6*8", "7*6", "42"}
    span = by_expr["6*8"]
    assert span.name == "execute_tool calculate" and span.attributes["gen_ai.operation.name"] == "execute_tool"
    assert span.attributes["output.value"] == span.attributes["gen_ai.tool.call.result"] == "48"
    assert span.attributes["peerstep.tool.ok"] is True and span.attributes["gen_ai.tool.call.id"]
    assert span.attributes["gen_ai.tool.call.id"] == span.attributes["tool_call.id"]
    assert span.end_time >= span.start_time


async def test_scores_votes_barriers_and_peer_links(leap_run: tuple[str, Path]) -> None:
    run_id, directory = leap_run
    spans = exported(run_id, directory)
    by_id = {s.context.span_id: s for s in spans}
    agents = {s.attributes["peerstep.trajectory_id"]: s for s in spans
              if s.attributes.get("openinference.span.kind") == "AGENT"}
    for tid, agent in agents.items():
        evals = [e for e in agent.events if e.name == "gen_ai.evaluation.result"]
        assert len(evals) == 1
        assert evals[0].attributes["gen_ai.evaluation.name"] == "fixed-score"
        assert evals[0].attributes["gen_ai.evaluation.score.value"] == 0.25 * (tid + 1)
        assert evals[0].attributes["gen_ai.evaluation.explanation"] == f"trajectory {tid} looks fine"
    root = next(s for s in spans if s.parent is None)
    under_root = [s.name for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id]
    assert "barrier round 1" in under_root and "aggregate majority" in under_root
    vote = next(s for s in spans if s.name == "aggregate majority")
    assert vote.attributes["output.value"] == "42"
    assert json.loads(vote.attributes["peerstep.decision"])["groups"][0][:2] == ["42", [0, 2, 3]]

    injections = [s for s in spans if s.attributes.get("peerstep.kind") == "peer_inject"]
    assert len(injections) == 4
    for inj in injections:
        receiver = by_id[inj.parent.span_id].attributes["peerstep.trajectory_id"]
        sources = list(inj.attributes["peerstep.sources"])
        assert receiver not in sources and len(inj.links) == len(sources) == 2
        for link, src in zip(inj.links, sources, strict=True):
            target = by_id[link.context.span_id]  # the source trajectory's summary span, in this trace
            assert target.attributes["peerstep.kind"] == "summary"
            assert by_id[target.parent.span_id].attributes["peerstep.trajectory_id"] == src
            assert link.attributes["peerstep.source_trajectory"] == src
        assert list(inj.attributes["peerstep.source_span_ids"]) == [format(x.context.span_id, "016x")
                                                                    for x in inj.links]


async def test_ids_are_derived_so_a_re_export_sends_the_same_trace(leap_run: tuple[str, Path]) -> None:
    run_id, directory = leap_run
    first, again = exported(run_id, directory), exported(run_id, directory)
    assert [(s.context.trace_id, s.context.span_id) for s in first] == \
        [(s.context.trace_id, s.context.span_id) for s in again]
    assert len({s.context.span_id for s in first}) == len(first)
    assert next(s for s in first if s.parent is None).context.span_id == span_id_of(run_id, "run")


async def test_a_dead_endpoint_is_an_export_error_in_seconds(leap_run: tuple[str, Path]) -> None:
    spans = spans_of(*leap_run)
    started = time.monotonic()
    with pytest.raises(ExportError, match=r"did not take the spans: Connection refused$"):
        send(spans, dead_endpoint(), timeout=2)
    assert time.monotonic() - started < 10


async def test_a_server_that_refuses_the_request_is_named_with_its_status(leap_run: tuple[str, Path]) -> None:
    """A live HTTP server that is not an OTLP endpoint (404): the error carries the status, not a retry summary."""
    import http.server
    import threading

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_error(404, "no traces here")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ExportError, match="404"):
            send(spans_of(*leap_run), f"http://127.0.0.1:{server.server_port}/v1/traces", timeout=2)
    finally:
        server.shutdown()
        server.server_close()


async def test_live_trace_to_sends_each_run_when_it_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner's after-run hook: every run that ends inside ``trace_to`` is delivered once, as a whole."""
    from peerstep.export import _otlp

    memory = InMemorySpanExporter()
    monkeypatch.setattr(_otlp, "send", lambda spans, endpoint, **kw: deliver(spans, memory))
    client = PerTrajectoryClient({0: [SCRIPTS[0][0], SCRIPTS[0][2]]})
    with trace_to("http://127.0.0.1:9/v1/traces", warn=pytest.fail):
        result = await arun(QuestionEnvironment("What is 6*7?", gold="42"), client, strategy="single",
                            runs_dir=tmp_path)
    after = await arun(QuestionEnvironment("What is 6*7?"), PerTrajectoryClient({0: [SCRIPTS[0][2]]}),
                       strategy="single", runs_dir=tmp_path)  # outside: not sent
    spans = memory.get_finished_spans()
    assert {s.context.trace_id for s in spans} == {trace_id_of(result.run_id)} != {trace_id_of(after.run_id)}
    assert any(s.attributes.get("tool.name") == "calculate" for s in spans)


async def test_a_dead_trace_to_endpoint_never_fails_the_run(tmp_path: Path) -> None:
    warnings: list[str] = []
    client = PerTrajectoryClient({0: [SCRIPTS[0][0], SCRIPTS[0][2]]})
    with trace_to(dead_endpoint(), warn=warnings.append):
        result = await arun(QuestionEnvironment("What is 6*7?", gold="42"), client, strategy="single",
                            runs_dir=tmp_path)
    assert result.answer == "42" and result.correct is True and result.status == "done"
    assert len(warnings) == 1 and result.run_id in warnings[0] and "peerstep export" in warnings[0]


def _cli(*args: str, runs: Path) -> Result:
    """The command in this process (the CLI's own code path, without a second interpreter's start-up)."""
    return CliRunner().invoke(app, list(args), env={"PEERSTEP_RUNS": str(runs), "COLUMNS": "200"})


async def test_export_to_a_dead_endpoint_is_one_line_and_exit_1(leap_run: tuple[str, Path]) -> None:
    run_id, directory = leap_run
    url = dead_endpoint()
    result = _cli("export", run_id, "--format", "otlp", "--endpoint", url, runs=directory)
    assert result.exit_code == 1
    assert f"error: the OTLP endpoint {url} did not take the spans" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert len(result.stderr.strip().splitlines()) == 1


def test_export_without_endpoint_or_with_a_bad_one_or_run(tmp_path: Path) -> None:
    result = _cli("export", "nope", "--format", "otlp", runs=tmp_path)
    assert result.exit_code == 1 and "--endpoint URL" in result.stderr
    result = _cli("export", "nope", "--format", "otlp", "--endpoint", "localhost:6006", runs=tmp_path)
    assert result.exit_code == 1 and "http(s) URL" in result.stderr
    result = _cli("export", "no-such-run", "--format", "otlp", "--endpoint", dead_endpoint(), runs=tmp_path)
    assert result.exit_code == 1 and "no-such-run" in result.stderr and "Traceback" not in result.stderr


def test_trace_to_refuses_a_bad_url_before_any_engine_starts(tmp_path: Path) -> None:
    result = _cli("solve", "--trace-to", "127.0.0.1:6006", "--base-url", "http://127.0.0.1:9/v1", "1+1?",
                  runs=tmp_path)
    assert result.exit_code == 2 and "http(s) URL" in result.stderr


def test_without_the_otel_extra_the_command_says_how_to_install_it(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK hidden from the import system: the command names the extra, exit 1."""
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    result = _cli("export", "x", "--endpoint", "http://127.0.0.1:9/v1/traces", runs=tmp_path)
    assert result.exit_code == 1 and "pip install 'peerstep[otel]'" in result.stderr, result.stderr
    result = _cli("eval", "math", "--trace-to", "http://127.0.0.1:9/v1/traces", runs=tmp_path)
    assert result.exit_code == 2 and "pip install 'peerstep[otel]'" in result.stderr, result.stderr


async def test_export_eval_sends_every_episode_run(leap_run: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """``--eval OUT.json``: each outcome's run becomes its own trace."""
    from peerstep.export import _otlp

    run_id, directory = leap_run
    other = await arun(QuestionEnvironment("What is 6*7?"), PerTrajectoryClient({0: [SCRIPTS[0][2]]}),
                       strategy="single", runs_dir=directory)
    report = directory / "OUT.json"
    outcomes = [EpisodeOutcome(task_id=f"t{i}", index=i, strategy="single", n=1, answer="42", gold="42",
                               correct=True, tokens=1, tool_calls=0, seconds=0.1, run_id=rid)
                for i, rid in enumerate([run_id, other.run_id])]
    report.write_text(EvalReport(dataset="question", model="scripted", seed=0, limit=2, summaries=[],
                                 outcomes=outcomes).model_dump_json())
    memory = InMemorySpanExporter()
    monkeypatch.setattr(_otlp, "send", lambda spans, endpoint, **kw: deliver(spans, memory))
    result = _cli("export", "--eval", str(report), "--format", "otlp", "--endpoint", "http://127.0.0.1:9/v1/traces",
                  runs=directory)
    assert result.exit_code == 0, result.stderr
    assert "sent 2 run(s)" in result.stderr
    assert {s.context.trace_id for s in memory.get_finished_spans()} == {trace_id_of(run_id),
                                                                       trace_id_of(other.run_id)}
