"""Real engines for end-to-end tests: started once per session, stopped at the end.

Each engine gets a private state directory so a test never reuses a server some other
process left running.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from peerstep.engines import EngineConfig, LlamaCppEngine, ManagedEngine, VllmEngine
from peerstep.models import DEFAULT_MODEL


@pytest.fixture(scope="session")
def llamacpp_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedEngine]:
    engine = LlamaCppEngine(EngineConfig(model=DEFAULT_MODEL), state_dir=tmp_path_factory.mktemp("llamacpp"))
    engine.start(reuse=False)
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def vllm_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedEngine]:
    engine = VllmEngine(EngineConfig(model=DEFAULT_MODEL, context_length=4096, start_timeout=900),
                        state_dir=tmp_path_factory.mktemp("vllm"))
    engine.start(reuse=False)
    yield engine
    engine.stop()


@pytest.fixture(params=["llamacpp", "vllm"])
def engine(request: pytest.FixtureRequest) -> ManagedEngine:
    """Every test using this runs on both engines: the vLLM path is proven on every CI run."""
    return request.getfixturevalue(f"{request.param}_engine")


@pytest.fixture()
def runs_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run every vLLM-backed test last, together: the vLLM server, once started, stays up to the end of the
    session, and its CPU worker keeps both cores busy; llama.cpp tests run before it starts."""
    items.sort(key=lambda item: "[vllm" in item.nodeid or "vllm_engine" in getattr(item, "fixturenames", ()))
