"""The eval report as one self-contained HTML page: the table, the plots inline as SVG, paired comparisons,
and the per-task outcome grid. No script, no stylesheet or font from anywhere else: the file opens offline
and can be mailed or attached as it is. Every piece of text from a report is escaped.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from peerstep._errors import InputError
from peerstep.evals._plots import PAGE_FIGURES, STATUS_COLOURS, svg
from peerstep.evals._pool import PooledReport

MARKS = {"correct": "✓", "wrong": "✗", "error": "!", "missing": "·"}
CAPTIONS = {
    "accuracy": "Accuracy with its Wilson 95% interval, per strategy; one panel per dataset and, with several, "
                "all pooled. The numbers are correct / episodes.",
    "frontier": "The cost frontier: accuracy against generated tokens per episode (log scale); up and to the left "
                "is better. Each label gives cost-of-pass, tokens per correct answer. Hollow points are the "
                "bare-model baselines. In the pooled panel a strategy's point covers only the datasets it ran (the "
                "table says which), so compare strategies there only where they ran the same ones.",
    "tool-calls": "Tool calls per episode (every trajectory of an episode counted), per strategy over all "
                  "datasets: the box spans the middle half, each dot is one episode.",
}

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;margin:24px auto;
 max-width:1200px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sources{color:#555;margin:0 0 8px;padding-left:18px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:4px 8px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th{background:#f6f6f6;font-weight:600;white-space:normal;vertical-align:bottom}
.results th,.comparisons th{max-width:96px}
td.name,th.name{text-align:left}
.where small{color:#666;font-weight:400}
tr.baseline td{color:#555;font-style:italic}
tr.pooled td{font-weight:600}
tr:not(.pooled)+tr.pooled td{border-top:2px solid #bbb}
figure{margin:12px 0 24px}figcaption{color:#555;font-size:13px;max-width:900px}
figure svg{max-width:100%;height:auto}
.p-low{color:#0a7d32;font-weight:600}
.note{color:#8a5a00}
.grid td.cell{width:28px;min-width:28px;text-align:center;padding:2px 0;border:1px solid #fff;font-size:12px}
.grid th.strategy{writing-mode:vertical-rl;transform:rotate(180deg);text-align:left;padding:6px 2px;
 font-weight:600;font-size:12px}
.grid td.task{font-family:ui-monospace,monospace;font-size:12px;text-align:left;padding:1px 8px}
.grid tr.dataset th{text-align:left;background:#fff;padding-top:10px}
.legend span{display:inline-block;padding:1px 8px;margin-right:6px;border-radius:3px}
.scroll{overflow-x:auto}
"""


def _status_css() -> str:
    text = {"correct": "#fff", "wrong": "#fff", "error": "#222", "missing": "#777"}
    return "".join(f".{s}{{background:{c};color:{text[s]}}}" for s, c in STATUS_COLOURS.items())


def _results_table(report: PooledReport) -> str:
    head = ("<tr><th class='name'>dataset</th><th class='name'>strategy</th><th>correct</th><th>accuracy</th>"
            "<th>95% CI</th><th>tokens / episode</th><th>tool calls / episode</th><th>s / episode</th>"
            "<th>tokens per correct</th><th>errors</th></tr>")
    body = []
    for r in report.rows():
        s = r.summary
        classes = " ".join(c for c in ("baseline" if r.baseline else "", "pooled" if r.dataset == "all" else "") if c)
        where = (f"<span title='pooled over {escape(' + '.join(r.datasets))}'>all <small>"
                 f"({len(r.datasets)} of {len(report.datasets)} datasets)</small></span>" if r.dataset == "all"
                 else escape(r.dataset))
        per = f"{s.tokens_per_correct:,.0f}" if s.tokens_per_correct is not None else "—"
        if s.dollars_per_correct is not None:
            per += f" (${s.dollars_per_correct:.4f})"
        body.append(
            f"<tr class='{classes}' data-dataset='{escape(r.dataset)}' data-strategy='{escape(r.label)}'>"
            f"<td class='name where'>{where}</td><td class='name'>{escape(r.label)}"
            f"{' (baseline)' if r.baseline else ''}</td>"
            f"<td>{s.correct}/{s.episodes}</td><td>{s.accuracy:.0%}</td><td>{s.ci_low:.0%}–{s.ci_high:.0%}</td>"
            f"<td>{s.mean_tokens:,.0f}</td><td>{s.mean_tool_calls:.1f}</td><td>{s.mean_seconds:.1f}</td>"
            f"<td>{escape(per)}</td><td>{s.errors}</td></tr>")
    return (f"<div class='scroll'><table class='results'><thead>{head}</thead><tbody>{''.join(body)}</tbody>"
            "</table></div>")


def _comparisons(report: PooledReport) -> str:
    comparisons = report.comparisons()
    if not comparisons:
        return "<p>No two strategies ran the same tasks.</p>"
    rows = []
    for c in comparisons:
        p = c.p_value
        rows.append(f"<tr><td class='name'>{escape(c.a)}</td><td class='name'>{escape(c.b)}</td><td>{c.tasks}</td>"
                    f"<td>{c.wins}</td><td>{c.losses}</td><td>{c.both}</td><td>{c.neither}</td>"
                    f"<td class='{'p-low' if p < 0.05 else ''}'>{p:.3g}</td></tr>")
    return ("<p>Each pair on the tasks both ran (paired by dataset and task id). Only the tasks one got right and "
            "the other wrong tell them apart; the exact McNemar test asks how likely a split at least this "
            "uneven is if neither is better (two-sided binomial, p &lt; 0.05 in green; not corrected for the "
            "number of pairs compared).</p>"
            "<table class='comparisons'><thead><tr><th class='name'>A</th><th class='name'>B</th>"
            "<th>paired tasks</th><th>A right, B wrong</th><th>B right, A wrong</th><th>both right</th>"
            "<th>both wrong</th><th>exact McNemar p</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _grid(report: PooledReport) -> str:
    names = report.labels
    head = "<tr><th class='name'>task</th>" + "".join(
        f"<th class='strategy' data-strategy='{escape(n)}'>{escape(n)}</th>" for n in names) + "</tr>"
    body = []
    current = None
    for task in report.tasks:
        if task[0] != current:
            current = task[0]
            body.append(f"<tr class='dataset'><th colspan='{len(names) + 1}'>{escape(current)}</th></tr>")
        cells = []
        for name in names:
            status = report.status(task, name)
            o = report.outcome(task, name)
            tip = (f"{name} on {task[1]}: {status}" if o is None else
                   f"{name} on {task[1]}: {status}; answer {o.answer!r}, gold {o.gold!r}; {o.tokens} tokens, "
                   f"{o.tool_calls} tool calls; run {o.run_id}" + (f"; {o.error}" if o.error else ""))
            cells.append(f"<td class='cell {status}' data-strategy='{escape(name)}' title='{escape(tip)}'>"
                         f"{MARKS[status]}</td>")
        body.append(f"<tr class='task' data-dataset='{escape(task[0])}' data-task='{escape(task[1])}'>"
                    f"<td class='task'>{escape(task[1])}</td>{''.join(cells)}</tr>")
    legend = "".join(f"<span class='{s}'>{MARKS[s]} {s}</span>" for s in STATUS_COLOURS)
    return (f"<p class='legend'>{legend} — hover a cell for the answer, the gold answer and the run id "
            "(<code>peerstep show RUN</code>).</p>"
            f"<div class='scroll'><table class='grid'><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"
            "</div>")


def render(report: PooledReport, title: str = "Eval report") -> str:
    sources = "".join(f"<li>{escape(s.dataset)}: {escape(s.model)}, {s.limit} tasks, seed {s.seed}"
                      f"<span class='note'>{escape(s.note)}</span> — <code>{escape(s.path)}</code></li>"
                      for s in report.sources)
    replaced = (f"<p class='note'>{report.replaced} episodes appear in more than one file; the later file's "
                "are shown.</p>" if report.replaced else "")
    figures = "".join(f"<figure class='plot' id='plot-{name}'>{svg(draw(report))}"
                      f"<figcaption>{escape(CAPTIONS[name])}</figcaption></figure>"
                      for name, draw in PAGE_FIGURES.items())
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{escape(title)}</title><style>{_CSS}{_status_css()}</style></head><body>"
            f"<h1>{escape(title)}</h1><ul class='sources'>{sources}</ul>{replaced}"
            "<h2>Results</h2><p>Accuracy with a Wilson 95% interval; tokens are generated tokens (every trajectory); "
            "tokens per correct is cost-of-pass. Baselines (the bare model, no framework) in italics.</p>"
            f"{_results_table(report)}"
            f"<h2>Plots</h2>{figures}"
            f"<h2>Paired comparisons</h2>{_comparisons(report)}"
            f"<h2>Per task</h2>{_grid(report)}"
            "</body></html>")


def write_html(report: PooledReport, path: Path, title: str = "Eval report") -> Path:
    """Render and write the page; an unwritable path is an InputError, not a traceback."""
    page = render(report, title)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot write the report ({exc.strerror})") from None
    return path
