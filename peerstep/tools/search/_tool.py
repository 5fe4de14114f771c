"""The agent's view of a search index: a ``search`` tool and an ``open_page`` tool.

Two tools rather than one because a model reads better in two steps: first short ranked snippets to choose from,
then the full text of the one it chose, a page at a time so a long document never floods its context. The tool
outputs are plain text laid out for a model (ids to quote back, page numbers to ask for); a bad call (no words,
unknown title, page out of range) raises, which ``Tool`` turns into an ``ok=False`` observation with the reason.
"""

from __future__ import annotations

import re

from peerstep.tools._base import Tool
from peerstep.tools.search._base import SearchIndex
from peerstep.tools.search._fts5 import Fts5Index

__all__ = ["MAX_TOOL_K", "PAGE_CHARS", "search_tools"]

MAX_TOOL_K = 10
MIN_TOOL_K = 3
PAGE_CHARS = 4000


def _describe(index: SearchIndex) -> str:
    size = len(index)
    return f"the web ({index.name})" if size == 0 else f"the {index.name!r} collection ({size:,} documents)"


_PASTED_ID = re.compile(r"\(id:\s*(.+?)\)\s*$")


def search_tools(index: SearchIndex, *, timeout: float = 30.0) -> list[Tool]:
    """``[search, open_page]`` tools over ``index``, with descriptions that say what the collection is."""
    what = _describe(index)

    def search(query: str, k: int = 5) -> str:
        """Search for documents.

        Args:
            query: What to look for: a few keywords or a short question, e.g. "photosynthesis" or "Albert Einstein".
            k: How many results to return, 3 to 10.
        """
        # small models ask for k=1 and then trust a poor top hit: always show a few
        k = max(MIN_TOOL_K, min(k, MAX_TOOL_K))
        # the tool gives up on a call after `timeout` and abandons its thread: the search itself must stop by then
        # too, or that thread would go on using a core and keep the process from exiting
        hits = index.search(query, k, timeout=timeout) if isinstance(index, Fts5Index) else index.search(query, k)
        if not hits:
            return f"No results for {query[:200]!r}. Try different or fewer words."
        lines = []
        for i, hit in enumerate(hits, start=1):
            lines.append(f"{i}. {hit.title} (id: {hit.id})")
            if hit.snippet:
                lines.append(f"   {hit.snippet}")
        lines.append("Read a result in full with open_page(title_or_id=<its id>).")
        return "\n".join(lines)

    def open_page(title_or_id: str, page: int = 0) -> str:
        """Read a document's full text, one page at a time.

        Args:
            title_or_id: The id (or exact title) of a search result.
            page: Which page to read, counting from 0.
        """
        # models often paste a whole result line, "Title (id: X)": the id is what they meant
        pasted = _PASTED_ID.search(title_or_id)
        doc = index.open(pasted.group(1).strip() if pasted else title_or_id, page=page, page_chars=PAGE_CHARS)
        header = f"{doc.title} (id: {doc.id}) - page {doc.page} of pages 0 to {doc.total_pages - 1}"
        footer = (f"[more: open_page(title_or_id={doc.id!r}, page={doc.page + 1})]" if doc.has_more
                  else "[end of document]")
        return f"{header}\n\n{doc.text}\n\n{footer}"

    return [
        Tool(search, name="search", timeout=timeout,
             description=f"Search {what}; returns ranked results with an id, a title and a snippet."),
        Tool(open_page, name="open_page", timeout=timeout,
             description=f"Read the full text of a document from {what} by its id or title, a page at a time "
                         f"({PAGE_CHARS} characters per page)."),
    ]
