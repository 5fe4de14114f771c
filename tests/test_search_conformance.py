"""The shipped search conformance suite (``peerstep.testing.search``) on the FTS5 backend, and on a backend that
breaks the contract (the suite must be able to fail)."""

from __future__ import annotations

from pathlib import Path

import httpx

from peerstep.testing.search import DOCUMENTS, check_search_index
from peerstep.tools.search import (
    Document,
    DocumentPage,
    Fts5Index,
    SearchHit,
    SearchIndex,
    WebSearch,
    WebSearchConfig,
    build_fts5_index,
)


def test_fts5_keeps_the_search_contract(tmp_path: Path) -> None:
    build_fts5_index([Document(id=i, title=t, text=x) for i, t, x in DOCUMENTS], tmp_path / "conf.sqlite")
    with Fts5Index(tmp_path / "conf.sqlite") as index:
        assert check_search_index(index) == {}


class Careless(SearchIndex):
    """Returns everything, unranked, and raises KeyError for unknown titles."""

    def search(self, query: str, k: int = 5) -> list[SearchHit]:
        return [SearchHit(id=i, title=t, snippet=x, score=float(n)) for n, (i, t, x) in enumerate(DOCUMENTS)]

    def open(self, title_or_id: str, page: int = 0, page_chars: int = 4000) -> DocumentPage:
        for i, t, x in DOCUMENTS:
            if title_or_id in (i, t):
                return DocumentPage(id=i, title=t, text=x, page=0, total_pages=1, total_chars=len(x))
        raise KeyError(title_or_id)

    def __len__(self) -> int:
        return len(DOCUMENTS)


def test_the_suite_fails_a_careless_backend() -> None:
    failures = check_search_index(Careless())
    assert {"ranked_k", "open_pages_bounded", "errors"} <= set(failures)


def _fake_searxng(request: httpx.Request) -> httpx.Response:
    """A SearxNG JSON API and the pages it links to, over ``DOCUMENTS``: ranked by query words matched."""
    if request.url.path == "/search":
        words = [w for w in request.url.params["q"].lower().split() if w.isalnum()]
        scored = sorted(((sum(w in (t + " " + x).lower() for w in words), i, t, x) for i, t, x in DOCUMENTS),
                        key=lambda r: -r[0])
        results = [{"url": f"http://docs.test/{i}", "title": t, "content": x[:200], "score": n}
                   for n, i, t, x in scored if n > 0]
        return httpx.Response(200, json={"results": results})
    doc = next((d for d in DOCUMENTS if request.url.path == f"/{d[0]}"), None)
    if doc is None:
        return httpx.Response(404, text="not found")
    html = f"<html><head><title>{doc[1]}</title></head><body><p>{doc[2]}</p></body></html>"
    return httpx.Response(200, text=html, headers={"content-type": "text/html; charset=utf-8"})


def test_web_search_keeps_the_search_contract() -> None:
    """The web backend (SearxNG's documented JSON format) through an httpx mock transport: no network."""
    client = httpx.Client(transport=httpx.MockTransport(_fake_searxng))
    config = WebSearchConfig(provider="searxng", base_url="http://searx.test", retries=0)
    with WebSearch(config, client=client) as index:
        assert check_search_index(index) == {}
