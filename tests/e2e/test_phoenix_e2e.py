"""End-to-end: runs exported as OpenTelemetry traces land in a real Arize Phoenix server and read back whole.

One Phoenix per module (from the venv ``scripts/install_phoenix.sh`` builds, ``make phoenix``), on loopback with
free ports, a temporary working directory (its SQLite database) and telemetry off. The runs are scripted leap@4
runs (no model: the point is the trace, not the answer); the spans are read back through Phoenix's REST API.
Phoenix does not keep span links, so the peer injections are checked through their ``peerstep.source_span_ids``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from peerstep import arun
from peerstep.environments import QuestionEnvironment
from peerstep.export import export_otlp, trace_to
from peerstep.export._otlp import spans_of
from peerstep.export._spans import trace_id_of
from tests._otlp_runs import SCRIPTS, leap4_run
from tests.scripted import PerTrajectoryClient

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
HOME = Path(os.environ.get("PEERSTEP_HOME", Path.home() / ".cache" / "peerstep"))
PHOENIX = HOME / "phoenix-venv" / "bin" / "phoenix"  # scripts/install_phoenix.sh puts it there


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Phoenix server's base URL, e.g. http://127.0.0.1:PORT."""
    assert PHOENIX.exists(), f"no Phoenix at {PHOENIX}: run `make phoenix` (scripts/install_phoenix.sh)"
    work = tmp_path_factory.mktemp("phoenix")
    port = _free_port()
    env = {**os.environ, "PHOENIX_WORKING_DIR": str(work), "PHOENIX_HOST": "127.0.0.1", "PHOENIX_PORT": str(port),
           "PHOENIX_GRPC_PORT": str(_free_port()), "PHOENIX_TELEMETRY_ENABLED": "false"}
    log = (work / "phoenix.log").open("w")
    started = time.monotonic()
    proc = subprocess.Popen([str(PHOENIX), "serve"], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            assert proc.poll() is None, f"Phoenix exited: {(work / 'phoenix.log').read_text()[-2000:]}"
            assert time.monotonic() - started < 120, "Phoenix did not come up in 120 s"
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=2).close()
                break
            except OSError:
                time.sleep(0.3)
        print(f"\nPhoenix up in {time.monotonic() - started:.1f} s on {base}")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def read_trace(base: str, run_id: str, expect: int) -> list[dict[str, Any]]:
    """The spans Phoenix has for a run's trace, once all ``expect`` of them are in (ingestion is asynchronous)."""
    url = f"{base}/v1/projects/peerstep/spans?limit=1000&trace_id={trace_id_of(run_id):032x}"
    deadline = time.monotonic() + 30
    while True:
        try:
            spans = _get(url)["data"]
        except urllib.error.HTTPError as exc:  # 404 until the first span has made the project
            if exc.code != 404 or time.monotonic() > deadline:
                raise
            spans = []
        if len(spans) >= expect or time.monotonic() > deadline:
            return spans
        time.sleep(0.3)


def _cli(*args: str, runs: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PEERSTEP_RUNS": str(runs), "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "peerstep", *args], capture_output=True, text=True, timeout=120,
                          env=env)


async def test_an_exported_leap4_run_reads_back_from_phoenix(phoenix: str, tmp_path: Path) -> None:
    run_id = await leap4_run(tmp_path)
    proc = _cli("export", run_id, "--format", "otlp", "--endpoint", f"{phoenix}/v1/traces", runs=tmp_path)
    assert proc.returncode == 0, proc.stderr
    sent = int(re.search(r"\((\d+) spans\)", proc.stderr).group(1))  # type: ignore[union-attr]
    spans = read_trace(phoenix, run_id, sent)
    assert len(spans) == sent
    by_id = {s["context"]["span_id"]: s for s in spans}
    kids: dict[str | None, list[dict[str, Any]]] = {}
    for s in spans:
        kids.setdefault(s["parent_id"], []).append(s)
    (root,) = kids[None]
    assert root["name"] == "peerstep leap@4" and root["span_kind"] == "CHAIN"
    assert root["attributes"]["output.value"] == "42"
    agents = [s for s in kids[root["context"]["span_id"]] if s["span_kind"] == "AGENT"]
    assert sorted(s["attributes"]["peerstep.trajectory_id"] for s in agents) == [0, 1, 2, 3]
    for agent in agents:
        tid = agent["attributes"]["peerstep.trajectory_id"]
        children = kids[agent["context"]["span_id"]]
        llm = [s for s in children if s["span_kind"] == "LLM" and s["attributes"]["peerstep.kind"] == "reason"]
        assert len(llm) == len(SCRIPTS[tid])
        for s in llm:
            a = s["attributes"]
            assert a["llm.model_name"] == "scripted" and a["llm.token_count.prompt"] == 10
            assert a["llm.token_count.total"] == a["llm.token_count.prompt"] + a["llm.token_count.completion"] > 10
        tools = {s["attributes"]["tool.name"]: s for s in children if s["span_kind"] == "TOOL"}
        assert set(tools) == {"calculate", "submit_answer"}
        calc = tools["calculate"]["attributes"]  # Phoenix spreads the JSON of tool.parameters into keys
        expression = json.loads(calc["input.value"])["expression"]
        assert calc["tool.parameters.expression"] == expression == json.loads(calc["gen_ai.tool.call.arguments"])[
            "expression"]
        assert calc["output.value"] == {"6*7": "42", "6*8": "48", "7*6": "42", "42": "42"}[expression]
        assert calc["peerstep.tool.ok"] is True
        evals = [e for e in agent["events"] if e["name"] == "gen_ai.evaluation.result"]
        assert [e["attributes"]["gen_ai.evaluation.score.value"] for e in evals] == [0.25 * (tid + 1)]
        (inject,) = [s for s in children if s["attributes"].get("peerstep.kind") == "peer_inject"]
        for span_id, src in zip(inject["attributes"]["peerstep.source_span_ids"],
                                inject["attributes"]["peerstep.sources"], strict=True):
            summary = by_id[span_id]  # the quoted peer's summary span, in Phoenix too
            assert summary["attributes"]["peerstep.kind"] == "summary"
            assert by_id[summary["parent_id"]]["attributes"]["peerstep.trajectory_id"] == src
    assert any(s["name"] == "aggregate majority" for s in kids[root["context"]["span_id"]])
    # the ids are derived from the run: a second export is the same trace, not a second copy
    assert export_otlp([run_id], f"{phoenix}/v1/traces", tmp_path) == {run_id: sent}
    time.sleep(1)
    assert len(read_trace(phoenix, run_id, sent)) == sent


async def test_trace_to_sends_a_run_live_to_phoenix(phoenix: str, tmp_path: Path) -> None:
    warnings: list[str] = []
    client = PerTrajectoryClient({0: [SCRIPTS[0][0], SCRIPTS[0][2]]})
    with trace_to(f"{phoenix}/v1/traces", warn=warnings.append):
        result = await arun(QuestionEnvironment("What is 6*7?", gold="42"), client, strategy="single",
                            runs_dir=tmp_path)
    assert warnings == [] and result.correct is True
    local = spans_of(result.run_id, tmp_path)
    spans = read_trace(phoenix, result.run_id, len(local))
    assert sorted((s["context"]["span_id"], s["name"]) for s in spans) == \
        sorted((format(s.context.span_id, "016x"), s.name) for s in local)
    assert {"peerstep single", "invoke_agent trajectory 0", "chat scripted", "execute_tool calculate"} <= \
        {s["name"] for s in spans}
