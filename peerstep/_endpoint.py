"""A model endpoint: a server the user names (``base_url``) or one peerstep starts and owns (``engine``).

Either way the caller gets one ``ModelClient``; nothing else in peerstep cares which. It opens
and closes from sync code (``with Endpoint() as client``) and from async code (``async with``),
where the blocking engine start runs in a worker thread so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from peerstep._errors import ModelServerError
from peerstep.agent import ModelClient
from peerstep.engines import EngineConfig, ManagedEngine, make_engine
from peerstep.models import DEFAULT_MODEL

T = TypeVar("T")


class Endpoint:
    """A model server to talk to: given by URL, or started (and later stopped) by peerstep.

    Settings fall back to ``PEERSTEP_BASE_URL``, ``PEERSTEP_MODEL``, ``PEERSTEP_API_KEY``
    (or ``OPENAI_API_KEY``) and ``PEERSTEP_ENGINE``.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        engine: str | None = None,
        engine_config: EngineConfig | None = None,
        timeout: float = 600.0,
        max_retries: int = 4,
    ) -> None:
        self.base_url = base_url or os.environ.get("PEERSTEP_BASE_URL")
        self.model = model or os.environ.get("PEERSTEP_MODEL")
        self.api_key = api_key or os.environ.get("PEERSTEP_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self.engine_name = engine or os.environ.get("PEERSTEP_ENGINE") or "llamacpp"
        self.engine_config = engine_config
        self.timeout = timeout
        self.max_retries = max_retries
        self.engine: ManagedEngine | None = None

    def _start_engine(self) -> None:
        if self.base_url is None:
            config = self.engine_config or EngineConfig(model=self.model or DEFAULT_MODEL)
            self.engine = make_engine(self.engine_name, config)
            self.base_url = self.engine.start()
            self.model = self.engine.served_name

    def open(self) -> ModelClient:
        """Start the engine if none is named, and return a client (blocking; see ``aopen`` for async code)."""
        self._start_engine()
        if not self.model:
            assert self.base_url is not None
            self.model = _run_sync(_first_model(self.base_url, self.api_key))
        return self.client()

    async def aopen(self) -> ModelClient:
        """``open`` for async code: the engine starts in a worker thread."""
        await asyncio.to_thread(self._start_engine)
        if not self.model:
            assert self.base_url is not None
            self.model = await _first_model(self.base_url, self.api_key)
        return self.client()

    def client(self) -> ModelClient:
        """A new client for this (opened) endpoint; every concurrent episode of an eval gets its own."""
        if self.base_url is None or not self.model:
            raise RuntimeError("open the endpoint before asking for a client")
        # what the server accepts is declared by its engine alone; a server given by URL is judged by an engine of
        # the kind named (--engine), configured like this machine but never started
        engine = self.engine or make_engine(self.engine_name, self.engine_config or EngineConfig(
            model=self.model or DEFAULT_MODEL))
        supports_continue, supports_seed = engine.supports_continue, engine.supports_seed
        return ModelClient(self.base_url, self.model, self.api_key, timeout=self.timeout,
                           max_retries=self.max_retries, supports_continue=supports_continue,
                           supports_seed=supports_seed)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.stop()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    async def __aenter__(self) -> ModelClient:
        return await self.aopen()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    def __enter__(self) -> ModelClient:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


async def _first_model(base_url: str, api_key: str | None) -> str:
    client = ModelClient(base_url, "", api_key, max_retries=1)
    try:
        models = await client.list_models()
    finally:
        await client.close()
    if not models:
        raise ModelServerError(f"{base_url} serves no models; pass --model")
    return models[0]


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from sync code, also when an event loop is already running in this thread
    (Jupyter): then it runs on a fresh loop in a worker thread, since ``asyncio.run`` would refuse."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="peerstep-sync") as pool:
        return pool.submit(asyncio.run, coro).result()
