"""Eval reports: pooling, paired statistics, the HTML page in a real (offline) Chromium, PNGs, and bad input."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from peerstep.cli import app
from peerstep.evals import EpisodeOutcome, EvalReport, load_reports, mcnemar_exact, pool, run_eval, summarize
from peerstep.evals._html import write_html
from peerstep.evals._plots import PAGE_FIGURES, write_pngs
from tests._browser import chromium, file_url
from tests.test_evals import Answerer, TinyDataset

runner = CliRunner()


def _outcome(task: str, strategy: str, correct: bool, *, n: int = 1, tokens: int = 100, tool_calls: int = 1,
             error: str | None = None, index: int | None = None) -> EpisodeOutcome:
    return EpisodeOutcome(task_id=task, index=int(task.rsplit("-", 1)[-1]) if index is None else index,
                          strategy=strategy, n=n, answer="1" if correct else "2", gold="1", correct=correct,
                          tokens=tokens, tool_calls=tool_calls, seconds=1.0, run_id=f"run-{task}-{strategy}",
                          error=error)


def _report(dataset: str, outcomes: list[EpisodeOutcome]) -> EvalReport:
    names = list(dict.fromkeys(o.strategy for o in outcomes))
    return EvalReport(dataset=dataset, model="m", seed=0, limit=len({o.task_id for o in outcomes}),
                      summaries=[summarize(outcomes, s, 1.0, None) for s in names], outcomes=outcomes)


# --- statistics ---------------------------------------------------------------------------------------------------

def test_mcnemar_exact_on_known_tables() -> None:
    assert mcnemar_exact(10, 2) == pytest.approx(0.0386, abs=5e-5)  # 2 · (1 + 12 + 66) / 4096
    assert mcnemar_exact(2, 10) == mcnemar_exact(10, 2)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(5, 0) == pytest.approx(0.0625)  # 2 / 32: five wins of five is not yet p < 0.05
    assert mcnemar_exact(6, 0) == pytest.approx(0.03125)


def test_mcnemar_exact_matches_scipys_binomial_test() -> None:
    from scipy.stats import binomtest

    for b in range(0, 15):
        for c in range(0, 15):
            if b + c:
                assert mcnemar_exact(b, c) == pytest.approx(binomtest(b, b + c, 0.5).pvalue, rel=1e-9), (b, c)


def test_paired_comparison_counts_wins_losses_and_ties() -> None:
    right = [True] * 10 + [False] * 2 + [True] * 5 + [False] * 3  # A: 10 wins, 2 losses, 5 both, 3 neither
    other = [False] * 10 + [True] * 2 + [True] * 5 + [False] * 3
    outcomes = ([_outcome(f"t-{i}", "leap", r, n=4) for i, r in enumerate(right)]
                + [_outcome(f"t-{i}", "single", r) for i, r in enumerate(other)])
    c = pool([_report("d", outcomes)]).compare("leap@4", "single")
    assert (c.tasks, c.wins, c.losses, c.both, c.neither) == (20, 10, 2, 5, 3)
    assert c.p_value == pytest.approx(0.0386, abs=5e-5)


def test_pooling_two_reports_pairs_by_dataset_and_task_and_keeps_a_missing_strategy_missing() -> None:
    a = _report("a", [_outcome(f"t-{i}", "single", i % 2 == 0, tokens=50) for i in range(4)]
                + [_outcome(f"t-{i}", "leap", True, n=4, tokens=400, tool_calls=6) for i in range(4)]
                + [_outcome("t-3", "bare-program", False, error="RuntimeError: sandbox")])
    b = _report("b", [_outcome(f"t-{i}", "single", True, tokens=70) for i in range(2)])  # the same task ids as a's
    pooled = pool([a, b], ["a.json", "b.json"])
    assert pooled.datasets == ["a", "b"]
    assert pooled.labels == ["bare-program", "single", "leap@4"]  # baselines first
    assert pooled.tasks == [("a", "t-0"), ("a", "t-1"), ("a", "t-2"), ("a", "t-3"), ("b", "t-0"), ("b", "t-1")]
    assert pooled.status(("b", "t-0"), "leap@4") == "missing"
    assert pooled.status(("a", "t-3"), "bare-program") == "error"
    assert pooled.status(("a", "t-1"), "single") == "wrong" and pooled.status(("b", "t-1"), "single") == "correct"
    rows = {(r.dataset, r.label): r for r in pooled.rows()}
    assert rows[("all", "single")].summary.correct == 4 and rows[("all", "single")].summary.episodes == 6
    assert rows[("all", "leap@4")].datasets == ("a",)  # pooled over the one dataset it ran
    assert rows[("all", "leap@4")].summary.episodes == 4
    assert ("b", "leap@4") not in rows
    # paired only where both ran: b's tasks have no leap@4, and a's t-0 is not b's t-0
    c = pooled.compare("leap@4", "single")
    assert (c.tasks, c.wins, c.losses) == (4, 2, 0)
    assert pooled.replaced == 0
    again = pool([a, a])
    assert again.replaced == len(a.outcomes) and len(again.outcomes) == len(a.outcomes)
    table = pooled.markdown()
    assert "| all (a) | leap@4 | 4/4 = 100%" in table and "| single | leap@4 | 4 | 0 | 2 | 0.5 |" in table


# --- the page -----------------------------------------------------------------------------------------------------

async def _scripted_reports(tmp_path: Path) -> list[EvalReport]:
    """A real eval (scripted model) of two strategies, and a second dataset's report that lacks one of them."""
    outcomes = await run_eval(TinyDataset(), Answerer, ["single", "majority"], n=3, concurrency=2,
                              runs_dir=tmp_path / "runs")
    tiny = EvalReport(dataset="tiny", model="scripted", seed=0, limit=4,
                      summaries=[summarize(outcomes, s, 1.0, None) for s in ("single", "majority")],
                      outcomes=outcomes)
    other = _report("other <b>set</b>", [_outcome("x-0", "single", True), _outcome("x-1", "single", False),
                                         _outcome("x-2", "bare-cot", False, error="<script>alert(1)</script>")])
    return [tiny, other]


async def test_the_page_shows_table_plots_comparisons_and_grid_offline(tmp_path: Path) -> None:
    reports = await _scripted_reports(tmp_path)
    paths = []
    for i, r in enumerate(reports):
        paths.append(tmp_path / f"r{i}.json")
        paths[-1].write_text(r.model_dump_json())
    page = tmp_path / "report.html"
    result = runner.invoke(app, ["report", *map(str, paths), "--out", str(page)])
    assert result.exit_code == 0, result.output
    assert "| tiny | majority@3 | 3/4 = 75%" in result.output
    html = page.read_text()
    # self-contained: nothing is fetched (no src/href to anywhere, no CSS url() or @import, no script)
    assert not re.search(r"""(?:src|href)\s*=\s*(?!["']?#)""", html)  # only in-page #refs
    assert not re.search(r"url\(\s*(?![\"']?#)", html) and "@import" not in html and "<script" not in html
    pooled = load_reports(paths)
    from selenium.webdriver.common.by import By

    with chromium(offline=True) as driver:
        driver.get(file_url(page))
        assert driver.title == "Eval report"
        assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
        rows = driver.find_elements(By.CSS_SELECTOR, "table.results tbody tr")
        labels = [(r.get_attribute("data-dataset"), r.get_attribute("data-strategy")) for r in rows]
        assert labels == [("tiny", "single"), ("tiny", "majority@3"), ("other <b>set</b>", "bare-cot"),
                          ("other <b>set</b>", "single"), ("all", "bare-cot"), ("all", "single"),
                          ("all", "majority@3")]
        assert "baseline" in (rows[2].get_attribute("class") or "")
        assert [c.text for c in rows[1].find_elements(By.TAG_NAME, "td")][2:4] == ["3/4", "75%"]
        # one inline <svg> per plot, each drawn with real size
        figures = driver.find_elements(By.CSS_SELECTOR, "figure.plot")
        assert [f.get_attribute("id") for f in figures] == [f"plot-{name}" for name in PAGE_FIGURES]
        for f in figures:
            svgs = f.find_elements(By.CSS_SELECTOR, ":scope > svg")
            assert len(svgs) == 1 and svgs[0].size["width"] > 300 and svgs[0].size["height"] > 150
        assert "majority@3" in figures[1].text  # the frontier's labels are text, not paths
        # the grid: tasks × strategies, each cell classed by its outcome
        task_rows = driver.find_elements(By.CSS_SELECTOR, "table.grid tr.task")
        assert len(task_rows) == 7
        cells = driver.find_elements(By.CSS_SELECTOR, "table.grid td.cell")
        assert len(cells) == 7 * 3
        status = {(r.get_attribute("data-task"), c.get_attribute("data-strategy")):
                  (c.get_attribute("class") or "").split()[1]
                  for r in task_rows for c in r.find_elements(By.CSS_SELECTOR, "td.cell")}
        assert status == {(t, name): pooled.status((d, t), name) for d, t in pooled.tasks for name in pooled.labels}
        assert status[("tiny-1", "single")] == "wrong" and status[("tiny-0", "majority@3")] == "correct"
        assert status[("x-0", "majority@3")] == "missing" and status[("x-2", "bare-cot")] == "error"
        # a report's text is shown as text, never run as markup
        assert driver.find_elements(By.CSS_SELECTOR, "script") == []
        assert driver.find_elements(By.CSS_SELECTOR, "tr.dataset b") == []
        assert "<script>alert(1)</script>" in cells[-3].get_attribute("title") or any(
            "<script>alert(1)</script>" in (c.get_attribute("title") or "") for c in cells)
        # the comparisons: single against majority@3 on the four tiny tasks
        comparisons = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                       for tr in driver.find_elements(By.CSS_SELECTOR, "table.comparisons tbody tr")]
        c = pooled.compare("single", "majority@3")
        assert ["single", "majority@3", "4", str(c.wins), str(c.losses)] in [row[:5] for row in comparisons]


async def test_png_dir_writes_every_plot_at_print_resolution(tmp_path: Path) -> None:
    from PIL import Image

    pooled = pool(await _scripted_reports(tmp_path))
    written = write_pngs(pooled, tmp_path / "figs")
    assert [p.name for p in written] == ["accuracy.png", "frontier.png", "tool-calls.png", "outcomes.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.info["dpi"][0] == pytest.approx(300, abs=1)
            assert image.size[0] > 1000


def test_eval_report_option_writes_the_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from peerstep.cli.evals import run_and_report
    from tests.test_client import MODEL, FakeOpenAIServer

    monkeypatch.setenv("PEERSTEP_RUNS", str(tmp_path / "runs"))
    server = FakeOpenAIServer()
    server.start()
    try:
        run_and_report(TinyDataset(), ["single"], n=1, limit=2, concurrency=1, seed=0, engine="llamacpp",
                       model=MODEL, base_url=server.base_url, api_key=None, out=tmp_path / "r.json",
                       price_per_mtok=None, max_steps=2, report_html=tmp_path / "r.html")
    finally:
        server.stop()
    html = (tmp_path / "r.html").read_text()
    assert html.count("<svg") == len(PAGE_FIGURES) and "data-strategy='single'" in html
    assert html.count("<tr class='task'") == 2


# --- bad input ----------------------------------------------------------------------------------------------------

def _fails(args: list[str], says: str) -> None:
    result = runner.invoke(app, ["report", *args])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert says in lines[0] and "Traceback" not in result.output


def test_bad_input_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    _fails([str(tmp_path / "nope.json")], "no such file")
    (tmp_path / "text.json").write_text("hello")
    _fails([str(tmp_path / "text.json")], "not JSON")
    (tmp_path / "other.json").write_text(json.dumps({"runs": []}))
    _fails([str(tmp_path / "other.json")], "not an eval report")
    (tmp_path / "empty.json").write_text(EvalReport(dataset="d", model="m", seed=0, limit=0, summaries=[],
                                                    outcomes=[]).model_dump_json())
    _fails([str(tmp_path / "empty.json")], "no finished episodes")


def test_an_unwritable_page_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(Exception, match="cannot write the report"):
        write_html(pool([_report("d", [_outcome("t-0", "single", True)])]), tmp_path / "file" / "r.html")


def test_without_matplotlib_the_report_says_which_extra_to_install(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "r.json"
    path.write_text(_report("d", [_outcome("t-0", "single", True)]).model_dump_json())
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    _fails([str(path), "--out", str(tmp_path / "r.html")], "pip install 'peerstep[report]'")
    assert not (tmp_path / "r.html").exists()
    assert runner.invoke(app, ["report", str(path)]).exit_code == 0  # the tables alone need no matplotlib
    # an eval asked for a report fails before it starts, not after an hour of episodes
    result = runner.invoke(app, ["eval", "math", "--limit", "1", "--report", str(tmp_path / "e.html"),
                                 "--base-url", "http://127.0.0.1:9/v1"])
    assert result.exit_code == 2 and "pip install 'peerstep[report]'" in result.output
    assert "starting" not in result.output and "unreachable" not in result.output
