"""The default backend: an SQLite FTS5 full-text index in one file, ranked by bm25().

Why FTS5: it ships inside Python's ``sqlite3`` (no dependency), persists to a single file that many processes can
read at once, and measured fastest to build and query here (see ``bench/search.py``).

Layout: ``docs`` holds the documents (rowid, id, title) and ``chunks`` their text, cut into passages of at most
``CHUNK_CHARS`` characters (at whitespace where there is some); ``fts`` is an external-content FTS5 table over
``chunks`` (title and text, Porter stemming, diacritics folded), so the text is stored once; ``meta`` records what
was indexed (source, fingerprint, count). A document's title sits in its first chunk only. Titles weigh
``TITLE_WEIGHT`` times more than body text in bm25, which is what puts "Albert Einstein" first for the query
"Albert Einstein". A search ranks chunks and returns each document once, with the snippet of its best chunk.

Why chunks: FTS5's ``snippet()`` re-tokenises its row's whole text and its cost grows faster than linearly with it
(over 120 s for one 1 MB document; a 50 MB one never finished), so the work per hit is bounded by bounding the row.
Most documents (every Wikipedia summary) are a single chunk, ranked exactly as before.

Every statement also runs under a deadline (``timeout``), enforced by a watchdog thread that calls
``Connection.interrupt()``; ``interrupt()`` stops a search from any thread, and a search called from the main thread
runs its statements in a helper thread so that a signal (Ctrl-C, SIGTERM) is handled at once and stops it.

User text never reaches FTS5's query language: ``query_terms`` keeps only words made of letters and digits, and
each is passed as a double-quoted FTS5 string joined with OR, so no input can be a syntax error or change the query.
Builds go to a temporary file in the target directory that is renamed into place only when complete, so a failed
or interrupted build leaves the previous index (or nothing) behind, never half an index.
"""

from __future__ import annotations

import bisect
import concurrent.futures
import contextlib
import itertools
import os
import re
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
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
    page_bounds,
    paginate,
    query_terms,
)
from peerstep.tools.search._corpus import Corpus, Document

__all__ = [
    "BuildStats",
    "Fts5Index",
    "SearchTimeoutError",
    "build_fts5_index",
    "default_index_dir",
    "index_is_current",
    "index_path",
    "open_index",
    "open_or_build",
    "wikipedia_index",
]

FORMAT = "peerstep-search-fts5"
FORMAT_VERSION = "2"  # 2: text in bounded chunks
TITLE_WEIGHT = 5.0
SNIPPET_TOKENS = 32
BATCH = 5000
BATCH_CHARS = 16_000_000  # flush a batch early when its text is this long (a few huge documents)
CHUNK_CHARS = 4000  # the longest row FTS5 ranks and builds a snippet from; cut at whitespace, so 2000 to 4000
DEFAULT_TIMEOUT = 10.0  # seconds a search may take before it is stopped; normal searches take milliseconds

Progress = Callable[[int, float], None]  # (documents indexed so far, fraction of the source read)

TOKENIZE = "porter unicode61 remove_diacritics 2"
DF_TRACKED = 50  # terms in more documents than this get their document frequency stored in the `terms` table
RANK_BUDGET = 5_000  # documents a query may rank (about 1 µs each), unless its rarest word alone matches more
MAX_RANK_PASSES = 8  # cuts of the ranking taken while long documents crowd out others (see Fts5Index._rank)

_SCHEMA = f"""
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE docs(rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, title TEXT NOT NULL);
CREATE TABLE chunks(rowid INTEGER PRIMARY KEY, doc INTEGER NOT NULL, title TEXT NOT NULL, text TEXT NOT NULL);
CREATE TABLE long_docs(doc INTEGER PRIMARY KEY, first INTEGER NOT NULL, chunks INTEGER NOT NULL);
CREATE VIRTUAL TABLE fts USING fts5(title, text, content='chunks', content_rowid='rowid', tokenize='{TOKENIZE}');
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
        chunk_id = 0
        batch: list[tuple[int, str, str]] = []
        chunks: list[tuple[int, int, str, str]] = []
        wheres: list[str] = []
        chars = 0
        for doc in documents:
            count += 1
            batch.append((count, doc.id, doc.title))
            wheres.append(doc.where)
            first = chunk_id + 1
            for k, piece in enumerate(_chunks(doc.text)):
                chunk_id += 1
                chunks.append((chunk_id, count, doc.title if k == 0 else "", piece))
            if chunk_id > first:
                con.execute("INSERT INTO long_docs(doc, first, chunks) VALUES (?, ?, ?)",
                            (count, first, chunk_id - first + 1))
            chars += len(doc.text)
            if len(batch) >= BATCH or chars >= BATCH_CHARS:
                _insert(con, batch, chunks, wheres)
                batch, chunks, wheres, chars = [], [], [], 0
                if progress:
                    progress(count, documents.progress if isinstance(documents, Corpus) else 0.0)
        _insert(con, batch, chunks, wheres)
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


def _chunks(text: str) -> Iterator[str]:
    """``text`` in consecutive pieces of at most ``CHUNK_CHARS`` characters that join back into it exactly."""
    if len(text) <= CHUNK_CHARS:
        yield text
        return
    for start, end in page_bounds(text, CHUNK_CHARS):
        yield text[start:end]


def _insert(con: sqlite3.Connection, batch: list[tuple[int, str, str]], chunks: list[tuple[int, int, str, str]],
            wheres: list[str]) -> None:
    if not batch:
        return
    try:
        con.executemany("INSERT INTO docs(rowid, id, title) VALUES (?, ?, ?)", batch)
    except sqlite3.IntegrityError:
        first_rowid = batch[0][0]
        seen: set[str] = set()
        for (_rowid, doc_id, _title), where in zip(batch, wheres, strict=True):
            earlier = con.execute("SELECT rowid FROM docs WHERE id = ? AND rowid < ?", (doc_id, first_rowid))
            if doc_id in seen or earlier.fetchone():
                raise InputError(f"{where or 'document'}: duplicate id {doc_id!r}; ids must be unique") from None
            seen.add(doc_id)
        raise
    con.executemany("INSERT INTO chunks(rowid, doc, title, text) VALUES (?, ?, ?, ?)", chunks)
    con.executemany("INSERT INTO fts(rowid, title, text) VALUES (?, ?, ?)", [(r, t, x) for r, _d, t, x in chunks])


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


class SearchTimeoutError(SearchError):
    """A search ran past its deadline, or was stopped with ``interrupt()``; nothing of it keeps running."""


class _Watchdog:
    """Interrupts the statement running on one connection once its deadline passes.

    ``Connection.interrupt()`` is the one sqlite3 call that is safe from another thread, and another thread is
    the only way to stop a statement whose work is all inside SQLite: a Python progress handler would also run the
    process's signal handlers inside SQLite's callback, which swallows the KeyboardInterrupt they raise. The thread
    sleeps until the earliest deadline and is woken only when it was idle, so a search costs no thread switch.
    """

    def __init__(self, con: sqlite3.Connection) -> None:
        self._con = con
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._waiting_until: float | None = None  # what the thread sleeps towards; None: until woken
        self._fired = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def arm(self, deadline: float) -> None:
        with self._cond:
            self._deadline, self._fired = deadline, False
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="peerstep-search-watchdog", daemon=True)
                self._thread.start()
            elif self._waiting_until is None or deadline < self._waiting_until:
                self._cond.notify()

    def disarm(self) -> bool:
        """Clear the deadline; True if it had passed and the statement was interrupted."""
        with self._cond:
            self._deadline = None
            return self._fired

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if self._deadline is None:
                    self._waiting_until = None
                    self._cond.wait()
                    continue
                remaining = self._deadline - time.monotonic()
                if remaining > 0:
                    self._waiting_until = self._deadline
                    self._cond.wait(remaining)
                    continue
                self._fired, self._deadline = True, None
                self._con.interrupt()


class Fts5Index(SearchIndex):
    """A built FTS5 index file, opened read-only (safe to share between processes and threads).

    Open one with ``Fts5Index(path)``; build one with ``build_fts5_index`` or ``Fts5Index.build``.
    """

    def __init__(self, path: str | Path, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """``timeout``: seconds any one search may take before it is stopped with ``SearchTimeoutError``."""
        self.path = Path(path).expanduser()
        self.timeout = timeout
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
        try:
            # documents of more than one chunk (usually few): with them, a chunk's document and a document's chunks
            # are found by bisection, since both are numbered in the same order
            long_docs = self._con.execute("SELECT doc, first, chunks FROM long_docs ORDER BY doc").fetchall()
        except sqlite3.Error as exc:
            self._con.close()
            raise InputError(f"{self.path} is not a complete peerstep search index ({exc}); rebuild it") from None
        self._long_docs = [int(d) for d, _f, _n in long_docs]
        self._long_firsts = [int(f) for _d, f, _n in long_docs]
        self._long_sizes = [int(n) for _d, _f, n in long_docs]
        self._extra_after = list(itertools.accumulate(n - 1 for n in self._long_sizes))  # extra chunks so far
        self.name = self.meta.get("name", self.path.stem)
        self._count = int(self.meta.get("docs", "0"))
        # a scratch FTS5 table with the index's tokenizer: the only exact way to learn what a word is indexed as
        # (its Porter stem, diacritics folded) before asking how many documents hold it
        self._tok = sqlite3.connect(":memory:", check_same_thread=False)
        self._tok.execute(f"CREATE VIRTUAL TABLE words USING fts5(w, tokenize='{TOKENIZE}')")
        self._tok.execute("CREATE VIRTUAL TABLE tokens USING fts5vocab(words, 'instance')")
        self._lock = threading.Lock()
        self._watchdog = _Watchdog(self._con)
        self._cancelled = False
        self._helper: concurrent.futures.ThreadPoolExecutor | None = None

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
        self._watchdog.close()
        if self._helper is not None:
            self._helper.shutdown(wait=True)
        self._con.close()
        self._tok.close()

    def interrupt(self) -> None:
        """Stop the search in progress, from any thread: it raises ``SearchTimeoutError`` at once."""
        self._cancelled = True
        self._con.interrupt()

    def _query(self, sql: str, params: tuple[object, ...], deadline: float | None = None) -> list[tuple[object, ...]]:
        with self._lock:
            # checked here too: an interrupt() or a deadline that falls between two statements must not be lost
            if self._cancelled:
                self._cancelled = False
                raise SearchTimeoutError(f"search in {self.path} stopped: it was interrupted")
            if deadline is not None and time.monotonic() >= deadline:
                raise SearchTimeoutError(f"search in {self.path} stopped: it ran past its time limit")
            self._watchdog.arm(deadline if deadline is not None else time.monotonic() + self.timeout)
            try:
                return self._con.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                fired = self._watchdog.disarm()
                if isinstance(exc, sqlite3.OperationalError) and str(exc) == "interrupted":
                    cancelled, self._cancelled = self._cancelled, False
                    why = "it was interrupted" if cancelled and not fired else "it ran past its time limit"
                    raise SearchTimeoutError(f"search in {self.path} stopped: {why}") from None
                raise SearchError(f"search index {self.path} could not be read: {exc}") from None
            finally:
                self._watchdog.disarm()

    def search(self, query: str, k: int = 5, *, timeout: float | None = None) -> list[SearchHit]:
        """Best ``k`` documents for ``query``; a document needs any one of the query's words to match.

        OR rather than AND because agents write questions, not keyword lists: bm25 still ranks documents that
        contain more (and rarer) query words first, and a single unmatched word does not empty the result.
        ``timeout`` (default: the index's) bounds the whole search; past it, ``SearchTimeoutError``.
        """
        k = check_k(k)
        words = query_terms(query)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self._cancelled = False
        if threading.current_thread() is not threading.main_thread():
            return self._search(words, k, deadline)
        # the main thread handles signals only between Python instructions, never inside a statement: it waits
        # for a helper thread instead, so Ctrl-C or SIGTERM is handled at once and stops the statement too
        if self._helper is None:
            self._helper = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="peerstep-search")
        future = self._helper.submit(self._search, words, k, deadline)
        try:
            return future.result()
        except BaseException:
            if not future.done():
                self.interrupt()
                with contextlib.suppress(SearchError):
                    future.result()  # the statement stops at once: nothing is left running
            raise

    def _search(self, words: list[str], k: int, deadline: float) -> list[SearchHit]:
        match, cutoff = self._match(words, deadline)
        where = "fts MATCH ?" + (" AND rowid <= ?" if cutoff is not None else "")
        params: tuple[object, ...] = (match,) if cutoff is None else (match, cutoff)
        ranked = self._rank(where, params, k, deadline)
        hits = []
        for doc, rowid, score in ranked:
            # snippets only for the k winners, each from one chunk: the work per hit is bounded by CHUNK_CHARS
            row = self._query(
                "SELECT d.id, d.title, snippet(fts, 1, '', '', ' … ', ?) FROM fts, docs d"
                " WHERE fts MATCH ? AND fts.rowid = ? AND d.rowid = ?", (SNIPPET_TOKENS, match, rowid, doc), deadline)
            if row:
                doc_id, title, snippet = row[0]
                hits.append(SearchHit(id=str(doc_id), title=str(title), snippet=_clean(str(snippet)),
                                      score=-float(str(score))))
        return hits

    def _rank(self, where: str, params: tuple[object, ...], k: int, deadline: float) -> list[tuple[int, int, float]]:
        """The best ``k`` documents as ``(doc, best chunk, score)``: chunks are ranked, each document counts once.

        The ranking and the top-``4k`` cut run inside SQLite. When a few long documents crowd that cut (fewer than
        ``k`` distinct documents in it), their best chunks are known already, so they are excluded by rowid range
        and the cut is taken again: bm25 is then not computed for their chunks at all, and a 50 MB document costs a
        second pass over the posting lists, not a second ranking.
        """
        rank = f"SELECT rowid, bm25(fts, {TITLE_WEIGHT}, 1.0) AS score FROM fts WHERE {where}"
        if not self._long_docs:  # one chunk per document: a chunk is its document
            return [(int(str(r)), int(str(r)), float(str(sc)))
                    for r, sc in self._query(rank + " ORDER BY score LIMIT ?", (*params, k), deadline)]
        limit = 4 * k
        best: dict[int, tuple[int, int, float]] = {}
        excluded: list[tuple[int, int]] = []
        for _ in range(MAX_RANK_PASSES):
            sql = rank + " AND rowid NOT BETWEEN ? AND ?" * len(excluded) + " ORDER BY score LIMIT ?"
            top = self._query(sql, (*params, *itertools.chain.from_iterable(excluded), limit), deadline)
            seen: dict[int, int] = {}
            for rowid, score in top:
                doc = self._doc_of(int(str(rowid)))
                seen[doc] = seen.get(doc, 0) + 1
                value = float(str(score))
                if doc not in best or value < best[doc][2]:
                    best[doc] = (doc, int(str(rowid)), value)
            if len(seen) >= k or len(top) < limit:
                break
            excluded.extend(self._chunk_range(doc) for doc, count in seen.items() if count > 1)
        return sorted(best.values(), key=lambda hit: hit[2])[:k]

    def _doc_of(self, chunk: int) -> int:
        """The document that chunk ``chunk`` belongs to."""
        j = bisect.bisect_right(self._long_firsts, chunk) - 1
        if j < 0:
            return chunk
        if chunk < self._long_firsts[j] + self._long_sizes[j]:
            return self._long_docs[j]
        return chunk - self._extra_after[j]

    def _chunk_range(self, doc: int) -> tuple[int, int]:
        """The first and last chunk of document ``doc``."""
        j = bisect.bisect_right(self._long_docs, doc) - 1
        if j >= 0 and self._long_docs[j] == doc:
            return self._long_firsts[j], self._long_firsts[j] + self._long_sizes[j] - 1
        chunk = doc + (self._extra_after[j] if j >= 0 else 0)
        return chunk, chunk

    def _match(self, words: list[str], deadline: float | None = None) -> tuple[str, int | None]:
        """The FTS5 MATCH expression for ``words``, and a rowid cutoff when even the rarest word is everywhere.

        Ranking costs about 1 µs per matching document, so on a large index one common word ("also", "first")
        in an OR query would rank most of the collection. Words are therefore split by document frequency:
        the rarest ones, up to ``RANK_BUDGET`` matching documents in total, choose the candidates; the common
        ones only add to the score of those candidates, through ``R OR (R AND C)`` (which matches exactly what
        ``R`` matches, while bm25 also counts ``C``). When the rarest word alone matches more than the budget,
        only its first ``RANK_BUDGET`` documents (in index order) are ranked: such a query says almost nothing.
        """
        counts = self._doc_counts(words, deadline)
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
            row = self._query("SELECT rowid FROM fts WHERE fts MATCH ? LIMIT 1 OFFSET ?", (r, RANK_BUDGET), deadline)
            cutoff = int(str(row[0][0])) if row else None
        return match, cutoff

    def _doc_counts(self, words: list[str], deadline: float | None = None) -> dict[str, int]:
        """An upper bound on the documents holding each word (``DF_TRACKED`` for uncommon ones); -1 for a word
        the tokenizer reduces to nothing."""
        with self._lock:
            self._tok.execute("DELETE FROM words")
            self._tok.executemany("INSERT INTO words(rowid, w) VALUES (?, ?)", enumerate(words))
            tokens = self._tok.execute("SELECT doc, term FROM tokens").fetchall()
        terms = sorted({str(term) for _doc, term in tokens})
        marks = ",".join("?" * len(terms))
        df = {str(t): int(str(d)) for t, d in self._query(f"SELECT term, docs FROM terms WHERE term IN ({marks})",
                                                          tuple(terms), deadline)} if terms else {}
        counts = dict.fromkeys(words, -1)
        for i, term in tokens:
            word = words[int(i)]
            counts[word] = max(counts[word], df.get(str(term), DF_TRACKED))
        return counts

    def open(self, title_or_id: str, page: int = 0, page_chars: int = 4000) -> DocumentPage:
        """A page of the document whose id, exact title, or title ignoring case is ``title_or_id``."""
        key = str(title_or_id).strip()
        row = (self._query("SELECT rowid, id, title FROM docs WHERE id = ?", (key,))
               or self._query("SELECT rowid, id, title FROM docs WHERE title = ? COLLATE NOCASE "
                              "ORDER BY title = ? DESC, rowid LIMIT 1", (key, key)))
        if not row:
            raise DocumentNotFoundError(self._not_found(key))
        rowid, doc_id, title = row[0]
        first, last = self._chunk_range(int(str(rowid)))
        text = "".join(str(t) for (t,) in self._query("SELECT text FROM chunks WHERE rowid BETWEEN ? AND ? "
                                                      "ORDER BY rowid", (first, last)))
        return paginate(str(doc_id), str(title), text, page, page_chars)

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
    """Where named indexes live: peerstep's cache folder / "search" (``$PEERSTEP_HOME/search``)."""
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
