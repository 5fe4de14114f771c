"""``peerstep index``: build search indexes from your own documents, list them, and try a query.

Registered by the main CLI as ``app.add_typer(index_app, name="index")``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from peerstep._errors import PeerstepError

index_app = typer.Typer(no_args_is_help=True, help="Search indexes: build one from your documents, list them.")
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)

DirOpt = Annotated[Path | None, typer.Option("--dir", help="Index directory (default: $PEERSTEP_HOME/search, "
                                                           "i.e. ~/.cache/peerstep/search).")]


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/bold red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(1)


def _default_name(path: Path) -> str:
    """An index name from a corpus path: the folder name or file stem, reduced to safe characters."""
    stem = path.resolve().name if path.is_dir() else path.stem
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.")[:100] or "index"


@index_app.command()
def build(
    path: Annotated[str, typer.Argument(help="A folder of .txt/.md files, a JSONL file of {id, title, text} lines, "
                                             "or 'wikipedia' for the offline Wikipedia summaries.")],
    name: Annotated[str | None, typer.Option("--name", help="Index name (default: the folder or file name).")] = None,
    directory: DirOpt = None,
) -> None:
    """Index documents for the search tool; an existing index of the same name is replaced only on success."""
    from peerstep.tools.search import Corpus, WikipediaCorpus, build_fts5_index, index_path, load_corpus

    corpus: Corpus
    try:
        if path == "wikipedia" and not Path(path).exists():
            corpus = WikipediaCorpus()
            name = name or "wikipedia"
        else:
            corpus = load_corpus(path)
            name = name or _default_name(Path(path).expanduser())
        target = index_path(name, directory)
        columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task(f"indexing {corpus.source}", total=1.0)

            def progress(docs: int, fraction: float) -> None:
                bar.update(task, completed=fraction, description=f"indexing {corpus.source}: {docs:,} documents")

            stats = build_fts5_index(corpus, target, name=name, progress=progress)
    except PeerstepError as exc:
        _fail(str(exc))
        return
    console.print(f"indexed {stats.documents:,} documents in {stats.seconds:.2f} s")
    console.print(f"index {name!r}: {stats.path} ({stats.size_bytes / 1e6:.1f} MB)")


@index_app.command("list")
def list_indexes(directory: DirOpt = None) -> None:
    """List the indexes in the index directory with their size and source."""
    from peerstep.tools.search import Fts5Index, default_index_dir

    root = (directory or default_index_dir()).expanduser()
    files = sorted(root.glob("*.sqlite")) if root.is_dir() else []
    if not files:
        console.print(f"no indexes in {root}; build one with `peerstep index build PATH`")
        return
    table = Table("name", "documents", "kind", "source", "size", "built", box=None)
    for file in files:
        try:
            with Fts5Index(file) as index:
                meta = index.meta
                table.add_row(index.name, f"{len(index):,}", meta.get("kind", ""), meta.get("source", ""),
                              f"{file.stat().st_size / 1e6:.1f} MB", meta.get("built_at", ""))
        except PeerstepError as exc:
            table.add_row(file.stem, "-", "-", f"unreadable: {exc}", f"{file.stat().st_size / 1e6:.1f} MB", "-")
    console.print(f"indexes in {root}:")
    console.print(table)


@index_app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    name: Annotated[str, typer.Option("--name", help="Index name or .sqlite path.")] = "wikipedia",
    k: Annotated[int, typer.Option("-k", help="Number of results.")] = 5,
    directory: DirOpt = None,
) -> None:
    """Run one query against an index, as the agent's search tool would."""
    from peerstep.tools.search import open_index

    try:
        with open_index(name, directory) as index:
            hits = index.search(query, k)
    except PeerstepError as exc:
        _fail(str(exc))
        return
    if not hits:
        console.print("no results")
    for i, hit in enumerate(hits, start=1):
        console.print(f"{i}. {hit.title}  (id: {hit.id}, score {hit.score:.2f})", markup=False)
        console.print(f"   {hit.snippet}", markup=False)
