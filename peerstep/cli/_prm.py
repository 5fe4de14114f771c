"""``peerstep prm train|init-tiny``: train a process reward model on a trl-prm export (``peerstep.prm``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from peerstep._errors import PeerstepError

err = Console(stderr=True, highlight=False)
prm_app = typer.Typer(no_args_is_help=True, help="Process reward models: train one on `peerstep export --format "
                                                  "trl-prm` rows, then score runs with --verifier prm:DIR.")


def register(app: typer.Typer) -> None:
    app.add_typer(prm_app, name="prm")


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/bold red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


@prm_app.command("train")
def train(
    dataset: Annotated[Path, typer.Argument(help="A trl-prm export: its JSON-lines file or a `datasets` directory.")],
    base: Annotated[str, typer.Option("--base", help="The base model: a local directory (e.g. from `peerstep prm "
                                                     "init-tiny`) or, with network, a hub id.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the trained checkpoint.")],
    steps: Annotated[int, typer.Option("--steps", help="Optimizer steps.", min=1)] = 100,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate (TRL's default 1e-5 suits a real base; the tiny "
                                                   "one needs ~1e-3).")] = 1e-5,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Rows per step.", min=1)] = 4,
    max_length: Annotated[int, typer.Option("--max-length", help="Tokens per row (longer rows are cut).", min=16)]
    = 2048,
    seed: Annotated[int, typer.Option(help="Training seed.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it is not empty.")] = False,
) -> None:
    """Train a token-classification PRM with TRL's PRMTrainer (one label per step, on the step separator)."""
    from peerstep.prm import train_prm

    try:
        result = train_prm(dataset, base, out, steps=steps, lr=lr, batch_size=batch_size, max_length=max_length,
                           seed=seed, force=force)
    except PeerstepError as exc:
        _fail(str(exc))
    losses = result.losses
    trend = f"loss {losses[0]:.4f} → {losses[-1]:.4f}" if losses else "no loss logged"
    err.print(f"trained {result.steps} steps on {result.rows} rows in {result.seconds:.1f} s, {trend}; checkpoint "
              f"{result.out} (use it with --verifier prm:{result.out})", soft_wrap=True)


@prm_app.command("init-tiny")
def init_tiny_command(
    out: Annotated[Path, typer.Argument(help="Directory for the tiny base model and its tokenizer.")],
    texts: Annotated[Path | None, typer.Option("--texts", help="A trl-prm export whose text trains the tokenizer "
                                                               "(default: bytes only).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUT if it is not empty.")] = False,
) -> None:
    """Build a tiny PRM base offline (2 layers, hidden 48): proves the pipeline on CPU, not PRM quality."""
    from peerstep.prm import init_tiny, load_rows

    try:
        corpus: list[str] = []
        if texts is not None:
            corpus = [r["prompt"] + "\n" + "\n".join(r["completions"]) for r in load_rows(texts)]
        path = init_tiny(out, corpus, force=force)
    except PeerstepError as exc:
        _fail(str(exc))
    err.print(f"wrote a tiny PRM base to {path}", soft_wrap=True)
