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

import httpx
import openai

from peerstep._errors import ModelServerError
from peerstep.agent import ModelClient
from peerstep.client import missing_version_hint
from peerstep.engines import EngineConfig, ManagedEngine, make_engine
from peerstep.models import DEFAULT_MODEL

T = TypeVar("T")


class Endpoint:
    """A model server to talk to: given by URL, or started (and later stopped) by peerstep.

    Settings fall back to ``PEERSTEP_BASE_URL`` (or ``OPENAI_BASE_URL``), ``PEERSTEP_MODEL``,
    ``PEERSTEP_API_KEY`` (or ``OPENAI_API_KEY``) and ``PEERSTEP_ENGINE``. The base URL is the
    ``base_url`` argument (``--base-url``) if given, else ``PEERSTEP_BASE_URL``, else
    ``OPENAI_BASE_URL``; ``base_url_source`` says which. A base URL from any of them is used as
    it is: peerstep then never starts its embedded engine, and ``open`` asks the server for its
    models first, so a server that is not there fails at once, in one line naming the URL and
    where it came from (a stale ``OPENAI_BASE_URL`` in the shell is the usual surprise).
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
        self.base_url, self.base_url_source = base_url_setting(base_url)
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
        _run_sync(self._probe())
        return self.client()

    async def aopen(self) -> ModelClient:
        """``open`` for async code: the engine starts in a worker thread."""
        await asyncio.to_thread(self._start_engine)
        await self._probe()
        return self.client()

    async def _probe(self) -> None:
        """Ask a server named by URL for its models: the first one is the model when none is named. A server that is
        not there, or a base URL without ``/v1``, fails here in one line; other refusals are left to the first
        request when a model is named (a server may serve chat without listing its models)."""
        assert self.base_url is not None
        if self.engine is not None and self.model:
            return  # peerstep started it, waited for it, and knows what it serves
        try:
            models = await _list_models(self.base_url, self.api_key)
        except ModelServerError as exc:
            if self.model and not _server_is_missing(exc, self.base_url):
                return
            raise type(exc)(f"{exc}{self._source_note()}") from exc
        if not self.model:
            if not models:
                raise ModelServerError(f"{self.base_url} serves no models; pass --model{self._source_note()}")
            self.model = models[0]

    def _source_note(self) -> str:
        if self.base_url_source in _BASE_URL_VARIABLES:
            return (f" (the base URL {self.base_url} comes from {self.base_url_source}; unset it to let peerstep "
                    "start its embedded engine)")
        return ""

    def client(self) -> ModelClient:
        """A new client for this (opened) endpoint; every concurrent episode of an eval gets its own."""
        if self.base_url is None or not self.model:
            raise RuntimeError("open the endpoint before asking for a client")
        # what the server accepts is declared by its engine alone: an engine peerstep runs hands out its own client
        # (which also carries its run defaults); a server given by URL is judged by an engine of the kind named
        # (--engine), configured like this machine but never started, and sets no run defaults
        if self.engine is not None:
            return self.engine.client(api_key=self.api_key, timeout=self.timeout, max_retries=self.max_retries)
        judge = make_engine(self.engine_name, self.engine_config or EngineConfig(model=self.model or DEFAULT_MODEL))
        return ModelClient(self.base_url, self.model, self.api_key, timeout=self.timeout,
                           max_retries=self.max_retries, supports_continue=judge.supports_continue,
                           supports_seed=judge.supports_seed)

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


# where a base URL may come from besides the argument, in order of precedence
_BASE_URL_VARIABLES = ("PEERSTEP_BASE_URL", "OPENAI_BASE_URL")


def base_url_setting(base_url: str | None = None) -> tuple[str | None, str | None]:
    """The base URL to use and where it came from: ``base_url`` ("argument"), else ``PEERSTEP_BASE_URL``, else
    ``OPENAI_BASE_URL`` (the variable's name); ``(None, None)`` when none is set (peerstep starts its engine)."""
    if base_url:
        return base_url, "argument"
    for variable in _BASE_URL_VARIABLES:
        value = os.environ.get(variable, "").strip()
        if value:
            return value, variable
    return None, None


async def _list_models(base_url: str, api_key: str | None) -> list[str]:
    client = ModelClient(base_url, "", api_key, max_retries=1)
    try:
        return await client.list_models()
    finally:
        await client.close()


def _server_is_missing(exc: ModelServerError, base_url: str) -> bool:
    """True when nothing answered at the base URL, or it answered 404 for a URL with no ``/v1``: the named server
    cannot be used at all, whatever the model."""
    cause = exc.__cause__
    if isinstance(cause, openai.NotFoundError):
        return missing_version_hint(base_url, "/models") is not None
    return isinstance(cause, openai.APIConnectionError | httpx.TransportError)


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from sync code, also when an event loop is already running in this thread
    (Jupyter): then it runs on a fresh loop in a worker thread, since ``asyncio.run`` would refuse."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="peerstep-sync") as pool:
        return pool.submit(asyncio.run, coro).result()
