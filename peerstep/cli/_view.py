"""``peerstep view``: a run (or an eval) as one self-contained HTML page, or served live while it runs."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from peerstep._errors import InputError, PeerstepError

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("view")(view)


def view(
    run: Annotated[str | None, typer.Argument(help="Run id (or unique prefix, or path to the .sqlite file).")] = None,
    eval_path: Annotated[Path | None, typer.Option("--eval", help="An eval's OUT.json: a table of its episodes, "
                                                                  "each linking to its run's page.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="The HTML file to write (default: next to the run, "
                                                           "RUNS/ID.html; for --eval, OUT.html).")] = None,
    open_: Annotated[bool, typer.Option("--open", help="Open the page in the system browser, if there is one.")]
    = False,
    serve_: Annotated[bool, typer.Option("--serve", help="Serve the page on 127.0.0.1 instead; it refreshes while "
                                                         "the run is running (Ctrl-C stops).")] = False,
    port: Annotated[int, typer.Option("--port", help="Port for --serve (0: a free one).", min=0, max=65535)] = 0,
    directory: Annotated[Path | None, typer.Option("--dir", help="Runs directory.")] = None,
) -> None:
    """Write a run's trace as one self-contained HTML page (or serve it live) and print where it is."""
    from peerstep.view import render_eval, render_run, serve

    if (run is None) == (eval_path is None):
        _fail("give a run id or --eval OUT.json (one of them)", 2)
    if serve_ and eval_path is not None:
        _fail("--serve shows one run; for an eval, write its page (without --serve)", 2)
    try:
        if serve_:
            assert run is not None
            server = serve(run, directory, port=port)
            console.print(f"serving run {run} at {server.url} (Ctrl-C stops)")
            if open_:
                _open(server.url)
            try:
                server.wait()
            except KeyboardInterrupt:
                pass  # Ctrl-C is how the server is meant to end
            finally:
                server.close()
            return
        path = render_eval(eval_path, out, directory) if eval_path is not None \
            else render_run(str(run), out, directory)
    except InputError as exc:
        _fail(str(exc), 2)
    except PeerstepError as exc:
        _fail(str(exc))
    print(path)
    if open_:
        _open(path.resolve().as_uri())


def _open(url: str) -> None:
    """Open ``url`` in a graphical browser; without a display, say so instead of starting a text browser."""
    import webbrowser

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        err.print(f"[yellow]no display to open a browser on; open {url} yourself[/yellow]")
        return
    if not webbrowser.open(url):
        err.print(f"[yellow]no system browser found; open {url} yourself[/yellow]")


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/bold red] {message}", soft_wrap=True)  # one line, however long
    raise typer.Exit(code)
