"""Search for agents: one small ``SearchIndex`` interface over an on-disk SQLite FTS5 index (the default, with an
offline Wikipedia corpus built on first use) and over web search APIs (SearxNG, Brave), plus the agent tools.

Typical use::

    from peerstep.tools.search import wikipedia_index, search_tools
    tools = search_tools(wikipedia_index())   # [search, open_page]
"""

from peerstep.tools.search._base import (
    MAX_QUERY_TERMS,
    STOPWORDS,
    DocumentNotFoundError,
    DocumentPage,
    QueryError,
    SearchError,
    SearchHit,
    SearchIndex,
    query_terms,
)
from peerstep.tools.search._corpus import (
    Corpus,
    Document,
    FolderCorpus,
    JsonlCorpus,
    WikipediaCorpus,
    load_corpus,
    wikipedia_summaries_path,
)
from peerstep.tools.search._fts5 import (
    BuildStats,
    Fts5Index,
    build_fts5_index,
    default_index_dir,
    index_is_current,
    index_path,
    open_index,
    open_or_build,
    wikipedia_index,
)
from peerstep.tools.search._tool import search_tools
from peerstep.tools.search._web import (
    BraveProvider,
    SearchProvider,
    SearxngProvider,
    WebSearch,
    WebSearchConfig,
)

__all__ = [
    "MAX_QUERY_TERMS",
    "STOPWORDS",
    "BraveProvider",
    "BuildStats",
    "Corpus",
    "Document",
    "DocumentNotFoundError",
    "DocumentPage",
    "FolderCorpus",
    "Fts5Index",
    "JsonlCorpus",
    "QueryError",
    "SearchError",
    "SearchHit",
    "SearchIndex",
    "SearchProvider",
    "SearxngProvider",
    "WebSearch",
    "WebSearchConfig",
    "WikipediaCorpus",
    "build_fts5_index",
    "default_index_dir",
    "index_is_current",
    "index_path",
    "load_corpus",
    "open_index",
    "open_or_build",
    "query_terms",
    "search_tools",
    "wikipedia_index",
    "wikipedia_summaries_path",
]
