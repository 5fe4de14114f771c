"""``--trace-to URL`` of ``solve``, ``run``, ``eval`` and ``chat``: each run is sent as an OpenTelemetry trace when
it ends (``peerstep.export.trace_to``, a hook in the one runner). A bad URL or a missing ``otel`` extra fails before
any run starts; a server that goes down later costs a warning line per run, never the run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from peerstep._errors import PeerstepError

err = Console(stderr=True, highlight=False)

TraceToOpt = Annotated[str | None, typer.Option(
    "--trace-to", metavar="URL", help="Send each run, when it ends, as an OpenTelemetry trace to this OTLP/HTTP "
    "endpoint, e.g. http://127.0.0.1:6006/v1/traces (Phoenix); a server that is down never fails the run.")]


@contextlib.contextmanager
def tracing(url: str | None) -> Iterator[None]:
    """Inside, every run is traced to ``url`` (nothing when None)."""
    if url is None:
        yield
        return
    from peerstep.export import trace_to
    from peerstep.export._otlp import check_tracing

    try:
        check_tracing(url)
    except PeerstepError as exc:
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    def warn(message: str) -> None:
        err.print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True)

    with trace_to(url, warn=warn):
        yield
