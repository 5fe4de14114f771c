"""Web search behind the same ``SearchIndex`` interface, over httpx, with a configurable provider.

Providers: a SearxNG instance's JSON API (self-hostable, no key: ``GET {base}/search?q=...&format=json`` returning
``results[].title/url/content``) and the Brave Search API (``GET {base}/res/v1/web/search`` with an
``X-Subscription-Token`` header, returning ``web.results[].title/url/description``). ``WebSearchConfig.from_env``
chooses one from ``PEERSTEP_SEARCH_PROVIDER``, ``PEERSTEP_SEARCH_URL`` and ``BRAVE_API_KEY``. Providers are found by
name in ``peerstep.registry.SEARCH_BACKENDS``: register a ``SearchProvider`` class there to add one.

Networks fail in ways an agent cannot fix, so the client does what it can and then says exactly what is wrong in
one line: connection failures, 429 and 5xx answers are retried with exponential backoff (honouring
``Retry-After``, capped); a read timeout is not retried, because a service that did not answer within the timeout
is unlikely to answer the same request faster; 401/403 name the key or setting to check; an answer that is not
the provider's JSON says so instead of raising a ``KeyError`` deep inside. ``open`` fetches a result's URL and
returns its readable text, paginated like a document from a local index.
"""

from __future__ import annotations

import html
import os
import re
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, TypeGuard
from urllib.parse import urlsplit

import httpx

from peerstep._errors import InputError
from peerstep.registry import SEARCH_BACKENDS
from peerstep.tools.search._base import (
    MAX_QUERY_TERMS,
    DocumentNotFoundError,
    DocumentPage,
    SearchError,
    SearchHit,
    SearchIndex,
    check_k,
    paginate,
    query_terms,
)

__all__ = [
    "BraveProvider",
    "SearchProvider",
    "SearxngProvider",
    "WebSearch",
    "WebSearchConfig",
    "html_to_text",
    "web_providers",
]

BRAVE_URL = "https://api.search.brave.com"
MAX_WEB_QUERY_CHARS = 400  # Brave refuses queries over 400 characters; SearxNG engines truncate anyway
MAX_PAGE_BYTES = 2_000_000  # of a page fetched by open(); the rest of a huge page is not worth an agent's context
USER_AGENT = "peerstep/0.1 (+https://github.com/peerstep)"
_TAG = re.compile(r"<[^>]+>")


def _plain(text: object) -> str:
    """Provider snippets carry HTML highlighting (``<strong>``) and entities; the model needs plain text."""
    return re.sub(r"\s+", " ", html.unescape(_TAG.sub("", str(text or "")))).strip()


class SearchProvider(ABC):
    """How one search API is asked (URL, parameters, headers) and how its JSON answer becomes hits."""

    name: str
    base_url: str

    @classmethod
    def from_config(cls, config: WebSearchConfig) -> SearchProvider:
        """The provider for ``config`` (``WebSearchConfig.make_provider`` calls this once it has found the class in
        ``SEARCH_BACKENDS``). By default ``cls(base_url=config.base_url)``, which needs ``PEERSTEP_SEARCH_URL``;
        override it to read a key or to check the settings, raising ``InputError`` naming what is missing."""
        if not config.base_url:
            raise InputError(f"the {config.provider!r} search provider needs a URL: set PEERSTEP_SEARCH_URL")
        factory: Any = cls  # a concrete subclass (a dataclass) takes base_url
        provider: SearchProvider = factory(base_url=config.base_url)
        return provider

    @abstractmethod
    def request(self, query: str, k: int) -> tuple[str, dict[str, str | int], dict[str, str]]:
        """``(url, query parameters, headers)`` for a search."""

    @abstractmethod
    def parse(self, data: Any) -> list[SearchHit]:
        """Hits from the decoded JSON answer; raises ``ValueError`` describing a wrong shape."""

    def refused(self, status: int) -> str:
        """The one-line message for a 401/403 answer."""
        return f"{self.name} at {self.base_url} refused the request (HTTP {status}); check its credentials"


def _hits(items: Any, text_field: str, where: str) -> list[SearchHit]:
    if not isinstance(items, list):
        raise ValueError(f"{where} is not a list")
    hits = []
    for rank, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            continue  # an entry without a URL cannot be opened or cited; skip it rather than fail the search
        score = item.get("score")
        hits.append(SearchHit(
            id=item["url"], title=_plain(item.get("title")) or item["url"], snippet=_plain(item.get(text_field)),
            score=float(score) if isinstance(score, int | float) and not isinstance(score, bool) else 1.0 / (rank + 1),
        ))
    return hits


@dataclass
class SearxngProvider(SearchProvider):
    """A SearxNG instance; its settings.yml must list ``json`` under ``search.formats``."""

    base_url: str
    name: str = "SearxNG"

    @classmethod
    def from_config(cls, config: WebSearchConfig) -> SearxngProvider:
        if not config.base_url:
            raise InputError("web search is not configured: set PEERSTEP_SEARCH_URL to a SearxNG instance "
                             "(e.g. http://localhost:8888), or BRAVE_API_KEY for Brave Search")
        return cls(base_url=config.base_url)

    def request(self, query: str, k: int) -> tuple[str, dict[str, str | int], dict[str, str]]:
        return f"{self.base_url.rstrip('/')}/search", {"q": query, "format": "json"}, {"Accept": "application/json"}

    def parse(self, data: Any) -> list[SearchHit]:
        if not isinstance(data, dict) or "results" not in data:
            raise ValueError("expected a JSON object with a 'results' list")
        return _hits(data["results"], "content", "'results'")

    def refused(self, status: int) -> str:
        return (f"SearxNG at {self.base_url} refused the request (HTTP {status}); enable the JSON API (add json to "
                "search.formats in its settings.yml) or check the instance's access rules")


@dataclass
class BraveProvider(SearchProvider):
    """The Brave Search web API; needs a subscription token (``BRAVE_API_KEY``)."""

    api_key: str = field(repr=False)
    base_url: str = BRAVE_URL
    name: str = "Brave Search"

    @classmethod
    def from_config(cls, config: WebSearchConfig) -> BraveProvider:
        if not config.api_key:
            raise InputError("the Brave Search provider needs an API key: set BRAVE_API_KEY")
        return cls(api_key=config.api_key, base_url=config.base_url or BRAVE_URL)

    def request(self, query: str, k: int) -> tuple[str, dict[str, str | int], dict[str, str]]:
        headers = {"Accept": "application/json", "X-Subscription-Token": self.api_key}
        return f"{self.base_url.rstrip('/')}/res/v1/web/search", {"q": query, "count": min(k, 20)}, headers

    def parse(self, data: Any) -> list[SearchHit]:
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        if "web" not in data:
            if data.get("type") == "search":
                return []  # Brave leaves out the 'web' section when nothing matched
            raise ValueError("expected a JSON object with 'web.results'")
        web = data["web"]
        if not isinstance(web, dict):
            raise ValueError("'web' is not an object")
        return _hits(web.get("results", []), "description", "'web.results'")

    def refused(self, status: int) -> str:
        return f"Brave Search refused the API key (HTTP {status}); check BRAVE_API_KEY"


def _provider_class(entry: Any) -> TypeGuard[type[SearchProvider]]:
    return isinstance(entry, type) and issubclass(entry, SearchProvider)


def web_providers() -> list[str]:
    """The names in ``SEARCH_BACKENDS`` that are web search providers (``SearchProvider`` classes), not indexes."""
    names = []
    for name in SEARCH_BACKENDS:
        try:
            entry = SEARCH_BACKENDS.get(name)
        except InputError:  # a lazy entry whose package is missing: not usable, so not listed
            continue
        if _provider_class(entry):
            names.append(name)
    return names


@dataclass
class WebSearchConfig:
    """Which provider to call and how patiently. ``retries`` counts attempts after the first."""

    provider: str = "searxng"
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    retries: int = 3
    backoff: float = 0.5  # seconds before the first retry; doubles each time
    max_backoff: float = 8.0  # cap on any single wait, including a server's Retry-After

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebSearchConfig:
        """Read ``PEERSTEP_SEARCH_PROVIDER``, ``PEERSTEP_SEARCH_URL``, ``BRAVE_API_KEY``, ``PEERSTEP_SEARCH_TIMEOUT``.

        Without a provider: ``brave`` if only ``BRAVE_API_KEY`` is set, otherwise ``searxng``.
        """
        env = os.environ if env is None else env
        url = env.get("PEERSTEP_SEARCH_URL") or None
        key = env.get("BRAVE_API_KEY") or None
        provider = (env.get("PEERSTEP_SEARCH_PROVIDER") or ("brave" if key and not url else "searxng")).lower()
        timeout = env.get("PEERSTEP_SEARCH_TIMEOUT")
        try:
            seconds = float(timeout) if timeout else 10.0
        except ValueError:
            raise InputError(f"PEERSTEP_SEARCH_TIMEOUT must be a number of seconds, got {timeout!r}") from None
        return cls(provider=provider, base_url=url, api_key=key, timeout=seconds)

    def make_provider(self) -> SearchProvider:
        """The provider registered as ``provider`` in ``SEARCH_BACKENDS``, built by its ``from_config``, or an
        ``InputError`` naming the missing or wrong setting."""
        entry = SEARCH_BACKENDS.get(self.provider) if self.provider in SEARCH_BACKENDS else None
        if not _provider_class(entry):
            raise InputError(f"unknown search provider {self.provider!r} (PEERSTEP_SEARCH_PROVIDER); "
                             f"known: {', '.join(web_providers())}")
        if self.base_url is not None and urlsplit(self.base_url).scheme not in ("http", "https"):
            raise InputError(f"PEERSTEP_SEARCH_URL must be an http:// or https:// URL, got {self.base_url!r}")
        provider: SearchProvider = entry.from_config(self)
        return provider


class WebSearch(SearchIndex):
    """Search the web through a provider; ``open`` reads a result's page (by URL, or by a title it returned)."""

    name = "web"

    def __init__(
        self,
        config: WebSearchConfig | None = None,
        *,
        provider: SearchProvider | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.config = config or WebSearchConfig.from_env()
        self.provider = provider or self.config.make_provider()
        self._client = client or httpx.Client(timeout=self.config.timeout, follow_redirects=True,
                                              headers={"User-Agent": USER_AGENT})
        self._owns_client = client is None
        self._titles: OrderedDict[str, str] = OrderedDict()  # lowercased title -> URL, from recent results
        self._pages: OrderedDict[str, tuple[str, str]] = OrderedDict()  # URL -> (title, text) of recent opens
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return 0  # the web has no fixed size

    def __repr__(self) -> str:
        return f"WebSearch(provider={self.provider.name!r}, base_url={self.provider.base_url!r})"

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def search(self, query: str, k: int = 5) -> list[SearchHit]:
        """The provider's top ``k`` results. The query is sent as written (operators such as ``site:`` work),
        cut to its first ``MAX_QUERY_TERMS`` words and ``MAX_WEB_QUERY_CHARS`` characters."""
        k = check_k(k)
        query_terms(query)  # refuses an empty or punctuation-only query before spending a request on it
        text = " ".join(query.split()[:MAX_QUERY_TERMS])[:MAX_WEB_QUERY_CHARS]
        url, params, headers = self.provider.request(text, k)
        response = self._get(url, params=params, headers=headers)
        try:
            data = response.json()
        except ValueError as exc:
            raise SearchError(f"{self.provider.name} at {self.provider.base_url} returned malformed JSON "
                              f"({_short(str(exc))}): {_short(response.text)!r}") from None
        try:
            hits = self.provider.parse(data)[:k]
        except ValueError as exc:
            raise SearchError(f"{self.provider.name} at {self.provider.base_url} returned an unexpected answer: "
                              f"{exc}") from None
        with self._lock:
            for hit in hits:
                self._titles[hit.title.lower()] = hit.id
                self._titles.move_to_end(hit.title.lower())
            while len(self._titles) > 500:
                self._titles.popitem(last=False)
        return hits

    def open(self, title_or_id: str, page: int = 0, page_chars: int = 4000) -> DocumentPage:
        """Page ``page`` of the readable text at a URL (or of a result title from an earlier search)."""
        key = str(title_or_id).strip()
        with self._lock:
            url = key if urlsplit(key).scheme in ("http", "https") else self._titles.get(key.lower())
        if url is None:
            raise DocumentNotFoundError(f"{key[:200]!r} is neither an http(s) URL nor a title from recent results; "
                                        "pass a result's URL (its id)")
        with self._lock:
            cached = self._pages.get(url)
        if cached is None:
            cached = self._fetch(url)
            with self._lock:
                self._pages[url] = cached
                while len(self._pages) > 16:
                    self._pages.popitem(last=False)
        title, text = cached
        return paginate(url, title, text, page, page_chars)

    def _fetch(self, url: str) -> tuple[str, str]:
        """``(title, text)`` of a web page: HTML reduced to its readable text, plain text as is."""
        response = self._get(url, what=url)
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        body = response.content[:MAX_PAGE_BYTES].decode(response.encoding or "utf-8", errors="replace")
        if kind in ("text/html", "application/xhtml+xml", ""):
            return html_to_text(body, fallback_title=url)
        if kind.startswith("text/") or kind in ("application/json", "application/xml"):
            return url, body
        raise SearchError(f"{url} is not a text page (content type {kind}); open a different result")

    def _get(self, url: str, *, params: dict[str, str | int] | None = None,
             headers: dict[str, str] | None = None, what: str | None = None) -> httpx.Response:
        """GET with retries on connection errors, 429 and 5xx; every failure becomes a one-line ``SearchError``."""
        cfg = self.config
        who = what or f"{self.provider.name} at {self.provider.base_url}"
        for attempt in range(cfg.retries + 1):
            last = attempt == cfg.retries
            try:
                response = self._client.get(url, params=params, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if last:
                    raise SearchError(f"cannot reach {who} after {attempt + 1} attempts: {_short(str(exc))}; "
                                      "check the URL (PEERSTEP_SEARCH_URL) and that the service is running") from None
                self._sleep(attempt, None)
                continue
            except httpx.TimeoutException:
                raise SearchError(f"{who} did not answer within {cfg.timeout:g} s "
                                  "(PEERSTEP_SEARCH_TIMEOUT)") from None
            except httpx.HTTPError as exc:
                raise SearchError(f"request to {who} failed: {type(exc).__name__}: {_short(str(exc))}") from None
            status = response.status_code
            if status == 429 or status >= 500:
                if last:
                    reason = "rate limited" if status == 429 else "server error"
                    raise SearchError(f"{who} answered HTTP {status} ({reason}) {attempt + 1} times; try again later")
                self._sleep(attempt, response.headers.get("retry-after"))
                continue
            if status in (401, 403) and what is None:
                raise SearchError(self.provider.refused(status))
            if status >= 400:
                raise SearchError(f"{who} answered HTTP {status}: {_short(response.text)!r}")
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = self.config.backoff * 2**attempt
        if retry_after and retry_after.strip().isdigit():
            delay = max(delay, float(retry_after))
        time.sleep(min(delay, self.config.max_backoff))


def _short(text: str, limit: int = 160) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[:limit] + "…"


class _TextExtractor(HTMLParser):
    """Collects a page's visible text with line breaks at block elements; drops scripts, styles and the head."""

    SKIP = frozenset({"script", "style", "noscript", "template", "svg", "head"})
    BLOCK = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article",
                       "header", "footer", "blockquote", "pre", "table", "ul", "ol", "dd", "dt", "hr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self.SKIP:
            self._skip += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self.SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip:
            self.parts.append(data)


def html_to_text(markup: str, fallback_title: str = "") -> tuple[str, str]:
    """``(title, text)`` of an HTML page: visible text only, runs of spaces and blank lines collapsed."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    lines = (re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in "".join(parser.parts).split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return re.sub(r"\s+", " ", parser.title).strip() or fallback_title, text
