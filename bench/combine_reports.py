"""One markdown table from several ``peerstep eval --out`` reports: a row per dataset and strategy, plus totals.

    .venv/bin/python bench/combine_reports.py bench/results/eval-*.json

The totals pool every episode of a strategy across the datasets (accuracy with a Wilson 95% interval,
mean tokens and tool calls per episode), so strategies compare on one line each.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from peerstep.evals import EvalReport, StrategySummary, summarize


def _row(label: str, strategy: str, s: StrategySummary) -> str:
    name = strategy if s.n == 1 else f"{strategy}@{s.n}"
    per = f"{s.tokens_per_correct:,.0f}" if s.tokens_per_correct is not None else "—"
    return (f"| {label} | {name} | {s.correct}/{s.episodes} = {s.accuracy:.0%} ({s.ci_low:.0%}–{s.ci_high:.0%}) "
            f"| {s.mean_tokens:,.0f} | {s.mean_tool_calls:.1f} | {s.mean_seconds:.0f} | {per} |")


def combined_markdown(reports: list[EvalReport]) -> str:
    lines = ["| dataset | strategy | accuracy (95% CI) | tokens / episode | tool calls / episode | s / episode "
             "| tokens per correct |", "|---|---|---|---|---|---|---|"]
    for report in reports:
        for s in report.summaries:
            lines.append(_row(f"{report.dataset} ({report.limit})", s.strategy, s))
    strategies = list(dict.fromkeys(s.strategy for r in reports for s in r.summaries))
    for strategy in strategies:
        outcomes = [o for r in reports for o in r.outcomes if o.strategy == strategy]
        datasets = [r.dataset for r in reports if any(s.strategy == strategy for s in r.summaries)]
        pooled = summarize(outcomes, strategy, wall_seconds=0.0, price_per_mtok=None)
        lines.append(_row(f"**all** ({'+'.join(datasets)})", strategy, pooled))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path)
    args = parser.parse_args()
    reports = [EvalReport.model_validate_json(p.read_text()) for p in args.reports]
    for r in reports:
        print(f"{r.dataset}: {r.model}, {r.limit} tasks, seed {r.seed}" + (" (interrupted)" if r.interrupted else ""))
    print()
    print(combined_markdown(reports))


if __name__ == "__main__":
    main()
