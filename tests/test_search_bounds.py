"""Search work is bounded per hit and every search can be stopped (issue 10, item 4).

FTS5's ``snippet()`` costs grow with the square of a row's matches: a long document with a common word took
seconds (megabytes) to forever (a 50 MB single-line JSONL). Documents are now indexed in bounded chunks.

Every statement of a search also runs under a deadline, can be stopped with ``interrupt()`` and, from the main
thread, by a signal. No real search is slow any more, so those tests make the ranking statement endless (a
recursive CTE run through the same ``_query`` path): SQLite checks for an interrupt between its VM steps, which
is what stops a long ranking. (A single FTS5 ``snippet()`` call is one VM step and cannot be interrupted: that
is why its input, not its time, is what chunking bounds.)
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from peerstep.tools.search import Document, Fts5Index, build_fts5_index, load_corpus, search_tools
from peerstep.tools.search._fts5 import SearchTimeoutError

REPO = Path(__file__).resolve().parents[1]
WORDS = ["beta", "gamma", "delta", "epsilon", "zeta", "theta", "iota", "kappa", "lambda"]


def common_word_text(chars: int) -> str:
    """Text in which every other word is "alpha": the case where snippet() is quadratic."""
    parts: list[str] = []
    size, i = 0, 0
    while size < chars:
        word = "alpha" if i % 2 == 0 else f"{WORDS[i % len(WORDS)]}{i % 997}"
        parts.append(word)
        size += len(word) + 1
        i += 1
    return " ".join(parts)


def timed(fn: object, *args: object, **kwargs: object) -> tuple[object, float]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)  # type: ignore[operator]
    return result, time.perf_counter() - started


ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


def _endless_rank(self: Fts5Index, where: str, params: tuple[object, ...], k: int,
                  deadline: float) -> list[tuple[int, int, float]]:
    self._query(ENDLESS, (), deadline)
    raise AssertionError("the endless statement ended")


@pytest.fixture(scope="module")
def small_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("small") / "small.sqlite"
    build_fts5_index([Document(str(i), f"Doc {i}", f"alpha {WORDS[i % len(WORDS)]}") for i in range(20)], path)
    return path


@pytest.fixture
def endless(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every search ranks forever unless it is stopped."""
    monkeypatch.setattr(Fts5Index, "_rank", _endless_rank)


def test_a_long_document_with_a_common_word_searches_in_milliseconds(tmp_path: Path) -> None:
    text = common_word_text(2_000_000)
    docs = [Document("long", "A long document", text),
            *(Document(f"d{i}", f"Short {i}", f"alpha and {WORDS[i % len(WORDS)]}") for i in range(50))]
    with Fts5Index.build(docs, tmp_path / "long.sqlite") as index:
        index.search("alpha", 5)  # warm the page cache
        hits, seconds = timed(index.search, "alpha beta3", 5)
        assert seconds < 0.5, f"{seconds:.2f} s for one search"  # about 5 ms here; seconds without chunks
        assert isinstance(hits, list) and len(hits) == 5
        assert len({h.id for h in hits}) == 5  # a document counts once however many of its chunks match
        long_hit = next(h for h in index.search("beta3", 10) if h.id == "long")
        assert "beta3" in long_hit.snippet and len(long_hit.snippet) < 400
        # the chunks join back into the document exactly
        pages = [index.open("long", page=0, page_chars=1_000_000)]
        while pages[-1].has_more:
            pages.append(index.open("long", page=pages[-1].page + 1, page_chars=1_000_000))
        assert "".join(p.text for p in pages) == text
        assert index.open("d7").text == "alpha and kappa"  # documents after a long one are found by id too


def test_long_and_short_documents_interleaved_map_chunks_to_the_right_document(tmp_path: Path) -> None:
    def text(marker: str, chars: int) -> str:
        return " ".join(f"{marker}{j}" for j in range(chars // (len(marker) + 5)))

    sizes = [100, 10_000, 50, 9_000, 13_000, 80, 7_000, 30]
    docs = [Document(f"d{i}", f"Title {i}", text(f"w{i}x", size)) for i, size in enumerate(sizes)]
    with Fts5Index.build(docs, tmp_path / "mixed.sqlite") as index:
        assert index._long_docs == [2, 4, 5, 7]  # rowids of the documents that span several chunks
        for i, doc in enumerate(docs):
            page = index.open(doc.id, page_chars=100_000)
            assert page.text == doc.text and page.total_pages == 1
            last_word = doc.text.rsplit(" ", 1)[-1]  # in the document's last chunk
            assert [h.id for h in index.search(last_word, 3)][:1] == [doc.id], (i, last_word)


def test_long_documents_crowding_the_top_chunks_still_yield_the_best_k_documents(tmp_path: Path) -> None:
    docs = [Document(f"long{j}", f"Long {j}", common_word_text(200_000 + 10_000 * j)) for j in range(3)]
    docs += [Document(f"s{i}", f"Short {i}", "alpha " * (1 + i % 4) + f"filler words {i}") for i in range(30)]
    with Fts5Index.build(docs, tmp_path / "crowd.sqlite") as index:
        for k in (1, 3, 5, 10):
            hits = index.search("alpha", k)
            # the reference: every matching chunk ranked in SQL, each document's best chunk, best k documents
            ref = index._query(
                "WITH r AS MATERIALIZED (SELECT rowid, bm25(fts, 5.0, 1.0) AS score FROM fts WHERE fts MATCH 'alpha')"
                " SELECT d.id, min(r.score) AS best FROM r JOIN chunks c ON c.rowid = r.rowid JOIN docs d"
                " ON d.rowid = c.doc GROUP BY c.doc ORDER BY best LIMIT ?", (k,))
            assert [(h.id, round(-h.score, 9)) for h in hits] == [(str(i), round(float(str(b)), 9)) for i, b in ref]


def test_a_50_mb_single_line_jsonl_builds_and_searches(tmp_path: Path) -> None:
    source = tmp_path / "huge.jsonl"
    text = common_word_text(50_000_000)
    source.write_text(json.dumps({"id": "huge", "title": "Huge", "text": text}) + "\n")
    del text
    stats = build_fts5_index(load_corpus(source), tmp_path / "huge.sqlite")
    with Fts5Index(stats.path) as index:
        for query in ("alpha", "kappa7 alpha", "Huge"):
            hits, seconds = timed(index.search, query, 5)
            assert seconds < 1.0, f"{query!r}: {seconds:.2f} s"
            assert [h.id for h in hits] == ["huge"]  # type: ignore[attr-defined]


def test_a_slow_search_stops_at_its_deadline_and_leaves_nothing_running(small_index: Path, endless: None) -> None:
    with Fts5Index(small_index) as index:
        cpu_before = resource.getrusage(resource.RUSAGE_SELF).ru_utime
        started = time.monotonic()
        with pytest.raises(SearchTimeoutError, match="ran past its time limit"):
            index.search("alpha", 5, timeout=0.5)
        assert time.monotonic() - started < 2
        cpu_after_stop = resource.getrusage(resource.RUSAGE_SELF).ru_utime
        time.sleep(1.0)
        idle = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu_after_stop
        assert cpu_after_stop - cpu_before < 3.0
        assert idle < 0.3, f"{idle:.2f} s of CPU used after the search was stopped"
        # the connection is usable afterwards
        assert index._query("SELECT count(*) FROM docs", ()) == [(20,)]


def test_interrupt_stops_a_search_from_another_thread(small_index: Path, endless: None) -> None:
    with Fts5Index(small_index, timeout=120) as index:
        outcome: list[BaseException] = []

        def run() -> None:
            try:
                index.search("alpha", 5)
            except BaseException as exc:  # the test inspects it below
                outcome.append(exc)

        worker = threading.Thread(target=run)
        worker.start()
        time.sleep(0.3)
        started = time.monotonic()
        index.interrupt()
        worker.join(timeout=5)
        assert not worker.is_alive()
        assert time.monotonic() - started < 2
        assert len(outcome) == 1 and isinstance(outcome[0], SearchTimeoutError)
        assert "interrupted" in str(outcome[0])


async def test_the_search_tool_timeout_stops_the_search_itself(small_index: Path, endless: None) -> None:
    with Fts5Index(small_index, timeout=120) as index:
        search = search_tools(index, timeout=0.5)[0]
        result = await search({"query": "alpha"})
        assert not result.ok
        await asyncio.sleep(1.0)
        cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime
        await asyncio.sleep(1.0)
        assert resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu < 0.3  # the abandoned thread stopped


ENDLESS_PRELUDE = """
import signal, sys
sys.path.insert(0, {repo!r})
import peerstep.tools.search._fts5 as fts5

def endless_rank(self, where, params, k, deadline):
    self._query({endless!r}, (), deadline)

fts5.Fts5Index._rank = endless_rank
"""

SIGNALLED = """
from peerstep.tools.search import Fts5Index

def interrupt(signum, frame):  # what `peerstep` does with SIGTERM: unwind like Ctrl-C
    raise KeyboardInterrupt

signal.signal(signal.SIGTERM, interrupt)
index = Fts5Index({path!r}, timeout=120)
print("searching", flush=True)
try:
    index.search("alpha", 5)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""

CLI = """
from peerstep.cli import main
sys.argv = ["peerstep", "index", "search", "alpha", "--name", {path!r}]
main()
"""


def _prelude() -> str:
    return ENDLESS_PRELUDE.format(repo=str(REPO), endless=ENDLESS)


def test_sigterm_stops_a_search_in_the_main_thread_at_once(small_index: Path) -> None:
    code = _prelude() + SIGNALLED.format(path=str(small_index))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "searching"
        time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        assert time.monotonic() - sent < 2, "SIGTERM waited for the search to finish"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, out + err
    assert "interrupted" in out


def test_peerstep_index_search_ends_on_sigterm(small_index: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PEERSTEP_HOME": str(tmp_path)}
    code = _prelude() + CLI.format(path=str(small_index))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        time.sleep(3)  # started, and searching (for ever)
        assert proc.poll() is None, proc.communicate()
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
        assert time.monotonic() - sent < 2, "peerstep index search waited for the search before handling SIGTERM"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
