"""One registry per family: an entry registered by name in ``peerstep.registry`` is usable through the family's
normal entry point, and an unknown name is one clear error listing the known ones."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from peerstep import InputError
from peerstep.engines import EngineConfig, VllmEngine, make_engine
from peerstep.grading import CHECKER_NAMES, Checker, get_checker
from peerstep.graphs.parallel import ParallelConfig
from peerstep.registry import (
    AGGREGATORS,
    CHECKERS,
    ENGINES,
    SANDBOXES,
    SEARCH_BACKENDS,
    Registry,
)
from peerstep.tools.sandbox import LocalUnsafeSandbox, SandboxError, make_sandbox
from peerstep.tools.search import SearchHit, SearchProvider, WebSearch, WebSearchConfig
from peerstep.verify import Candidate, Decision
from tests.scripted import calc, scripted_vote, submit


@pytest.fixture()
def registered() -> Iterator[Any]:
    """``registered(REGISTRY, name, obj)`` adds an entry for one test; every entry added is removed afterwards."""
    added: list[tuple[Registry[Any], str]] = []

    def add(registry: Registry[Any], name: str, obj: Any) -> Any:
        assert name not in registry, f"{name!r} is already registered"
        registry.register(name, obj)
        added.append((registry, name))
        return obj

    yield add
    for registry, name in added:
        registry.unregister(name)


# ------------------------------------------------------------------------------------------------------- registry


def test_unregister_removes_an_entry_and_refuses_an_unknown_one() -> None:
    reg: Registry[int] = Registry("widget", {"a": 1})
    reg.register("b", 2)
    assert reg.names() == ["a", "b"] and reg.get("b") == 2
    reg.unregister("b")
    assert "b" not in reg and reg.names() == ["a"]
    with pytest.raises(InputError, match="unknown widget 'b'; known: a"):
        reg.unregister("b")
    with pytest.raises(InputError, match="unknown widget 'b'; known: a"):
        reg.get("b")


# -------------------------------------------------------------------------------------------------------- engines


class MyEngine(VllmEngine):
    """An engine of the user's own (built only, never started here)."""


def test_a_registered_engine_is_made_by_name(registered: Any) -> None:
    registered(ENGINES, "my-engine", MyEngine)
    engine = make_engine("my-engine", EngineConfig(model="m"))
    assert isinstance(engine, MyEngine) and engine.config.model == "m"


def test_a_lazily_registered_engine_is_imported_on_use(registered: Any) -> None:
    registered(ENGINES, "lazy-engine", f"{__name__}:MyEngine")
    assert isinstance(make_engine("lazy-engine", EngineConfig(model="m")), MyEngine)


def test_an_unknown_engine_lists_the_registered_ones(registered: Any) -> None:
    registered(ENGINES, "my-engine", MyEngine)
    with pytest.raises(ValueError, match="unknown engine 'tgi'; choose one of: llamacpp, my-engine, vllm"):
        make_engine("tgi", EngineConfig(model="m"))


def test_the_engines_package_and_the_registry_share_one_table() -> None:
    from peerstep import engines

    assert engines.ENGINES is ENGINES


# ------------------------------------------------------------------------------------------------------ sandboxes


class MySandbox(LocalUnsafeSandbox):
    """A sandbox backend of the user's own (built only, never started here)."""


def test_a_registered_sandbox_is_made_by_name_and_from_the_environment(registered: Any,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    registered(SANDBOXES, "my-sandbox", MySandbox)
    box = make_sandbox("my-sandbox", timeout_s=3)
    assert isinstance(box, MySandbox) and box.limits.timeout_s == 3
    monkeypatch.setenv("PEERSTEP_SANDBOX", "My-Sandbox")
    assert isinstance(make_sandbox(), MySandbox)


def test_an_unknown_sandbox_is_a_sandbox_error_and_never_falls_back(registered: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    registered(SANDBOXES, "my-sandbox", MySandbox)
    with pytest.raises(SandboxError, match="unknown sandbox backend 'docker'; known: bwrap, e2b, local-unsafe, "
                                           "my-sandbox"):
        make_sandbox("docker")
    monkeypatch.setenv("PEERSTEP_SANDBOX", "local-unsave")  # a typo must not pick the unconfined kernel
    with pytest.raises(SandboxError, match="unknown sandbox backend 'local-unsave'"):
        make_sandbox()


def test_a_sandbox_whose_package_is_missing_is_a_sandbox_error(registered: Any) -> None:
    registered(SANDBOXES, "missing", "no_such_sandbox_package_xyz.backend:Box")
    with pytest.raises(SandboxError, match="sandbox backend 'missing' needs the package 'no_such_sandbox_package_xyz'"):
        make_sandbox("missing")


# ----------------------------------------------------------------------------------------------------- web search


@dataclass
class EchoProvider(SearchProvider):
    """A search API of the user's own: ``GET {base}/find?term=...`` answering ``{"hits": [{"link", "name"}]}``."""

    base_url: str
    name: str = "Echo"

    def request(self, query: str, k: int) -> tuple[str, dict[str, str | int], dict[str, str]]:
        return f"{self.base_url}/find", {"term": query}, {}

    def parse(self, data: Any) -> list[SearchHit]:
        return [SearchHit(id=h["link"], title=h["name"], snippet="", score=1.0) for h in data["hits"]]


def test_a_registered_web_provider_is_chosen_by_name_and_searched(registered: Any) -> None:
    registered(SEARCH_BACKENDS, "echo", EchoProvider)
    config = WebSearchConfig.from_env({"PEERSTEP_SEARCH_PROVIDER": "Echo", "PEERSTEP_SEARCH_URL": "http://echo:1"})
    provider = config.make_provider()
    assert isinstance(provider, EchoProvider) and provider.base_url == "http://echo:1"

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/find" and request.url.params["term"] == "kiwi"
        return httpx.Response(200, json={"hits": [{"link": "http://echo:1/kiwi", "name": "Kiwi"}]})

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        hits = WebSearch(config, client=client).search("kiwi")
    assert [(h.id, h.title) for h in hits] == [("http://echo:1/kiwi", "Kiwi")]


def test_a_registered_web_provider_without_its_url_says_so(registered: Any) -> None:
    registered(SEARCH_BACKENDS, "echo", EchoProvider)
    with pytest.raises(InputError, match="'echo' search provider needs a URL: set PEERSTEP_SEARCH_URL"):
        WebSearchConfig(provider="echo").make_provider()


def test_an_unknown_web_provider_lists_only_web_providers(registered: Any) -> None:
    registered(SEARCH_BACKENDS, "echo", EchoProvider)
    for name in ("bing", "fts5"):  # fts5 is a search backend, but an index, not a web provider
        with pytest.raises(InputError, match=f"unknown search provider '{name}' \\(PEERSTEP_SEARCH_PROVIDER\\); "
                                             "known: brave, echo, searxng$"):
            WebSearchConfig(provider=name, base_url="http://h:1").make_provider()


# ------------------------------------------------------------------------------------------------------- checkers


class WithinChecker:
    """A checker of the user's own: an answer within ``slack`` characters of the gold's length is right."""

    def __init__(self, slack: int = 0) -> None:
        self.slack = slack

    def __call__(self, prediction: str, gold: str) -> bool:
        return abs(len(prediction) - len(gold)) <= self.slack


def test_a_registered_checker_is_got_by_name_with_its_options(registered: Any) -> None:
    registered(CHECKERS, "within", WithinChecker)
    checker: Checker = get_checker("within", slack=2)
    assert checker("abcd", "ab") and not checker("abcdef", "ab")
    assert not get_checker("within")("abc", "ab")
    with pytest.raises(InputError, match="checker 'within' does not take option\\(s\\) rtol; it takes: slack"):
        get_checker("within", rtol=0.1)


def test_an_unknown_checker_lists_the_registered_ones(registered: Any) -> None:
    registered(CHECKERS, "within", WithinChecker)
    with pytest.raises(InputError, match="unknown checker 'fuzzy'; known: exact, math, numeric, python, "
                                         "short_answer, within"):
        get_checker("fuzzy")


def test_a_task_file_names_a_registered_checker_with_its_options(registered: Any, tmp_path: Path) -> None:
    from peerstep.environments.taskfile import load_task_file

    registered(CHECKERS, "within", WithinChecker)
    path = tmp_path / "tasks.yaml"
    path.write_text("tasks:\n"
                    "  - {question: Spell a word., checker: {type: within, slack: 1}, gold: abc}\n"
                    "  - {question: Spell another., checker: within, gold: abc}\n")
    loose, strict = load_task_file(path)
    assert loose.checker("abcd", "abc") and not strict.checker("abcd", "abc")
    path.write_text("- {question: Spell a word., checker: {type: within, rtol: 1}, gold: abc}\n")
    with pytest.raises(InputError, match="does not take option\\(s\\) rtol"):
        load_task_file(path)
    path.write_text("- {question: Spell a word., checker: {type: fuzzy}, gold: abc}\n")
    with pytest.raises(InputError, match=r"unknown checker 'fuzzy'; known: .*within"):
        load_task_file(path)


def test_the_built_in_checker_names_are_registered() -> None:
    assert set(CHECKER_NAMES) <= set(CHECKERS)


# ---------------------------------------------------------------------------------------------------- aggregators


def last_answer(candidates: Sequence[Candidate], equivalent: Checker) -> Decision:
    """An aggregator of the user's own: the answer of the highest-numbered trajectory that answered."""
    answered = [c for c in candidates if c.answer]
    last = answered[-1]
    return Decision(answer=last.answer, method="last-answer", support=1.0, total=float(len(answered)))


async def test_a_registered_aggregator_decides_a_scripted_run(registered: Any, tmp_path: Path) -> None:
    registered(AGGREGATORS, "last-answer", last_answer)
    # two trajectories say 40 and the last says 42: the majority would pick 40, this aggregator picks 42
    scripts = {0: [submit("40")], 1: [submit("40")], 2: [calc("6*7"), submit("42")]}
    config = ParallelConfig(n=3, max_rounds=1, round_steps=5, aggregate="last-answer")
    result, aggregate = await scripted_vote(scripts, config, tmp_path)
    assert result.answer == "42" and result.correct is True and result.decision.method == "last-answer"
    assert aggregate.data["decision"]["method"] == "last-answer" and "backed" not in aggregate.data


def test_an_unknown_aggregator_is_refused_when_the_config_is_built(registered: Any) -> None:
    registered(AGGREGATORS, "last-answer", last_answer)
    with pytest.raises(ValidationError, match="unknown aggregator 'plurality'; known: best-of-n, last-answer, "
                                              "listwise, majority, tool-backed, weighted"):
        ParallelConfig(aggregate="plurality")
    assert ParallelConfig(aggregate="last-answer").aggregate == "last-answer"


def test_every_built_in_aggregate_is_registered() -> None:
    for name in ("majority", "weighted", "best-of-n", "listwise", "tool-backed"):
        assert callable(AGGREGATORS.get(name))
        assert ParallelConfig(aggregate=name).aggregate == name
