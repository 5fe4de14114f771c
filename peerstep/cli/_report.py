"""``peerstep report OUT.json…``: finished evals as one table, paired comparisons, and an HTML page with plots."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from peerstep._errors import PeerstepError

if TYPE_CHECKING:
    from peerstep.evals import PooledReport

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def write_outputs(pooled: PooledReport, html: Path | None, png: Path | None) -> None:
    """The page and the PNGs asked for (shared with ``peerstep eval --report``)."""
    from peerstep.evals._html import write_html
    from peerstep.evals._plots import write_pngs
    if html is not None:
        console.print(f"[dim]report: {write_html(pooled, html)}[/dim]")
    if png is not None:
        written = write_pngs(pooled, png)
        console.print(f"[dim]plots: {', '.join(str(p) for p in written)}[/dim]")


def report(
    reports: Annotated[list[Path], typer.Argument(help="OUT.json files of `peerstep eval --out`; several are "
                                                       "pooled, tasks paired by (dataset, task id).")],
    out: Annotated[Path | None, typer.Option("--out", help="Write the report as one self-contained HTML page "
                                                           "(plots inline, no network).")] = None,
    png: Annotated[Path | None, typer.Option("--png", help="Write each plot as a print-resolution PNG into this "
                                                           "directory.")] = None,
) -> None:
    """Finished evals as one report: results table, paired comparisons (exact McNemar), plots, per-task grid."""
    from peerstep.evals import load_reports

    try:
        pooled = load_reports(reports)
        if out is not None or png is not None:
            from peerstep.evals._plots import require_matplotlib

            require_matplotlib()
        console.print(pooled.markdown(), markup=False, soft_wrap=True)
        write_outputs(pooled, out, png)
    except PeerstepError as exc:
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}", soft_wrap=True)  # one line, however long the path
        raise typer.Exit(2) from None
