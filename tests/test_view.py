"""peerstep view: the view model of scripted leap runs, and the page as headless Chromium draws it.

The page tests open the written file (or the live server) in Debian's Chromium and assert on the DOM: columns,
peer links, badges, the vote, the greyed trajectory, search, jump to error, the eval table, live refresh, bad rows
and hostile model output. Screenshots go to $PEERSTEP_SCREENSHOTS when set.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from peerstep import arun
from peerstep.cli import app
from peerstep.environments import QuestionEnvironment
from peerstep.graphs.parallel import ParallelConfig
from peerstep.peers import SharingConfig
from peerstep.steplog import StepKind, StepLog, StepRecord, ToolInfo
from peerstep.view import build_model, render_eval, render_run, serve
from tests._browser import chromium, file_url
from tests.scripted import FixedScores, PerTrajectoryClient, calc, submit

runner = CliRunner()








SUMMARIES = {0: "six times seven is 42", 1: "six times eight is 48", 2: "the product is 42",
             3: "one then two, unsure"}


def leap_run(directory: Path) -> StepLog:
    """leap+verify@4: one round, T3 pruned at the first barrier (lowest score), summaries and injections among
    the other three, who then submit; weighted vote 42 (T0, T2) over 48 (T1), graded against gold 42."""
    client = PerTrajectoryClient({0: [calc("6*7"), submit("42")], 1: [calc("6*8"), submit("48")],
                                  2: [calc("6*7"), submit("42")], 3: [calc("1"), calc("2"), submit("3")]},
                                 summaries=SUMMARIES)
    config = ParallelConfig(n=4, max_rounds=3, round_steps=1, prune_keep=3, aggregate="weighted",
                            sharing=SharingConfig())
    log = StepLog.create(meta={"strategy": "leap+verify", "n": 4, "question": "What is 6*7?", "gold": "42"},
                         directory=directory)
    asyncio.run(arun(lambda: QuestionEnvironment("What is 6*7?", gold="42"), client, strategy="leap+verify",
                     parallel=config, verifiers=[FixedScores({0: 0.9, 1: 0.6, 2: 0.8, 3: 0.1})], log=log))
    return log


def crash_run(directory: Path) -> StepLog:
    client = PerTrajectoryClient({0: [calc("6*7"), submit("42")], 1: [RuntimeError("GPU fell over")]})
    log = StepLog.create(directory=directory)
    asyncio.run(arun(lambda: QuestionEnvironment("6*7?"), client, strategy="majority", n=2, log=log))
    return log


def insert_raw(log: StepLog, trajectory_id: int, kind: str, record: str) -> None:
    """A row as some other writer (a newer peerstep, a broken disk) left it, bypassing validation."""
    with sqlite3.connect(log.path) as db:
        db.execute("INSERT INTO steps (step_id, episode_id, trajectory_id, kind, created_at, record) "
                   "VALUES (?, '0', ?, ?, ?, ?)", (f"raw{time.time_ns()}", trajectory_id, kind, time.time(), record))


def model_of(log: StepLog) -> dict[str, Any]:
    with StepLog.open(str(log.path)) as reader:
        return build_model(reader.meta(), reader.rows())


@pytest.fixture(scope="module")
def leap(tmp_path_factory: pytest.TempPathFactory) -> StepLog:
    return leap_run(tmp_path_factory.mktemp("runs"))


def shots() -> Path:
    path = Path(os.environ.get("PEERSTEP_SCREENSHOTS") or Path(tempfile.gettempdir()) / "peerstep-view-shots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


# --- the view model -------------------------------------------------------------------------------------------

def test_model_of_a_leap_run(leap: StepLog) -> None:
    model = model_of(leap)
    cols = {c["tid"]: c for c in model["columns"]}
    assert sorted(cols) == [0, 1, 2, 3]
    assert cols[3]["state"] == "pruned" and "pruned at round 1" in cols[3]["reason"]
    assert "score 0.10" in cols[3]["reason"]
    assert {t: cols[t]["answer"] for t in (0, 1, 2)} == {0: "42", 1: "48", 2: "42"}
    assert (cols[0]["correct"], cols[1]["correct"]) == (True, False)
    # one band per barrier; summaries and injections open the second round
    assert [b["round"] for b in model["bands"]] == [1, 2]
    assert model["segments"] == 3
    kinds = {(s["tid"], s["kind"], s["seg"]) for s in model["steps"]}
    assert (0, "summary", 1) in kinds and (0, "peer_inject", 1) in kinds
    # each injection links from its sources' summaries, with router and similarity
    summary_of = {s["tid"]: s["id"] for s in model["steps"] if s["kind"] == "summary"}
    injections = [s for s in model["steps"] if s["kind"] == "peer_inject"]
    assert sorted(s["tid"] for s in injections) == [0, 1, 2]
    assert len(model["links"]) == sum(len(s["sources"]) for s in injections) > 0
    for link in model["links"]:
        assert link["from"] == summary_of[link["src"]] and link["router"] == "dispersed"
        assert isinstance(link["sim"], float) and link["dst"] != link["src"]
    # tool results sit on their calls; verifier scores are badges on the step they judge
    calls = [s for s in model["steps"] if s["kind"] == "tool_call" and s["tid"] == 1]
    assert calls[0]["result"]["output"] == "48" and calls[0]["result"]["ok"] is True
    assert not [s for s in model["steps"] if s["kind"] in ("verify", "observation") and s.get("tool")]
    badges = [b["text"] for s in model["steps"] for b in s["badges"]]
    assert "fixed 0.10" in badges and "fixed 0.90" in badges
    vote = model["vote"]
    assert vote["answer"] == "42" and vote["method"] == "weighted" and vote["correct"] is True
    assert [(g["answer"], g["trajectories"], g["won"], g["correct"]) for g in vote["groups"]] == [
        ("42", [0, 2], True, True), ("48", [1], False, False)]
    json.dumps(model)  # plain JSON all the way down


def test_model_of_a_failed_trajectory_and_bad_rows(tmp_path: Path) -> None:
    log = crash_run(tmp_path)
    insert_raw(log, 0, "reason", "{not json")
    insert_raw(log, 1, "reason", '{"kind": "reason", "text": "no run id"}')
    judged = next(r for r in log.records(trajectory_id=0, kind=StepKind.REASON))
    insert_raw(log, 0, "label", json.dumps({"run_id": log.run_id, "trajectory_id": 0, "kind": "label",
                                            "parent_id": judged.step_id, "step_id": "lab1",
                                            "data": {"mc_n": 8, "mc_k": 6, "value": 0.75, "hard": 1,
                                                     "first_error": False}}))
    model = model_of(log)
    cols = {c["tid"]: c for c in model["columns"]}
    assert cols[1]["state"] == "failed" and "GPU fell over" in cols[1]["reason"]
    assert model["corrupt"] == 2
    corrupt = [s for s in model["steps"] if s["kind"] == "corrupt"]
    assert [s["tid"] for s in corrupt] == [0, 1] and all(s["err"] for s in corrupt)
    assert corrupt[0]["text"] == "{not json"
    labelled = next(s for s in model["steps"] if s["id"] == judged.step_id)
    assert [b["text"] for b in labelled["badges"]] == ["MC 6/8", "value 0.75", "hard ✓"]


def test_steplog_rows_keep_records_api(tmp_path: Path) -> None:
    """The tolerant reader is beside ``records()``, which still fails loudly for code that builds on records."""
    log = crash_run(tmp_path)
    good = len(list(log.records()))
    insert_raw(log, 0, "reason", "{not json")
    rows = list(log.rows())
    assert len(rows) == good + 1 and rows[-1].record is None and rows[-1].error
    assert [r.seq for r in log.rows(after=rows[-2].seq)] == [rows[-1].seq]
    with pytest.raises(ValueError):
        list(log.records())


# --- the page in Chromium --------------------------------------------------------------------------------------

def test_page_draws_columns_links_badges_vote_offline(leap: StepLog, tmp_path: Path) -> None:
    page = render_run(str(leap.path), out=tmp_path / "leap.html")
    model = model_of(leap)
    with chromium(offline=True) as driver:
        driver.get(file_url(page))
        heads = driver.find_elements("css selector", ".colhead")
        assert [h.get_attribute("data-tid") for h in heads] == ["0", "1", "2", "3"]
        greyed = driver.find_elements("css selector", ".colhead.greyed")
        assert [g.get_attribute("data-tid") for g in greyed] == ["3"] and "pruned at round 1" in greyed[0].text
        links = driver.find_elements("css selector", "svg#links path.link")
        assert sorted((p.get_attribute("data-src"), p.get_attribute("data-dst")) for p in links) == sorted(
            (str(link["src"]), str(link["dst"])) for link in model["links"])
        assert all(p.get_attribute("d").startswith("M") for p in links)
        assert driver.find_elements("css selector", "svg#links text.simlabel")
        badges = [b.text for b in driver.find_elements("css selector", ".badge")]
        assert "fixed 0.90" in badges and "fixed 0.10" in badges
        vote = driver.find_element("css selector", "#vote")
        assert "Vote (weighted): 42" in vote.text and "correct" in vote.text
        won = driver.find_element("css selector", "#vote .group.won")
        assert "T0 T2" in won.text
        assert len(driver.find_elements("css selector", ".band")) == 2
        # nothing was requested: the page and everything it uses is in the file
        assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
        driver.save_screenshot(str(shots() / "leap-scripted.png"))


def test_search_and_jump_to_error(tmp_path: Path) -> None:
    log = crash_run(tmp_path)
    insert_raw(log, 0, "reason", "{not json")
    page = render_run(str(log.path), out=tmp_path / "crash.html")
    with chromium() as driver:
        driver.get(file_url(page))
        box = driver.find_element("css selector", "#search")
        box.send_keys("6*7")
        # the reply that wrote the call, and the call
        assert wait_for(lambda: driver.find_element("css selector", "#hit-count").text == "2 matches")
        assert len(driver.find_elements("css selector", ".step.hit")) == 2
        box.send_keys("\n")
        box.send_keys("\n")
        assert driver.find_element("css selector", "#hit-count").text == "2 / 2"
        current = driver.find_element("css selector", ".step.current")
        assert current.get_attribute("data-kind") == "tool_call" and "6*7" in current.text
        assert driver.find_elements("css selector", ".step.current .detail")  # opened to show it
        jump = driver.find_element("css selector", "#next-error")
        assert jump.text == "next error (2)"
        jump.click()
        first = driver.find_element("css selector", ".step.current")
        assert first.get_attribute("data-kind") == "error" and "GPU fell over" in first.text
        jump.click()
        second = driver.find_element("css selector", ".step.current")
        assert second.get_attribute("data-kind") == "corrupt" and "{not json" in second.text
        assert driver.find_element("css selector", ".colhead.greyed").get_attribute("data-tid") == "1"


def test_hostile_model_output_is_text_not_markup(tmp_path: Path) -> None:
    log = StepLog.create(meta={"question": "<img src=x onerror=\"window.pwned='q'\">"}, directory=tmp_path)
    reply = "</script><script>window.pwned='reply'</script><img src=x onerror=\"window.pwned='img'\"> \u2028done"
    log.log(StepKind.REASON, text=reply)
    log.log(StepKind.TOOL_CALL, tool=ToolInfo(name="python", arguments={"code": "print('</script>')"},
                                              call_id="c1"))
    log.log(StepKind.OBSERVATION, tool=ToolInfo(name="python", call_id="c1", output="<b onmouseover=x>hi</b>",
                                                ok=True))
    page = render_run(log.run_id, out=tmp_path / "xss.html", directory=tmp_path)
    assert "</script><script>window" not in page.read_text()
    with chromium() as driver:
        driver.get(file_url(page))
        driver.find_element("css selector", "#expand-all").click()
        assert driver.execute_script("return window.pwned === undefined")
        assert not driver.find_elements("css selector", "#app img, #app script, [onerror], [onmouseover]")
        text = driver.find_element("css selector", ".step[data-kind='reason'] pre.text").text
        assert "<script>window.pwned='reply'</script>" in text and "onerror" in text
        assert "<img src=x" in driver.find_element("css selector", ".question").text
        assert "<b onmouseover=x>hi</b>" in driver.find_element("css selector", "pre.output").text


def test_eval_page_links_to_run_pages(leap: StepLog, tmp_path: Path) -> None:
    runs = leap.path.parent
    crashed = crash_run(runs)
    outcomes = [
        {"task_id": "t1", "index": 0, "strategy": "leap+verify", "n": 4, "answer": "42", "gold": "42",
         "correct": True, "tokens": 100, "tool_calls": 3, "seconds": 1.5, "run_id": leap.run_id, "steps": 8},
        {"task_id": "t2", "index": 1, "strategy": "majority", "n": 2, "answer": "42", "gold": "41", "correct": False,
         "tokens": 50, "tool_calls": 1, "seconds": 0.5, "run_id": crashed.run_id, "steps": 3},
        {"task_id": "t3", "index": 2, "strategy": "single", "n": 1, "answer": None, "gold": "1", "correct": False,
         "tokens": 0, "tool_calls": 0, "seconds": 0.1, "run_id": "19990101-000000-gone00", "steps": 0}]
    report = tmp_path / "out.json"
    report.write_text(json.dumps({"dataset": "toy", "model": "scripted", "seed": 0, "limit": 3, "summaries": [],
                                  "outcomes": outcomes}))
    page = render_eval(report, directory=runs)
    assert page == tmp_path / "out.html" and (tmp_path / "out.runs" / f"{leap.run_id}.html").exists()
    with chromium(offline=True) as driver:
        driver.get(file_url(page))
        rows = driver.find_elements("css selector", "#episodes tbody tr")
        assert len(rows) == 3
        links = driver.find_elements("css selector", "a.run-link")
        assert [a.text for a in links] == [leap.run_id, crashed.run_id]
        assert "not found" in rows[2].text
        driver.save_screenshot(str(shots() / "eval-scripted.png"))
        links[0].click()
        wait_for(lambda: driver.find_elements("css selector", ".colhead"))
        assert len(driver.find_elements("css selector", ".colhead")) == 4
        assert driver.find_element("css selector", "a.back").get_attribute("href").endswith("out.html")


def test_served_page_shows_records_appended_after_it_loaded(tmp_path: Path) -> None:
    log = StepLog.create(meta={"strategy": "single", "question": "live?"}, directory=tmp_path)
    log.log(StepKind.REASON, text="first thought")
    with serve(log.run_id, directory=tmp_path, interval=0.3) as server, chromium(offline=False) as driver:
        driver.get(server.url)

        def text(selector: str) -> str:  # read in one script: the page may redraw between a find and a read
            return str(driver.execute_script(
                "var e = document.querySelector(arguments[0]); return e ? e.textContent : ''", selector))

        assert "first thought" in text(".step")
        log.log(StepKind.REASON, text="a thought written after the page loaded")
        assert wait_for(lambda: "written after the page loaded" in text("#grid"))
        log.log(StepKind.FINAL, text="7")
        log.set_meta({"status": "done"})
        assert wait_for(lambda: "finished" in text("#live"))
        assert driver.execute_script("return document.querySelector('.colhead').dataset.state") == "done"
        polls = driver.execute_script("return performance.getEntriesByType('resource').length")
        time.sleep(1.0)  # stopped polling: no request after the run ended
        assert driver.execute_script("return performance.getEntriesByType('resource').length") == polls


def test_a_log_still_being_written_renders_what_is_there(tmp_path: Path) -> None:
    log = StepLog.create(meta={"strategy": "majority", "n": 2}, directory=tmp_path)
    log.log(StepKind.REASON, trajectory_id=0, text="working")
    model = model_of(log)
    assert model["run"]["status"] == "running" and model["columns"][0]["state"] == "running"
    page = render_run(str(log.path), out=tmp_path / "partial.html")
    with chromium() as driver:
        driver.get(file_url(page))
        assert "still running" in driver.find_element("css selector", ".note").text


# --- the command ---------------------------------------------------------------------------------------------

def test_cli_writes_next_to_the_run_and_fails_in_one_line(leap: StepLog, tmp_path: Path) -> None:
    result = runner.invoke(app, ["view", leap.run_id, "--dir", str(leap.path.parent)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(leap.path.with_suffix(".html"))
    missing = runner.invoke(app, ["view", "no-such-run", "--dir", str(tmp_path)])
    assert missing.exit_code == 1 and "no run 'no-such-run'" in missing.output
    assert len(missing.output.strip().splitlines()) == 1 and "Traceback" not in missing.output
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    wrong = runner.invoke(app, ["view", "--eval", str(bad)])
    assert wrong.exit_code == 2 and "not an eval report" in wrong.output
    notdb = tmp_path / "junk.sqlite"
    notdb.write_text("this is not a database" * 100)
    junk = runner.invoke(app, ["view", str(notdb)])
    assert junk.exit_code == 1 and "junk" in junk.output and "Traceback" not in junk.output
    neither = runner.invoke(app, ["view"])
    assert neither.exit_code == 2


def test_budget_events_and_run_errors(tmp_path: Path) -> None:
    """Budget events show as such on the column; a run-level error is a run event."""
    log = StepLog.create(directory=tmp_path)
    log.append(StepRecord(run_id=log.run_id, kind=StepKind.BUDGET, text="max_steps (3) reached"))
    log.log(StepKind.ERROR, trajectory_id=-1, text="RuntimeError: boom")
    model = model_of(log)
    assert [s["line"] for s in model["steps"]] == ["budget: max_steps (3) reached"]
    assert model["steps"][0]["budget"] is True
    assert model["events"][0]["err"] and "boom" in model["events"][0]["line"]
    page = render_run(log.run_id, out=tmp_path / "events.html", directory=tmp_path)
    with chromium() as driver:
        driver.get(file_url(page))
        assert "budget" in driver.find_element("css selector", ".step.budget").text
        driver.find_element("css selector", "#next-error").click()
        current = driver.find_element("css selector", ".event.current")
        assert "RuntimeError: boom" in current.text and current.find_elements("css selector", ".detail")


def test_a_wide_long_run_stays_usable(tmp_path: Path) -> None:
    """64 trajectories, 2,048 steps: narrow columns, later rounds folded to a line, and a jump to an error in a
    folded round opens it and shows the error."""
    log = StepLog.create(meta={"strategy": "leap", "n": 64}, directory=tmp_path)
    for rnd in range(1, 5):
        for tid in range(64):
            for i in range(8):
                log.log(StepKind.REASON, trajectory_id=tid, text=f"round {rnd} step {i} of T{tid}: thinking")
        log.log(StepKind.BARRIER, trajectory_id=-1, data={"round": rnd, "active": list(range(64)), "finished": []})
    log.log(StepKind.ERROR, trajectory_id=63, text="the sandbox ran out of memory")
    page = render_run(log.run_id, out=tmp_path / "wide.html", directory=tmp_path)
    with chromium() as driver:
        driver.get(file_url(page))
        assert len(driver.find_elements("css selector", ".colhead")) == 64
        assert driver.find_element("css selector", ".colhead").size["width"] == 190  # narrow columns
        folded = driver.find_elements("css selector", ".folded")
        assert folded and "512 steps" in folded[0].text
        assert len(driver.find_elements("css selector", ".step")) < 2048
        assert not driver.find_elements("css selector", ".step.err")
        driver.find_element("css selector", "#next-error").click()
        current = driver.find_element("css selector", ".step.current")
        assert "ran out of memory" in current.text and current.is_displayed()
        assert driver.execute_script(
            "var r = arguments[0].getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight "
            "&& r.left >= 0 && r.right <= innerWidth", current)
        driver.save_screenshot(str(shots() / "wide-64.png"))
