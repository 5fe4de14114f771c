"""The shipped search conformance suite (``peerstep.testing.search``) on the FTS5 backend and on both web providers
(SearxNG and Brave, through an httpx mock transport), and on backends that break the contract (the suite must be
able to fail)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from peerstep.testing.search import DOCUMENTS, check_search_index
from peerstep.tools.search import (
    BraveProvider,
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


def _ranked(query: str) -> list[tuple[int, str, str, str]]:
    """``(words matched, id, title, text)`` of the documents matching any word of ``query``, most matched first."""
    words = [w for w in query.lower().split() if w.isalnum()]
    scored = sorted(((sum(w in (t + " " + x).lower() for w in words), i, t, x) for i, t, x in DOCUMENTS),
                    key=lambda r: -r[0])
    return [r for r in scored if r[0] > 0]


def _page(request: httpx.Request) -> httpx.Response:
    """The pages the fake search APIs link to, ``http://docs.test/<id>``, as HTML."""
    doc = next((d for d in DOCUMENTS if request.url.path == f"/{d[0]}"), None)
    if doc is None:
        return httpx.Response(404, text="not found")
    html = f"<html><head><title>{doc[1]}</title></head><body><p>{doc[2]}</p></body></html>"
    return httpx.Response(200, text=html, headers={"content-type": "text/html; charset=utf-8"})


def _fake_searxng(request: httpx.Request) -> httpx.Response:
    """A SearxNG JSON API and the pages it links to, over ``DOCUMENTS``: ranked by query words matched."""
    if request.url.path == "/search":
        results = [{"url": f"http://docs.test/{i}", "title": t, "content": x[:200], "score": n}
                   for n, i, t, x in _ranked(request.url.params["q"])]
        return httpx.Response(200, json={"results": results})
    return _page(request)


def test_web_search_keeps_the_search_contract() -> None:
    """The web backend (SearxNG's documented JSON format) through an httpx mock transport: no network."""
    client = httpx.Client(transport=httpx.MockTransport(_fake_searxng))
    config = WebSearchConfig(provider="searxng", base_url="http://searx.test", retries=0)
    with WebSearch(config, client=client) as index:
        assert check_search_index(index) == {}


BRAVE_KEY = "conformance-key"


def _fake_brave(request: httpx.Request) -> httpx.Response:
    """The Brave Search web API and the pages it links to, over ``DOCUMENTS``, as Brave answers: the key checked,
    at most ``count`` results in rank order with a ``description`` and no score, and no ``web`` section at all when
    nothing matched."""
    if request.url.host != "brave.test":
        return _page(request)
    if request.url.path != "/res/v1/web/search":
        return httpx.Response(404, json={"type": "ErrorResponse", "error": {"code": "NOT_FOUND"}})
    if request.headers.get("X-Subscription-Token") != BRAVE_KEY:
        return httpx.Response(401, json={"type": "ErrorResponse", "error": {"code": "SUBSCRIPTION_TOKEN_INVALID"}})
    query = request.url.params["q"]
    count = int(request.url.params.get("count", "20"))
    results = [{"title": t, "url": f"http://docs.test/{i}", "description": f"<strong>{t}</strong>: {x[:200]}",
                "type": "search_result"} for _, i, t, x in _ranked(query)[:count]]
    answer: dict[str, Any] = {"type": "search", "query": {"original": query}}
    if results:
        answer["web"] = {"type": "search", "results": results}
    return httpx.Response(200, json=answer)


def test_brave_keeps_the_search_contract() -> None:
    """The Brave provider through an httpx mock transport: the same shipped suite as the other backends."""
    client = httpx.Client(transport=httpx.MockTransport(_fake_brave))
    config = WebSearchConfig(provider="brave", base_url="http://brave.test", api_key=BRAVE_KEY, retries=0)
    with WebSearch(config, client=client) as index:
        assert isinstance(index.provider, BraveProvider)
        assert check_search_index(index) == {}


def test_the_suite_fails_brave_with_a_wrong_key() -> None:
    """The fake Brave really checks the key: with a wrong one every search fails, and the suite says so."""
    client = httpx.Client(transport=httpx.MockTransport(_fake_brave))
    config = WebSearchConfig(provider="brave", base_url="http://brave.test", api_key="wrong", retries=0)
    with WebSearch(config, client=client) as index:
        failures = check_search_index(index)
    assert {"ranked", "long_document"} <= set(failures) and "refused the API key" in failures["ranked"]
