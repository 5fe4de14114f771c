"""The public API is small and pinned; packages import only downward; the sync API works where users call it."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

import peerstep

ROOT = Path(peerstep.__file__).parent

PUBLIC = [
    "STRATEGIES", "AgentConfig", "ApprovalDecision", "ApprovalPolicy", "ApprovalRequest", "ApprovalRule", "Approver",
    "Budget", "Endpoint", "EngineError", "Environment", "EpisodeResult", "InputError",
    "ModelClient", "ModelFetchError", "ModelNotFoundError", "ModelServerError", "ParallelConfig", "PeerstepError",
    "QuestionEnvironment", "SamplingParams", "Session", "SharingConfig", "StepKind", "StepLog", "StepRecord",
    "SyncSession", "Tool",
    "ToolEnvironment", "afork", "aresume", "arun", "asolve", "fork", "register_environment", "resume", "run",
    "solve", "tool",
]

# Lower layers never import higher ones. A package may import any package in a lower layer.
LAYERS: list[set[str]] = [
    {"_errors", "_paths", "registry", "grading", "steplog", "models", "client"},
    {"tools", "engines"},
    {"environments"},
    {"agent"},
    {"peers", "verify"},
    {"graphs"},
    {"strategies"},
    {"_endpoint", "_runner", "_checkpoint", "evals", "testing"},
    {"session", "export", "view", "_label", "_label_peers", "prm"},
    {"cli", "__init__", "__main__"},
]


def test_public_api_is_pinned() -> None:
    """Adding or removing a public name is a decision: change this list with it."""
    assert sorted(peerstep.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert getattr(peerstep, name) is not None


def _package_of(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0].removesuffix(".py")


def _layer(package: str) -> int:
    for i, layer in enumerate(LAYERS):
        if package in layer:
            return i
    raise AssertionError(f"package {package!r} is in no layer: add it to LAYERS")


def _module_imports(path: Path) -> list[tuple[str, int]]:
    """(imported peerstep package, line) for every import at module level or inside functions."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("peerstep"):
            parts = node.module.split(".")
            if len(parts) > 1:
                out.append((parts[1], node.lineno))
            else:  # "from peerstep import x": the top-level package, i.e. the public API
                out.append(("__init__", node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "peerstep" and len(parts) > 1:
                    out.append((parts[1], node.lineno))
    return out


def test_no_package_imports_upward() -> None:
    offences = []
    for path in sorted(ROOT.rglob("*.py")):
        here = _package_of(path)
        if here in ("__init__", "__main__"):
            continue
        for target, line in _module_imports(path):
            if target != here and _layer(target) > _layer(here):
                offences.append(f"{path.relative_to(ROOT.parent)}:{line} ({here}) imports peerstep.{target}")
    assert offences == []


def _package_graph() -> dict[str, set[str]]:
    """package -> the other peerstep packages its modules import (at module level or inside functions)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        here = _package_of(path)
        targets = graph.setdefault(here, set())
        targets.update(target for target, _ in _module_imports(path) if target != here)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of ``graph`` with more than one member (each sorted): its import cycles.

    Tarjan's algorithm; a node may appear only as a target."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(set(graph) | {t for targets in graph.values() for t in targets}):
        if node not in index:
            visit(node)
    return sorted(found)


def test_no_import_cycles_between_packages() -> None:
    """The layers allow imports within a layer (peers and verify, session and export), so they alone would not catch
    two packages importing each other; a cycle of packages, at any distance, is refused here."""
    graph = _package_graph()
    assert {"grading", "agent", "verify", "peers", "session", "export"} <= set(graph)  # the scan saw the tree
    cycles = _cycles(graph)
    assert cycles == [], "packages that import each other: " + "; ".join(
        " <-> ".join(members) + " (" + ", ".join(f"{a} -> {sorted(graph[a] & set(members))}" for a in members) + ")"
        for members in cycles)


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert _cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b"]]
    # a longer cycle through a package seen only as a target, and a second cycle apart from it
    graph = {"peers": {"verify"}, "verify": {"grading"}, "grading": {"peers", "_errors"}, "session": {"export"},
             "export": {"session", "agent"}, "agent": {"grading"}}
    assert _cycles(graph) == [["export", "session"], ["grading", "peers", "verify"]]


def _private_uses(path: Path) -> list[str]:
    """Every peerstep name ``path`` imports that is not public: a module path with a ``_``-part, a ``_`` name, or a
    name missing from the ``__all__`` of the module it comes from."""
    import importlib

    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("peerstep"):
            where = f"{path.name}:{node.lineno}"
            if any(part.startswith("_") for part in node.module.split(".")):
                out.append(f"{where} imports from private module {node.module}")
                continue
            public = getattr(importlib.import_module(node.module), "__all__", None)
            for alias in node.names:
                if alias.name.startswith("_") or (public is not None and alias.name not in public):
                    out.append(f"{where} imports {alias.name!r}, not in {node.module}.__all__")
        elif isinstance(node, ast.Import):
            out += [f"{path.name}:{node.lineno} imports {a.name}" for a in node.names
                    if a.name.startswith("peerstep") and any(p.startswith("_") for p in a.name.split("."))]
    return out


def test_bench_and_examples_use_only_public_names() -> None:
    """What users copy from (examples) and what measures the library (bench) must not reach into private modules:
    a private name can change under them without notice."""
    scripts = sorted((ROOT.parent / "bench").glob("*.py")) + sorted((ROOT.parent / "examples").glob("*.py"))
    assert len(scripts) > 10
    offences = [o for path in scripts for o in _private_uses(path)]
    assert offences == []


def test_private_imports_are_found(tmp_path: Path) -> None:
    script = tmp_path / "probe.py"
    script.write_text("from peerstep.steplog._store import runs_dir\nfrom peerstep.agent import _config\n"
                      "from peerstep.evals import mcnemar_exact\nfrom peerstep import arun\n"
                      "from peerstep.grading import NOT_THERE_AT_ALL\n")
    found = _private_uses(script)
    assert len(found) == 3, found
    assert "private module peerstep.steplog._store" in found[0]
    assert "'_config'" in found[1] and "'NOT_THERE_AT_ALL'" in found[2]


def test_sync_run_inside_a_running_event_loop_reaches_the_server() -> None:
    """As in Jupyter: ``run`` called while a loop runs must not fail with asyncio's bare message. It gets as far
    as the (absent) server and fails with peerstep's own error."""
    from peerstep import ModelServerError, run

    async def notebook_cell() -> None:
        run("What is 2+2?", base_url="http://127.0.0.1:9/v1", model="m", python=False)

    with pytest.raises(ModelServerError):
        asyncio.run(notebook_cell())


def test_a_question_without_gold_has_no_reward(tmp_path: Path) -> None:
    from peerstep import StepLog, arun
    from tests.scripted import ScriptedClient

    result = asyncio.run(arun("What is 2+2?", ScriptedClient(["The answer is 4."]), python=False,
                              log=StepLog.create(directory=tmp_path)))
    assert result.answer == "4" and result.reward is None and result.correct is None
    scored = asyncio.run(arun("What is 2+2?", ScriptedClient(["The answer is 5."]), python=False, gold="4",
                              log=StepLog.create(directory=tmp_path)))
    assert scored.reward == 0.0 and scored.correct is False


def test_sync_run_on_an_endpoint_the_caller_keeps(tmp_path: Path) -> None:
    """``run(..., endpoint=ep)`` opens ``ep`` if needed and leaves it open: one engine serves many runs, and the
    caller closes it. Passing an endpoint and endpoint settings at once is refused."""
    from peerstep import Endpoint, InputError, run
    from peerstep.testing.server import ScriptedServer

    closed: list[int] = []

    class Kept(Endpoint):
        def close(self) -> None:
            closed.append(1)
            super().close()

    with ScriptedServer() as server:
        endpoint = Kept(base_url=server.base_url, model="scripted")
        first = run("What is 12 * 7?", endpoint=endpoint, python=False, runs_dir=tmp_path)
        second = run("What is 9 * 9?", endpoint=endpoint, python=False, runs_dir=tmp_path)
        assert (first.answer, second.answer) == ("84", "81") and server.requests >= 4
        assert closed == []
        with pytest.raises(InputError, match="either endpoint= or base_url"):
            run("What is 2 * 3?", endpoint=endpoint, base_url=server.base_url, python=False, runs_dir=tmp_path)
        endpoint.close()
    assert closed == [1]
