"""A conformance suite for search backends: any ``SearchIndex`` that holds the documents ``DOCUMENTS``.

The agent's ``search`` and ``open_page`` tools rely on this contract, whatever the backend (the local
FTS5 index, a web search API, your own). Build your backend over ``DOCUMENTS`` (or point a fake web API
at them) and run::

    from peerstep.testing.search import DOCUMENTS, check_search_index
    failures = check_search_index(my_index)     # name -> message; {} when all pass

Checks: ranked hits are at most ``k``, best first, each with an id, a title and a bounded snippet; the
document that matches every query word is found first; ``open`` by a hit's id and by title returns the text in
pages of at most ``page_chars`` characters that join up to the whole document; an unknown title raises
``DocumentNotFoundError`` and a query with no words ``QueryError`` (both ``InputError``: the tools turn
them into observations); a bad ``k`` is refused; one very long document does not make a query slow.
"""

from __future__ import annotations

import time

from peerstep._errors import InputError
from peerstep.tools.search import DocumentNotFoundError, QueryError, SearchIndex

# (id, title, text): small, distinct documents; "glacier" appears in one title and in two texts
DOCUMENTS: list[tuple[str, str, str]] = [
    ("d1", "Glacier", "A glacier is a persistent body of dense ice that moves under its own weight. "
                      "Glaciers form where snow accumulates faster than it melts over many years."),
    ("d2", "Fjord", "A fjord is a long narrow inlet with steep sides, created by a glacier cutting into rock."),
    ("d3", "Volcano", "A volcano is a rupture in the crust of a planet through which lava and gases escape."),
    ("d4", "Photosynthesis", "Photosynthesis converts light energy into chemical energy stored in sugars."),
    ("d5", "Long document", ("Filler sentence about nothing in particular. " * 20000) + "The word zeolite ends it."),
]
MAX_SNIPPET_CHARS = 1000
MAX_QUERY_SECONDS = 2.0  # generous: the point is that a huge document does not make search quadratic


def _check(failures: dict[str, str], name: str, ok: bool, message: str) -> None:
    if not ok:
        failures[name] = message


def check_search_index(index: SearchIndex) -> dict[str, str]:
    """Run every check on ``index`` (built over ``DOCUMENTS``); name -> failure, empty when all pass."""
    failures: dict[str, str] = {}
    checks = {
        "ranked": lambda: _ranked(index, failures),
        "open": lambda: _open(index, failures),
        "errors": lambda: _errors(index, failures),
        "long_document": lambda: _long_document(index, failures),
    }
    for name, check in checks.items():
        try:
            check()
        except Exception as exc:  # an unexpected exception is a failure of that check, reported, not raised
            failures.setdefault(name, f"raised {type(exc).__name__}: {exc}")
    return failures


def _ranked(index: SearchIndex, failures: dict[str, str]) -> None:
    hits = index.search("glacier ice weight", k=2)
    _check(failures, "ranked_k", 0 < len(hits) <= 2, f"k=2 gave {len(hits)} hits")
    if hits:
        _check(failures, "ranked_best_first", hits[0].title == "Glacier",
               f"the document matching every word is not first: {[h.title for h in hits]}")
        scores = [h.score for h in hits]
        _check(failures, "ranked_order", scores == sorted(scores, reverse=True), f"scores not descending: {scores}")
        _check(failures, "ranked_snippets", all(0 < len(h.snippet) <= MAX_SNIPPET_CHARS for h in hits),
               "a snippet is empty or unbounded")


def _open(index: SearchIndex, failures: dict[str, str]) -> None:
    """Documents are opened by a hit's id (a web backend's ids are URLs) and by title."""
    hits = {h.title: h for h in index.search("fjord inlet glacier", k=5)}
    if "Fjord" not in hits:
        failures["open_by_id"] = f"searching for the fjord did not return it: {sorted(hits)}"
        return
    by_id = index.open(hits["Fjord"].id)
    _check(failures, "open_by_id", by_id.title == "Fjord" and "narrow inlet" in by_id.text,
           f"open({hits['Fjord'].id!r}) gave {by_id.title!r}")
    by_title = index.open("Fjord")
    _check(failures, "open_by_title", by_title.id == hits["Fjord"].id, f"open('Fjord') gave id {by_title.id!r}")
    text = DOCUMENTS[0][2]
    pages = [index.open("Glacier", page=0, page_chars=60)]
    while pages[-1].has_more and len(pages) < 100:
        pages.append(index.open("Glacier", page=len(pages), page_chars=60))
    _check(failures, "open_pages_bounded", all(len(p.text) <= 60 for p in pages), "a page is longer than page_chars")
    joined = "".join(p.text for p in pages)
    _check(failures, "open_pages_join", joined.split() == text.split(),
           "the pages of a document do not join up to its text")


def _errors(index: SearchIndex, failures: dict[str, str]) -> None:
    try:
        index.open("No Such Article Title 9f3a")
        failures["unknown_document"] = "open() of an unknown title did not raise DocumentNotFoundError"
    except DocumentNotFoundError:
        pass
    try:
        index.search("!!! ???", k=3)
        failures["empty_query"] = "a query with no words did not raise QueryError"
    except QueryError:
        pass
    for bad_k in (0, -1):
        try:
            index.search("glacier", k=bad_k)
            failures["bad_k"] = f"k={bad_k} was accepted"
        except InputError:
            pass


def _long_document(index: SearchIndex, failures: dict[str, str]) -> None:
    started = time.perf_counter()
    hits = index.search("zeolite", k=3)
    seconds = time.perf_counter() - started
    _check(failures, "long_document_found", [h.title for h in hits][:1] == ["Long document"],
           f"zeolite found {[h.title for h in hits]}")
    _check(failures, "long_document_fast", seconds <= MAX_QUERY_SECONDS,
           f"a query over a {len(DOCUMENTS[4][2]):,}-character document took {seconds:.1f} s")
