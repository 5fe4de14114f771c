"""The default backend: an SQLite FTS5 full-text index in one file, ranked by bm25().

Why FTS5: it ships inside Python's ``sqlite3`` (no dependency), persists to a single file that many processes can
read at once, and measured fastest to build and query here (see ``bench/search.py``).

Layout: ``docs`` holds the documents (rowid, id, title, text); ``fts`` is an external-content FTS5 table over
``docs`` (title and text, Porter stemming, diacritics folded), so the text is stored once; ``meta`` records what
was indexed (source, fingerprint, count). Titles weigh ``TITLE_WEIGHT`` times more than body text in bm25, which
is what puts "Albert Einstein" first for the query "Albert Einstein".

User text never reaches FTS5's query language: ``query_terms`` keeps only words made of letters and digits, and
each is passed as a double-quoted FTS5 string joined with OR, so no input can be a syntax error or change the query.
Builds go to a temporary file in the target directory that is renamed into place only when complete, so a failed
or interrupted build leaves the previous index (or nothing) behind, never half an index.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from peerstep._errors import InputError
from peerstep.tools.search._base import (
    DocumentNotFoundError,
    DocumentPage,
    QueryError,
    SearchError,
    SearchHit,
    SearchIndex,
    check_k,
    paginate,
    query_terms,
)
from peerstep.tools.search._corpus import Corpus, Document

__all__ = [
    "BuildStats",
    "Fts5Index",
    "build_fts5_index",
    "default_index_dir",
    "index_is_current",
    "index_path",
    "open_index",
    "open_or_build",
    "wikipedia_index",
]

FORMAT = "peerstep-search-fts5"
FORMAT_VERSION = "1"
TITLE_WEIGHT = 5.0
SNIPPET_TOKENS = 32
BATCH = 5000

Progress = Callable[[int, float], None]  # (documents indexed so far, fraction of the source read)

TOKENIZE = "porter unicode61 remove_diacritics 2"
DF_TRACKED = 50  # terms in more documents than this get their document frequency stored in the `terms` table
RANK_BUDGET = 5_000  # documents a query may rank (about 1 µs each), unless its rarest word alone matches more

_SCHEMA = f"""
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE docs(rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, title TEXT NOT NULL, text TEXT NOT NULL);
CREATE VIRTUAL TABLE fts USING fts5(title, text, content='docs', content_rowid='rowid', tokenize='{TOKENIZE}');
CREATE TABLE terms(term TEXT PRIMARY KEY, docs INTEGER NOT NULL) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class BuildStats:
    """What a build produced: where, how many documents, and how long it took."""

    path: Path
    documents: int
    seconds: float
    size_bytes: int


def _fts_string(term: str) -> str:
    """``term`` as an FTS5 string literal: inside double quotes a quote is written twice, nothing else is special."""
    return '"' + term.replace('"', '""') + '"'


def _unwritable(directory: Path, exc: OSError) -> InputError:
    return InputError(f"cannot write a search index into {directory}: {exc.strerror or exc}; choose a writable "
                      "directory (--dir, or set PEERSTEP_HOME)")


def build_fts5_index(
    documents: Corpus | Iterable[Document],
    path: str | Path,
    *,
    name: str | None = None,
    progress: Progress | None = None,
) -> BuildStats:
    """Index ``documents`` into the SQLite file ``path``, replacing any previous index there only on success.

    Raises ``InputError`` for bad documents (the message says ``file:line: reason``), a duplicate id, or a
    directory that cannot be written.
    """
    target = Path(path).expanduser()
    directory = target.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".building", dir=directory)
    except OSError as exc:
        raise _unwritable(directory, exc) from None
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; an index is as readable as the documents it was built from
    started = time.perf_counter()
    try:
        count = _fill(tmp, documents, name or target.stem, progress)
        os.replace(tmp, target)
    except OSError as exc:
        raise _unwritable(directory, exc) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()  # still there only if the build failed; the index is already renamed otherwise
    return BuildStats(path=target, documents=count, seconds=time.perf_counter() - started,
                      size_bytes=target.stat().st_size)


def _fill(tmp: Path, documents: Corpus | Iterable[Document], name: str, progress: Progress | None) -> int:
    """Create the schema in ``tmp`` and insert every document; returns the document count."""
    con = sqlite3.connect(tmp, isolation_level=None)
    try:
        # a crash mid-build only loses the temporary file, so durability during the build is not needed
        con.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-65536;")
        con.executescript(_SCHEMA)
        con.execute("BEGIN")
        count = 0
        batch: list[tuple[int, str, str, str]] = []
        wheres: list[str] = []
        for doc in documents:
            count += 1
            batch.append((count, doc.id, doc.title, doc.text))
            wheres.append(doc.where)
            if len(batch) >= BATCH:
                _insert(con, batch, wheres)
                batch, wheres = [], []
                if progress:
                    progress(count, documents.progress if isinstance(documents, Corpus) else 0.0)
        _insert(con, batch, wheres)
        # FTS5 writes many small b-tree segments while inserting; merging them makes every later query faster
        con.execute("INSERT INTO fts(fts) VALUES('optimize')")
        con.execute("CREATE INDEX docs_title ON docs(title COLLATE NOCASE)")
        # document frequencies of common terms, so a query can tell cheaply which of its words are expensive
        con.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, fts, 'row')")
        con.execute("INSERT INTO terms SELECT term, doc FROM temp.vocab WHERE doc > ?", (DF_TRACKED,))
        fingerprint = documents.fingerprint() if isinstance(documents, Corpus) else ""
        meta = {
            "format": FORMAT, "version": FORMAT_VERSION, "name": name, "docs": str(count),
            "kind": documents.kind if isinstance(documents, Corpus) else "documents",
            "source": str(documents.source.resolve()) if isinstance(documents, Corpus) else "",
            "fingerprint": fingerprint, "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        con.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", meta.items())
        con.execute("COMMIT")
        con.execute("PRAGMA journal_mode=DELETE")
        if progress:
            progress(count, 1.0)
        return count
    finally:
        con.close()


def _insert(con: sqlite3.Connection, batch: list[tuple[int, str, str, str]], wheres: list[str]) -> None:
    if not batch:
        return
    try:
        con.executemany("INSERT INTO docs(rowid, id, title, text) VALUES (?, ?, ?, ?)", batch)
    except sqlite3.IntegrityError:
        first_rowid = batch[0][0]
        seen: set[str] = set()
        for (_rowid, doc_id, _title, _text), where in zip(batch, wheres, strict=True):
            earlier = con.execute("SELECT rowid FROM docs WHERE id = ? AND rowid < ?", (doc_id, first_rowid))
            if doc_id in seen or earlier.fetchone():
                raise InputError(f"{where or 'document'}: duplicate id {doc_id!r}; ids must be unique") from None
            seen.add(doc_id)
        raise
    con.executemany("INSERT INTO fts(rowid, title, text) VALUES (?, ?, ?)", [(r, t, x) for r, _i, t, x in batch])


def _read_meta(path: Path) -> dict[str, str] | None:
    """The ``meta`` table of a peerstep index at ``path``, or None if there is no usable index there."""
    if not path.is_file():
        return None
    try:
        con = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        finally:
            con.close()
    except sqlite3.Error:
        return None
    return meta if meta.get("format") == FORMAT else None


def index_is_current(path: str | Path, corpus: Corpus) -> bool:
    """True when ``path`` holds an index of this format built from ``corpus``'s current content."""
    meta = _read_meta(Path(path))
    if meta is None or meta.get("version") != FORMAT_VERSION:
        return False
    return meta.get("fingerprint") == corpus.fingerprint()


class Fts5Index(SearchIndex):
    """A built FTS5 index file, opened read-only (safe to share between processes and threads).

    Open one with ``Fts5Index(path)``; build one with ``build_fts5_index`` or ``Fts5Index.build``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise InputError(f"no search index at {self.path}; build one with `peerstep index build PATH`")
        try:
            # one connection used from the tool's worker threads, serialised by a lock
            self._con = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True,
                                        check_same_thread=False)
            self.meta: dict[str, str] = dict(self._con.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error as exc:
            raise InputError(f"{self.path} is not a peerstep search index ({exc})") from None
        if self.meta.get("format") != FORMAT:
            self._con.close()
            raise InputError(f"{self.path} is not a peerstep search index (format {self.meta.get('format')!r})")
        if self.meta.get("version") != FORMAT_VERSION:
            self._con.close()
            raise InputError(f"{self.path} was built by another peerstep version (index format "
                             f"{self.meta.get('version')}, this one reads {FORMAT_VERSION}); rebuild it")
        self.name = self.meta.get("name", self.path.stem)
        self._count = int(self.meta.get("docs", "0"))
        # a scratch FTS5 table with the index's tokenizer: the only exact way to learn what a word is indexed as
        # (its Porter stem, diacritics folded) before asking how many documents hold it
        self._tok = sqlite3.connect(":memory:", check_same_thread=False)
        self._tok.execute(f"CREATE VIRTUAL TABLE words USING fts5(w, tokenize='{TOKENIZE}')")
        self._tok.execute("CREATE VIRTUAL TABLE tokens USING fts5vocab(words, 'instance')")
        self._lock = threading.Lock()

    @classmethod
    def build(
        cls,
        documents: Corpus | Iterable[Document],
        path: str | Path,
        *,
        name: str | None = None,
        progress: Progress | None = None,
    ) -> Fts5Index:
        build_fts5_index(documents, path, name=name, progress=progress)
        return cls(path)

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"Fts5Index({str(self.path)!r}, docs={self._count})"

    def close(self) -> None:
        self._con.close()
        self._tok.close()

    def _query(self, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        try:
            with self._lock:
                return self._con.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise SearchError(f"search index {self.path} could not be read: {exc}") from None

    def search(self, query: str, k: int = 5) -> list[SearchHit]:
        """Best ``k`` documents for ``query``; a document needs any one of the query's words to match.

        OR rather than AND because agents write questions, not keyword lists: bm25 still ranks documents that
        contain more (and rarer) query words first, and a single unmatched word does not empty the result.
        """
        k = check_k(k)
        match, cutoff = self._match(query_terms(query))
        sql = f"SELECT rowid, bm25(fts, {TITLE_WEIGHT}, 1.0) AS score FROM fts WHERE fts MATCH ?"
        params: tuple[object, ...] = (match,)
        if cutoff is not None:
            sql, params = sql + " AND rowid <= ?", (match, cutoff)
        ranked = self._query(sql + " ORDER BY score LIMIT ?", (*params, k))
        hits = []
        for rowid, score in ranked:
            # snippets only for the k winners: computing them in the ranking query would do it for every match
            row = self._query(
                "SELECT d.id, d.title, snippet(fts, 1, '', '', ' … ', ?) FROM fts JOIN docs d ON d.rowid = fts.rowid"
                " WHERE fts MATCH ? AND fts.rowid = ?", (SNIPPET_TOKENS, match, rowid))
            if row:
                doc_id, title, snippet = row[0]
                hits.append(SearchHit(id=str(doc_id), title=str(title), snippet=_clean(str(snippet)),
                                      score=-float(str(score))))
        return hits

    def _match(self, words: list[str]) -> tuple[str, int | None]:
        """The FTS5 MATCH expression for ``words``, and a rowid cutoff when even the rarest word is everywhere.

        Ranking costs about 1 µs per matching document, so on a large index one common word ("also", "first")
        in an OR query would rank most of the collection. Words are therefore split by document frequency:
        the rarest ones, up to ``RANK_BUDGET`` matching documents in total, choose the candidates; the common
        ones only add to the score of those candidates, through ``R OR (R AND C)`` (which matches exactly what
        ``R`` matches, while bm25 also counts ``C``). When the rarest word alone matches more than the budget,
        only its first ``RANK_BUDGET`` documents (in index order) are ranked: such a query says almost nothing.
        """
        counts = self._doc_counts(words)
        known = [w for w in words if counts[w] >= 0]
        if not known:
            raise QueryError(f"the query has no searchable words: {' '.join(words)[:60]!r} reduce to nothing "
                             "the index can hold")
        known.sort(key=lambda w: counts[w])
        rare, total = [known[0]], counts[known[0]]
        for word in known[1:]:
            if total + counts[word] > RANK_BUDGET:
                break
            rare.append(word)
            total += counts[word]
        common = known[len(rare):]
        r = " OR ".join(_fts_string(w) for w in rare)
        match = f"({r}) OR (({r}) AND ({' OR '.join(_fts_string(w) for w in common)}))" if common else r
        cutoff = None
        if total > RANK_BUDGET:
            row = self._query("SELECT rowid FROM fts WHERE fts MATCH ? LIMIT 1 OFFSET ?", (r, RANK_BUDGET))
            cutoff = int(str(row[0][0])) if row else None
        return match, cutoff

    def _doc_counts(self, words: list[str]) -> dict[str, int]:
        """An upper bound on the documents holding each word (``DF_TRACKED`` for uncommon ones); -1 for a word
        the tokenizer reduces to nothing."""
        with self._lock:
            self._tok.execute("DELETE FROM words")
            self._tok.executemany("INSERT INTO words(rowid, w) VALUES (?, ?)", enumerate(words))
            tokens = self._tok.execute("SELECT doc, term FROM tokens").fetchall()
        terms = sorted({str(term) for _doc, term in tokens})
        marks = ",".join("?" * len(terms))
        df = {str(t): int(str(d)) for t, d in self._query(f"SELECT term, docs FROM terms WHERE term IN ({marks})",
                                                          tuple(terms))} if terms else {}
        counts = dict.fromkeys(words, -1)
        for i, term in tokens:
            word = words[int(i)]
            counts[word] = max(counts[word], df.get(str(term), DF_TRACKED))
        return counts

    def open(self, title_or_id: str, page: int = 0, page_chars: int = 4000) -> DocumentPage:
        """A page of the document whose id, exact title, or title ignoring case is ``title_or_id``."""
        key = str(title_or_id).strip()
        row = (self._query("SELECT id, title, text FROM docs WHERE id = ?", (key,))
               or self._query("SELECT id, title, text FROM docs WHERE title = ? COLLATE NOCASE "
                              "ORDER BY title = ? DESC, rowid LIMIT 1", (key, key)))
        if not row:
            raise DocumentNotFoundError(self._not_found(key))
        doc_id, title, text = (str(v) for v in row[0])
        return paginate(doc_id, title, text, page, page_chars)

    def _not_found(self, key: str) -> str:
        message = f"no document with id or title {key[:200]!r} in index {self.name!r}"
        try:
            near = [h.title for h in self.search(key, k=3)]
        except InputError:
            near = []
        return message + (f"; closest titles: {'; '.join(near)}" if near else "; use search to find one")


def _clean(snippet: str) -> str:
    return re.sub(r"\s+", " ", snippet).strip()


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
WIKIPEDIA_INDEX = "wikipedia"


def default_index_dir() -> Path:
    """Where named indexes live: ``peerstep.models.cache_dir() / "search"`` (``$PEERSTEP_HOME/search``)."""
    from peerstep._paths import cache_dir

    return cache_dir() / "search"


def index_path(name: str, directory: str | Path | None = None) -> Path:
    """The file of the index called ``name`` in ``directory`` (default ``default_index_dir()``)."""
    if not _NAME.match(name):
        raise InputError(f"index name {name!r} must be letters, digits, '.', '_' or '-' (at most 100 characters)")
    return Path(directory).expanduser() / f"{name}.sqlite" if directory else default_index_dir() / f"{name}.sqlite"


def open_or_build(corpus: Corpus, path: str | Path, *, name: str | None = None,
                  progress: Progress | None = None) -> Fts5Index:
    """The index at ``path`` if it was built from ``corpus`` as it is now; otherwise build it first."""
    if not index_is_current(path, corpus):
        build_fts5_index(corpus, path, name=name, progress=progress)
    return Fts5Index(path)


def wikipedia_index(directory: str | Path | None = None, progress: Progress | None = None) -> Fts5Index:
    """The offline Wikipedia summaries index, built on first use (about a second) and reused afterwards.

    It is rebuilt when the installed summaries file changes (another package version) or the index format does.
    """
    from peerstep.tools.search._corpus import WikipediaCorpus

    return open_or_build(WikipediaCorpus(), index_path(WIKIPEDIA_INDEX, directory), name=WIKIPEDIA_INDEX,
                         progress=progress)


def open_index(name_or_path: str | Path, directory: str | Path | None = None) -> Fts5Index:
    """An existing index by name (in ``directory``) or by file path; the name ``wikipedia`` builds on first use."""
    text = str(name_or_path)
    if text == WIKIPEDIA_INDEX:
        return wikipedia_index(directory)
    if _NAME.match(text) and not text.endswith(".sqlite"):
        return Fts5Index(index_path(text, directory))
    return Fts5Index(Path(text))
