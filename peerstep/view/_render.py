"""Reading a run (tolerantly) and writing its page; an eval's table of episodes with a page per episode."""

from __future__ import annotations

import html
import sqlite3
from pathlib import Path
from typing import Any

from peerstep._errors import PeerstepError
from peerstep.evals import EpisodeOutcome, StrategySummary, load_eval
from peerstep.registry import strategy_label
from peerstep.steplog import StepLog, StepLogError
from peerstep.view._html import page, static_page
from peerstep.view._model import build_model


def open_run(run: str, directory: Path | None = None) -> StepLog:
    """The run's log by id, unique prefix or path; a file that is not a step log is a one-line error."""
    try:
        return StepLog.open(run, directory)
    except sqlite3.Error as exc:  # e.g. "file is not a database", raised while settling the status
        raise StepLogError(f"cannot read run {run!r}: {exc}") from exc


def read_meta(log: StepLog) -> dict[str, Any]:
    """The run's meta; a meta table that cannot be read leaves the page with what the rows say."""
    try:
        return log.meta()
    except (sqlite3.Error, ValueError) as exc:
        return {"run_id": log.run_id, "status": "unknown", "status_reason": f"meta unreadable: {exc}"}


def run_model(log: StepLog, live: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        rows = list(log.rows())
    except sqlite3.Error as exc:
        raise StepLogError(f"cannot read the steps of run {log.run_id}: {exc}") from exc
    model = build_model({"run_id": log.run_id, **read_meta(log)}, rows)
    if live is not None:
        model["live"] = live
    return model


def run_page(model: dict[str, Any]) -> str:
    return page(f"peerstep run {model['run'].get('run_id')}", model)


def write(path: Path, text: str) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise PeerstepError(f"cannot write {path}: {exc.strerror or exc}; choose another place with --out") from exc
    return path


def render_run(run: str, out: Path | None = None, directory: Path | None = None) -> Path:
    """Write the run's page (default: next to its log, ``RUNS/ID.html``) and return its path."""
    with open_run(run, directory) as log:
        model = run_model(log)
        target = out or log.path.with_suffix(".html")
    return write(target, run_page(model))


def _load_eval(path: Path) -> tuple[dict[str, Any], list[StrategySummary], list[EpisodeOutcome]]:
    report, outcomes = load_eval(path)
    if report is None:
        return {}, [], outcomes
    head = report.model_dump(include={"dataset", "model", "seed", "limit", "interrupted", "aborted"})
    return head, report.summaries, outcomes


_EVAL_SCRIPT = """
document.getElementById('filter').addEventListener('input', function (e) {
  var q = e.target.value.toLowerCase(), rows = document.querySelectorAll('table.episodes tbody tr');
  for (var i = 0; i < rows.length; i++) rows[i].hidden = q && rows[i].textContent.toLowerCase().indexOf(q) < 0;
});
"""


def render_eval(eval_path: Path, out: Path | None = None, directory: Path | None = None) -> Path:
    """Write an eval's page (default ``OUT.html`` next to ``OUT.json``): its summaries and a table of episodes,
    each linking to its run's page, written in ``OUT.runs/`` next to it. An episode whose run is gone is listed
    without a link, saying so."""
    head, summaries, outcomes = _load_eval(eval_path)
    target = out or eval_path.with_suffix(".html")
    runs_dir = target.with_suffix(".runs")
    links: dict[str, str | None] = {}
    for outcome in outcomes:
        if outcome.run_id in links:
            continue
        try:
            with open_run(outcome.run_id, directory) as log:
                model = run_model(log)
            model["back"] = {"href": f"../{target.name}", "text": f"eval {eval_path.name}"}
            write(runs_dir / f"{outcome.run_id}.html", run_page(model))
            links[outcome.run_id] = f"{runs_dir.name}/{outcome.run_id}.html"
        except StepLogError:
            links[outcome.run_id] = None
    return write(target, static_page(f"peerstep eval {eval_path.name}",
                                     _eval_body(eval_path, head, summaries, outcomes, links), _EVAL_SCRIPT))


def _cell(value: Any, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<td{attr}>{html.escape('' if value is None else str(value))}</td>"


def _eval_body(path: Path, head: dict[str, Any], summaries: list[StrategySummary], outcomes: list[EpisodeOutcome],
               links: dict[str, str | None]) -> str:
    e = html.escape
    title = f"eval {path.name}"
    if head.get("dataset"):
        title += f": {head['dataset']}, {head.get('model')}, {head.get('limit')} tasks, seed {head.get('seed')}"
    parts = [f"<div class=\"page\"><header class=\"top\"><h1>{e(title)}</h1>"]
    if head.get("interrupted") or head.get("aborted"):
        parts.append(f"<div class=\"note\">{e('stopped early: ' + str(head.get('aborted') or 'interrupted'))}"
                     "; finished episodes only</div>")
    missing = sum(1 for o in outcomes if links.get(o.run_id) is None)
    if missing:
        parts.append(f"<div class=\"note\">{missing} episode run(s) not found in the runs directory; listed "
                     "without a link</div>")
    parts.append("</header>")
    if summaries:
        parts.append("<table class=\"episodes summaries\"><thead><tr><th>strategy</th><th class=num>accuracy</th>"
                     "<th class=num>95% CI</th><th class=num>episodes</th><th class=num>tokens / episode</th>"
                     "<th class=num>tool calls / episode</th><th class=num>s / episode</th><th class=num>errors</th>"
                     "</tr></thead><tbody>")
        for s in summaries:
            label = strategy_label(s.strategy, s.n)
            parts.append("<tr>" + _cell(label) + _cell(f"{s.correct}/{s.episodes} = {s.accuracy:.0%}", "num")
                         + _cell(f"{s.ci_low:.0%}–{s.ci_high:.0%}", "num") + _cell(s.episodes, "num")
                         + _cell(f"{s.mean_tokens:,.0f}", "num") + _cell(f"{s.mean_tool_calls:.1f}", "num")
                         + _cell(f"{s.mean_seconds:.1f}", "num") + _cell(s.errors, "num") + "</tr>")
        parts.append("</tbody></table>")
    parts.append("<div class=\"filter\"><input id=\"filter\" type=\"search\" placeholder=\"filter episodes (task, "
                 "strategy, answer, ✗ for wrong)\" size=\"48\"></div>")
    parts.append("<table class=\"episodes\" id=\"episodes\"><thead><tr><th>task</th><th>strategy</th><th>answer</th>"
                 "<th>gold</th><th>ok</th><th class=num>tokens</th><th class=num>tool calls</th>"
                 "<th class=num>model calls</th><th class=num>seconds</th><th>run</th><th>error</th></tr></thead>"
                 "<tbody>")
    for o in outcomes:
        href = links.get(o.run_id)
        run = (f"<td><a class=\"run-link\" href=\"{e(href)}\">{e(o.run_id)}</a></td>" if href
               else f"<td class=\"muted\">{e(o.run_id)} (not found)</td>")
        label = strategy_label(o.strategy, o.n)
        parts.append(f"<tr class=\"{'right' if o.correct else 'wrong'}\">" + _cell(o.task_id) + _cell(label)
                     + _cell(o.answer) + _cell(o.gold) + _cell("✓" if o.correct else "✗", "ok")
                     + _cell(o.tokens, "num") + _cell(o.tool_calls, "num") + _cell(o.steps, "num")
                     + _cell(f"{o.seconds:.1f}", "num") + run + _cell(o.error) + "</tr>")
    parts.append("</tbody></table></div>")
    return "".join(parts)

