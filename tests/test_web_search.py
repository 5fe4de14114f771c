"""Web search against a real HTTP server on 127.0.0.1 speaking each provider's documented JSON format."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from peerstep._errors import InputError
from peerstep.tools.search import (
    BraveProvider,
    DocumentNotFoundError,
    QueryError,
    SearchError,
    SearxngProvider,
    WebSearch,
    WebSearchConfig,
    search_tools,
)

SEARXNG_OK = {
    "query": "kiwi", "number_of_results": 2,
    "results": [
        {"url": "https://en.wikipedia.org/wiki/Kiwi_(bird)", "title": "Kiwi (bird) - Wikipedia",
         "content": "Kiwi are flightless birds endemic to New Zealand &amp; its islands.", "engine": "wikipedia",
         "score": 9.0},
        {"url": "https://example.org/kiwi", "title": "All about <b>kiwi</b>", "content": "Kiwi facts.", "score": 4.5},
        {"title": "an entry without a URL is skipped", "content": "x"},
    ],
    "answers": [], "suggestions": [], "unresponsive_engines": [],
}
BRAVE_OK = {
    "type": "search", "query": {"original": "kiwi"},
    "web": {"type": "search", "results": [
        {"title": "Kiwi (bird)", "url": "https://en.wikipedia.org/wiki/Kiwi_(bird)",
         "description": "<strong>Kiwi</strong> are flightless birds endemic to New Zealand."},
        {"title": "Kiwifruit", "url": "https://example.org/kiwifruit", "description": "A fruit."},
    ]},
}
PAGE = (b"<html><head><title>Kiwi  page</title><style>body{color:red}</style><script>var secret=1;</script>"
        b"</head><body><h1>Kiwi</h1><p>Kiwi are flightless birds.</p><p>They lay large eggs.</p>"
        + b"<p>" + b"More words here. " * 400 + b"</p></body></html>")


@dataclass
class Reply:
    status: int = 200
    body: bytes | dict | list = field(default_factory=lambda: SEARXNG_OK)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Script:
    """Replies served in order (the last one repeats) and every request seen."""

    replies: list[Reply] = field(default_factory=lambda: [Reply()])
    seen: list[tuple[str, dict[str, list[str]], dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> Reply:
        with self.lock:
            return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


@dataclass
class Server:
    url: str
    script: Script


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            script.seen.append((parts.path, parse_qs(parts.query), dict(self.headers.items())))
            if parts.path == "/page":
                reply = Reply(body=PAGE, headers={"Content-Type": "text/html; charset=utf-8"})
            elif parts.path == "/image":
                reply = Reply(body=b"\x89PNG", headers={"Content-Type": "image/png"})
            else:
                reply = script.next()
            time.sleep(reply.delay)
            body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
            try:
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json", **reply.headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test); nothing left to answer

        def log_message(self, format: str, *args: object) -> None:
            """Keep the test output clean."""

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", script)
    httpd.shutdown()
    httpd.server_close()


def _searxng(server: Server, **cfg: float) -> WebSearch:
    config = WebSearchConfig(provider="searxng", base_url=server.url, backoff=0.01, **cfg)  # type: ignore[arg-type]
    return WebSearch(config)


def _brave(server: Server, key: str = "test-key", **cfg: float) -> WebSearch:
    config = WebSearchConfig(provider="brave", base_url=server.url, api_key=key, backoff=0.01,
                             **cfg)  # type: ignore[arg-type]
    return WebSearch(config)


def test_searxng_results(server: Server) -> None:
    with _searxng(server) as web:
        hits = web.search("  flightless   kiwi bird ", k=5)
    assert [h.id for h in hits] == ["https://en.wikipedia.org/wiki/Kiwi_(bird)", "https://example.org/kiwi"]
    assert hits[0].title == "Kiwi (bird) - Wikipedia" and hits[0].score == 9.0
    assert hits[0].snippet == "Kiwi are flightless birds endemic to New Zealand & its islands."
    assert hits[1].title == "All about kiwi"
    path, query, headers = server.script.seen[0]
    assert path == "/search" and query == {"q": ["flightless kiwi bird"], "format": ["json"]}
    assert headers["User-Agent"].startswith("peerstep/")


def test_brave_results_and_key_header(server: Server) -> None:
    server.script.replies = [Reply(body=BRAVE_OK)]
    with _brave(server) as web:
        hits = web.search("kiwi", k=1)
    assert len(hits) == 1 and hits[0].title == "Kiwi (bird)"
    assert hits[0].snippet == "Kiwi are flightless birds endemic to New Zealand."
    assert hits[0].score == 1.0  # Brave gives no score: rank order
    path, query, headers = server.script.seen[0]
    assert path == "/res/v1/web/search" and query == {"q": ["kiwi"], "count": ["1"]}
    assert headers["X-Subscription-Token"] == "test-key"


def test_brave_without_web_section_means_no_results(server: Server) -> None:
    server.script.replies = [Reply(body={"type": "search", "query": {"original": "zzz"}})]
    with _brave(server) as web:
        assert web.search("zzz") == []


def test_503_then_ok_is_retried(server: Server) -> None:
    server.script.replies = [Reply(status=503, body=b"busy"), Reply(status=502, body=b"bad gateway"), Reply()]
    with _searxng(server) as web:
        assert len(web.search("kiwi")) == 2
    assert len(server.script.seen) == 3


def test_persistent_429_is_reported_after_retries(server: Server) -> None:
    server.script.replies = [Reply(status=429, body=b"slow down", headers={"Retry-After": "100"})]
    started = time.monotonic()
    with _searxng(server, retries=2, max_backoff=0.05) as web, \
            pytest.raises(SearchError, match=r"answered HTTP 429 \(rate limited\) 3 times"):
        web.search("kiwi")
    assert len(server.script.seen) == 3
    assert time.monotonic() - started < 5  # Retry-After of 100 s was capped by max_backoff


def test_persistent_500_is_reported(server: Server) -> None:
    server.script.replies = [Reply(status=500, body=b"boom")]
    with _searxng(server, retries=1) as web, pytest.raises(SearchError, match=r"HTTP 500 \(server error\) 2 times"):
        web.search("kiwi")


def test_bad_key_is_one_clear_line(server: Server) -> None:
    server.script.replies = [Reply(status=401, body={"type": "ErrorResponse", "error": {"code": "UNAUTHORIZED"}})]
    with _brave(server, key="wrong") as web, pytest.raises(SearchError) as info:
        web.search("kiwi")
    assert str(info.value) == "Brave Search refused the API key (HTTP 401); check BRAVE_API_KEY"
    assert "wrong" not in str(info.value) and len(server.script.seen) == 1  # never retried, key never echoed


def test_searxng_403_points_at_the_json_format(server: Server) -> None:
    server.script.replies = [Reply(status=403, body=b"Forbidden")]
    with _searxng(server) as web, pytest.raises(SearchError, match=r"enable the JSON API .*search.formats"):
        web.search("kiwi")


def test_other_4xx_is_reported_with_the_body(server: Server) -> None:
    server.script.replies = [Reply(status=400, body=b"missing parameter q")]
    with _searxng(server) as web, pytest.raises(SearchError, match="HTTP 400: 'missing parameter q'"):
        web.search("kiwi")


@pytest.mark.parametrize("body", [b"<html>not json</html>", b'{"results": [', b""])
def test_malformed_json(server: Server, body: bytes) -> None:
    server.script.replies = [Reply(body=body)]
    with _searxng(server) as web, pytest.raises(SearchError, match="returned malformed JSON"):
        web.search("kiwi")


@pytest.mark.parametrize("body", [{"answers": []}, [1, 2], {"results": "none"}])
def test_json_of_the_wrong_shape(server: Server, body: object) -> None:
    server.script.replies = [Reply(body=body)]  # type: ignore[arg-type]
    with _searxng(server) as web, pytest.raises(SearchError, match="returned an unexpected answer"):
        web.search("kiwi")


def test_timeout_is_reported_and_not_retried(server: Server) -> None:
    server.script.replies = [Reply(delay=2.0)]
    with _searxng(server, timeout=0.3) as web, pytest.raises(SearchError, match=r"did not answer within 0.3 s"):
        web.search("kiwi")
    assert len(server.script.seen) == 1


def test_unreachable_url_is_retried_then_reported() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens on this port now
    config = WebSearchConfig(provider="searxng", base_url=f"http://127.0.0.1:{port}", retries=2, backoff=0.01)
    with WebSearch(config) as web, pytest.raises(SearchError, match=r"cannot reach SearxNG at .* after 3 attempts"):
        web.search("kiwi")


def test_query_without_words_sends_nothing(server: Server) -> None:
    with _searxng(server) as web:
        for query in ["", "?!", "   "]:
            with pytest.raises(QueryError, match="no searchable words"):
                web.search(query)
    assert server.script.seen == []


def test_long_query_is_capped(server: Server) -> None:
    with _searxng(server) as web:
        web.search("kiwi " * 10_000)
    sent = server.script.seen[0][1]["q"][0]
    assert len(sent) <= 400 and len(sent.split()) == 32


def test_open_fetches_readable_text_and_paginates(server: Server) -> None:
    with _searxng(server) as web:
        page = web.open(f"{server.url}/page", page_chars=1000)
        assert page.title == "Kiwi page" and page.total_pages > 1
        assert page.text.startswith("Kiwi\n\nKiwi are flightless birds.\n\nThey lay large eggs.\n\nMore words here.")
        assert "secret" not in page.text and "color:red" not in page.text
        second = web.open(f"{server.url}/page", page=1, page_chars=1000)
        assert second.page == 1 and second.text.split(" ")[0] in ("More", "words", "here.")  # cut between words
        assert [p for p, _q, _h in server.script.seen].count("/page") == 1  # paging reuses the fetched page
        with pytest.raises(SearchError, match="not a text page"):
            web.open(f"{server.url}/image")


def test_open_by_title_of_a_result(server: Server) -> None:
    page_hit = {"results": [{"url": f"{server.url}/page", "title": "The Kiwi Page", "content": "kiwi"}]}
    server.script.replies = [Reply(body=page_hit)]
    with _searxng(server) as web:
        web.search("kiwi")
        assert web.open("the kiwi page").title == "Kiwi page"
        with pytest.raises(DocumentNotFoundError, match="neither an http"):
            web.open("a title never returned")


def test_config_from_env() -> None:
    assert isinstance(WebSearchConfig.from_env({"PEERSTEP_SEARCH_URL": "http://h:8888"}).make_provider(),
                      SearxngProvider)
    brave = WebSearchConfig.from_env({"BRAVE_API_KEY": "k"}).make_provider()
    assert isinstance(brave, BraveProvider) and brave.base_url == "https://api.search.brave.com"
    assert "k" not in repr(brave)  # the key never appears in logs
    explicit = WebSearchConfig.from_env({"PEERSTEP_SEARCH_PROVIDER": "Brave", "BRAVE_API_KEY": "k",
                                         "PEERSTEP_SEARCH_URL": "http://mock:1"}).make_provider()
    assert isinstance(explicit, BraveProvider) and explicit.base_url == "http://mock:1"
    assert WebSearchConfig.from_env({"PEERSTEP_SEARCH_TIMEOUT": "2.5"}).timeout == 2.5


@pytest.mark.parametrize(("env", "message"), [
    ({}, "web search is not configured: set PEERSTEP_SEARCH_URL"),
    ({"PEERSTEP_SEARCH_PROVIDER": "bing"}, "unknown search provider 'bing'"),
    ({"PEERSTEP_SEARCH_PROVIDER": "brave"}, "needs an API key: set BRAVE_API_KEY"),
    ({"PEERSTEP_SEARCH_URL": "localhost:8888"}, "must be an http:// or https:// URL"),
])
def test_config_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        WebSearch(WebSearchConfig.from_env(env))


def test_bad_timeout_setting() -> None:
    with pytest.raises(InputError, match="PEERSTEP_SEARCH_TIMEOUT"):
        WebSearchConfig.from_env({"PEERSTEP_SEARCH_TIMEOUT": "soon"})


async def test_tools_over_the_web(server: Server) -> None:
    with _searxng(server) as web:
        search, open_page = search_tools(web)
        assert search.schema()["function"]["description"].startswith("Search the web (web)")
        assert len(web) == 0
        out = await search({"query": "kiwi"})
        assert out.ok and "1. Kiwi (bird) - Wikipedia (id: https://en.wikipedia.org/wiki/Kiwi_(bird))" in out.output
        page = await open_page({"title_or_id": f"{server.url}/page"})
        assert page.ok and page.output.startswith("Kiwi page (id: ") and "[more: open_page(" in page.output
        server.script.replies = [Reply(status=401, body=b"no")]
        refused = await search({"query": "kiwi"})
        assert not refused.ok and "refused the request (HTTP 401)" in refused.output
