"""The one interface every search backend implements, its result models, and the query/page helpers they share.

A backend is small on purpose (like httpx's ``BaseTransport``): ``search`` ranks, ``open`` reads, ``__len__`` counts.
Everything that is about *user text* rather than about a backend lives here, so each backend treats hostile input
the same way: the query is reduced to at most ``MAX_QUERY_TERMS`` plain words before a backend sees it, which makes a
10,000-word query as cheap as a short one and means no punctuation ever reaches a query language.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from types import TracebackType
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

from peerstep._errors import InputError, PeerstepError

__all__ = [
    "MAX_QUERY_TERMS",
    "DocumentNotFoundError",
    "DocumentPage",
    "QueryError",
    "SearchError",
    "SearchHit",
    "SearchIndex",
    "paginate",
    "query_terms",
]

MAX_QUERY_TERMS = 32  # distinct words kept from a query; more only slows ranking without improving it
MAX_TERM_CHARS = 64  # a "word" longer than this is noise (a hash, base64), not something an index holds
MAX_K = 100  # results a single search may return

# Words so common that they match most documents: ranking them costs time and adds nothing. Kept only when a
# query consists of nothing else (so "The Who" still finds something).
_STOPWORD_TEXT = (
    "a about above after again against all am an and any are as at be because been before being below between "
    "both but by can could did do does doing down during each few for from further had has have having he her "
    "here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not "
    "of off on once only or other our ours ourselves out over own same she should so some such than that the "
    "their theirs them themselves then there these they this those through to too under until up very was we "
    "were what when where which while who whom why will with would you your yours yourself yourselves"
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

# Letters and digits only: the same characters SQLite's unicode61 tokenizer keeps, so a term we extract is exactly
# one token to the index (an underscore or an apostrophe separates words there too).
_Index = TypeVar("_Index", bound="SearchIndex")

_WORD = re.compile(r"[^\W_]+")


class SearchError(PeerstepError):
    """A search backend failed (unreachable service, refused key, unreadable index)."""


class QueryError(InputError):
    """The query cannot be searched as given, e.g. it has no words at all."""


class DocumentNotFoundError(InputError):
    """``open`` was given a title or id that the index does not hold."""


class SearchHit(BaseModel):
    """One ranked result. ``score``: higher is better; comparable only within one result list."""

    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    snippet: str
    score: float


class DocumentPage(BaseModel):
    """One page of a document's full text. Pages are numbered from 0; ``total_pages`` is at least 1."""

    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    text: str
    page: int
    total_pages: int
    total_chars: int

    @property
    def has_more(self) -> bool:
        return self.page + 1 < self.total_pages


class SearchIndex(ABC):
    """A searchable collection of documents: rank with ``search``, read with ``open``.

    Implementations raise ``QueryError`` for a query without words, ``DocumentNotFoundError`` for an unknown
    document, ``InputError`` for a page out of range, and ``SearchError`` when the backend itself fails.
    """

    name: str = "search"

    @abstractmethod
    def search(self, query: str, k: int = 5) -> list[SearchHit]:
        """The ``k`` best documents for ``query``, best first (fewer when fewer match)."""

    @abstractmethod
    def open(self, title_or_id: str, page: int = 0, page_chars: int = 4000) -> DocumentPage:
        """Page ``page`` of the document with this id or title, at most ``page_chars`` characters long."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of documents (0 for a backend without a fixed collection, such as the web)."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release files or connections; the index is unusable afterwards."""

    def __enter__(self: _Index) -> _Index:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def query_terms(query: str, max_terms: int = MAX_QUERY_TERMS) -> list[str]:
    """The distinct lowercase words of ``query`` worth searching for, in order, at most ``max_terms``.

    Stopwords are dropped unless nothing else is left. Raises ``QueryError`` when the query has no letters or
    digits at all, so the caller gets a sentence instead of an empty result it cannot interpret.
    """
    if not isinstance(query, str):
        raise QueryError(f"the query must be text, got {type(query).__name__}")
    words: list[str] = []
    seen: set[str] = set()
    for match in _WORD.finditer(query):
        word = match.group().lower()
        if len(word) > MAX_TERM_CHARS or word in seen:
            continue
        seen.add(word)
        words.append(word)
        if len(words) >= 4 * max_terms:  # enough candidates even if most are stopwords; stop scanning huge input
            break
    if not words:
        shown = query.strip()[:60]
        raise QueryError("the query has no searchable words (letters or digits)" + (f": {shown!r}" if shown else
                         ": it is empty") + "; ask for a topic, e.g. 'photosynthesis' or 'Albert Einstein'")
    content = [w for w in words if w not in STOPWORDS]
    return (content or words)[:max_terms]


def check_k(k: int) -> int:
    """Refuse a result count that is not a positive integer; clamp a huge one to ``MAX_K``."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    return min(k, MAX_K)


def page_bounds(text: str, page_chars: int) -> list[tuple[int, int]]:
    """Split ``text`` into pages of at most ``page_chars`` characters, preferring to cut after whitespace.

    A cut is moved back to the last whitespace in the second half of the window, so pages end between words
    without ever becoming shorter than half a page; a text without whitespace is cut hard.
    """
    if page_chars < 1:
        raise InputError(f"page_chars must be at least 1, got {page_chars}")
    bounds: list[tuple[int, int]] = []
    start, n = 0, len(text)
    while start < n:
        end = start + page_chars
        if end < n:
            cut = max(text.rfind(" ", start + page_chars // 2, end), text.rfind("\n", start + page_chars // 2, end))
            if cut > start:
                end = cut + 1
        else:
            end = n
        bounds.append((start, end))
        start = end
    return bounds or [(0, 0)]


def paginate(doc_id: str, title: str, text: str, page: int, page_chars: int) -> DocumentPage:
    """Page ``page`` of a document, or an ``InputError`` that says which pages exist."""
    bounds = page_bounds(text, page_chars)
    if isinstance(page, bool) or not isinstance(page, int) or not 0 <= page < len(bounds):
        raise InputError(f"page {page!r} does not exist: {title!r} has {len(bounds)} page(s), numbered 0 to "
                         f"{len(bounds) - 1}")
    start, end = bounds[page]
    return DocumentPage(id=doc_id, title=title, text=text[start:end], page=page, total_pages=len(bounds),
                        total_chars=len(text))
