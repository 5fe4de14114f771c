"""End-to-end: `peerstep run` on a task file against the real engine, and Ctrl-C in the middle of an eval."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from peerstep.engines import ManagedEngine

pytestmark = pytest.mark.slow

TASKS = """
tasks:
  - id: product
    question: What is 37 * 43?
    tools: [calculator]
    checker: numeric
    gold: 1591
  - id: sum
    question: What is 1234 + 4321?
    tools: [calculator]
    checker: numeric
    gold: 5555
  - id: difference
    question: What is 10000 - 7777?
    tools: [calculator]
    checker: numeric
    gold: 2223
"""


def _run(engine: ManagedEngine, tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text(TASKS)
    env = {**os.environ, "PEERSTEP_RUNS": str(tmp_path / "runs"), "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "peerstep.cli", "run", str(tasks), "--base-url", engine.base_url,
                             "--model", engine.served_name, "--out", str(tmp_path / "out.json"), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_run_task_file(llamacpp_engine: ManagedEngine, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    proc = _run(llamacpp_engine, tmp_path, "--concurrency", "2", "--report", str(page))
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    # the report of a real eval: the table row and the three plots, inline (the page itself is tested in test_report)
    html = page.read_text()
    assert "single" in html and html.count("<svg") >= 3
    assert not any(f'{attr}="http' in html or f"{attr}='http" in html for attr in ("src", "href"))
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["interrupted"] is False and len(report["outcomes"]) == 3
    summary = report["summaries"][0]
    assert summary["strategy"] == "single" and summary["episodes"] == 3
    assert summary["correct"] == sum(o["correct"] for o in report["outcomes"])
    assert all(o["tokens"] > 0 for o in report["outcomes"])
    assert "| single | " in out and "accuracy (95% CI)" in out


def test_ctrl_c_keeps_finished_episodes(llamacpp_engine: ManagedEngine, tmp_path: Path) -> None:
    proc = _run(llamacpp_engine, tmp_path, "--concurrency", "1")
    jsonl = tmp_path / "out.jsonl"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not (jsonl.exists() and jsonl.read_text().strip()):
        time.sleep(0.5)
    assert jsonl.exists() and jsonl.read_text().strip(), "no episode finished"
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    report = json.loads((tmp_path / "out.json").read_text())
    finished = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert report["interrupted"] is True
    assert 1 <= len(report["outcomes"]) < 3
    assert {o["task_id"] for o in report["outcomes"]} == {o["task_id"] for o in finished}
