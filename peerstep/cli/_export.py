"""``peerstep export``: recorded runs to other tools' formats. One command; each format is an exporter module."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from peerstep._errors import PeerstepError

err = Console(stderr=True, highlight=False)
FORMATS = ("otlp", "inspect", "trl-prm", "math-shepherd", "prm800k", "openai-chat")


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def export(
    runs: Annotated[list[str] | None, typer.Argument(help="Run ids (or unique prefixes).")] = None,
    eval_path: Annotated[Path | None, typer.Option("--eval", help="Export every episode's run of this eval "
                                                                  "(its OUT.json).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help=f"One of: {', '.join(FORMATS)}.")] = "otlp",
    out: Annotated[Path | None, typer.Option("--out", help="File or directory to write (file formats).")] = None,
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="OTLP/HTTP traces endpoint (otlp), e.g. "
                                                                    "http://127.0.0.1:6006/v1/traces.")] = None,
    directory: Annotated[Path | None, typer.Option("--dir", help="Runs directory.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")] = False,
) -> None:
    """Export runs (or an eval's runs) as OpenTelemetry traces or Inspect AI logs."""
    from peerstep.export import select_runs

    if fmt not in FORMATS:
        err.print(f"[bold red]error:[/bold red] unknown format {fmt!r}; one of: {', '.join(FORMATS)}")
        raise typer.Exit(2)
    try:
        run_ids = select_runs(list(runs or []), eval_path)
        if fmt in ("trl-prm", "math-shepherd", "prm800k", "openai-chat"):  # process supervision (step labels)
            from peerstep.export._prm import export_prm

            path, rows = export_prm(run_ids, fmt, out, force=force, runs_dir=directory)
            err.print(f"wrote {rows} {fmt} rows to {path}", soft_wrap=True)
            return
        raise PeerstepError(f"export --format {fmt} is not built yet ({len(run_ids)} runs selected)")
    except PeerstepError as exc:
        err.print(f"[bold red]error:[/bold red] {exc}")
        raise typer.Exit(1) from exc
