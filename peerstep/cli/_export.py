"""``peerstep export``: recorded runs to other tools' formats. One command; each format is an exporter module."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

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
    hf_dataset: Annotated[bool, typer.Option("--hf-dataset", help="trl-prm, math-shepherd, prm800k, openai-chat: "
                                                                  "write --out as a Hugging Face datasets "
                                                                  "directory (save_to_disk; open it with "
                                                                  "datasets.load_from_disk) instead of JSONL.")]
    = False,
) -> None:
    """Export runs (or an eval's runs) as OpenTelemetry traces, Inspect AI logs or process-supervision datasets
    (trl-prm, math-shepherd, prm800k, openai-chat: from the runs' step labels, see `peerstep label`)."""
    from peerstep.export import select_runs

    if fmt not in FORMATS:
        err.print(f"[bold red]error:[/bold red] unknown format {fmt!r}; one of: {', '.join(FORMATS)}")
        raise typer.Exit(2)
    if hf_dataset and fmt in ("otlp", "inspect"):
        err.print(f"[bold red]error:[/bold red] --hf-dataset writes the process-supervision formats; not {fmt}")
        raise typer.Exit(2)
    try:
        run_ids = select_runs(list(runs or []), eval_path)
        if fmt == "inspect":
            from peerstep.export import export_inspect

            paths = export_inspect(run_ids, out, directory, eval_path)
            print("\n".join(str(p) for p in paths))
            err.print(f"open them with: inspect view --log-dir {paths[0].parent}")
            return
        if fmt == "otlp":
            from peerstep.export import export_otlp

            sent = export_otlp(run_ids, endpoint, directory)
            err.print(f"sent {len(sent)} run(s) as traces ({sum(sent.values())} spans) to {endpoint}")
            return
        from peerstep.export._prm import export_prm  # the rest: process supervision (step labels)

        path, rows = export_prm(run_ids, fmt, out, force=force, runs_dir=directory, hf_dataset=hf_dataset)
        where = "the datasets directory " if hf_dataset else ""
        err.print(f"wrote {rows} {fmt} rows to {where}{path}", soft_wrap=True)
    except PeerstepError as exc:
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from exc
