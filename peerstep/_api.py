"""The small public API: get a model endpoint, run an episode, solve a question.

An ``Endpoint`` is either a server the user names (``base_url``) or one peerstep starts
and owns (``engine``). Either way the caller gets one ``ModelClient``; nothing else in
peerstep cares which.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import BaseModel

from peerstep.agent import AgentConfig, ModelClient, Trajectory
from peerstep.agent._trajectory import Listener, TokenSink
from peerstep.engines import EngineConfig, ManagedEngine, has_gpu, make_engine
from peerstep.environments import Environment, QuestionEnvironment
from peerstep.graphs import run_trajectory
from peerstep.models import DEFAULT_MODEL
from peerstep.steplog import StepKind, StepLog
from peerstep.tools import Tool


class EpisodeResult(BaseModel):
    run_id: str
    log_path: Path
    answer: str | None
    reward: float | None
    steps: int
    tokens: int
    error: str | None = None
    gold: str | None = None


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

    def open(self) -> ModelClient:
        if self.base_url is None:
            config = self.engine_config or EngineConfig(model=self.model or DEFAULT_MODEL)
            self.engine = make_engine(self.engine_name, config)
            self.base_url = self.engine.start()
            self.model = self.engine.served_name
        if not self.model:
            self.model = asyncio.run(_first_model(self.base_url, self.api_key))
        return self.client()

    def client(self) -> ModelClient:
        """A new client for this (opened) endpoint; every concurrent episode of an eval gets its own."""
        if self.base_url is None or not self.model:
            raise RuntimeError("open the endpoint before asking for a client")
        if self.engine is not None:
            supports_continue, supports_seed = self.engine.supports_continue, self.engine.supports_seed
        else:  # a server given by URL: judged by its engine name, and for vLLM by this machine's GPU
            supports_continue = self.engine_name == "vllm"
            supports_seed = self.engine_name != "vllm" or has_gpu()
        return ModelClient(self.base_url, self.model, self.api_key, timeout=self.timeout,
                           max_retries=self.max_retries, supports_continue=supports_continue,
                           supports_seed=supports_seed)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.stop()

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
        from peerstep._errors import ModelServerError

        raise ModelServerError(f"{base_url} serves no models; pass --model")
    return models[0]


async def run_episode(
    env: Environment,
    client: ModelClient,
    *,
    config: AgentConfig | None = None,
    log: StepLog | None = None,
    listeners: list[Listener] | None = None,
    on_token: TokenSink | None = None,
    meta: dict[str, Any] | None = None,
) -> EpisodeResult:
    """Run one episode with a single trajectory; every step goes to ``log`` (a new run if None)."""
    config = config or AgentConfig()
    own_log = log is None
    log = log or StepLog.create(meta={"model": client.model, "base_url": client.base_url,
                                      "config": config.model_dump(), **(meta or {})})
    trajectory = Trajectory(client, env, log, config, listeners=listeners, on_token=on_token)
    try:
        state = await run_trajectory(trajectory)
        result = EpisodeResult(run_id=log.run_id, log_path=log.path, answer=state.get("answer"),
                               reward=state.get("reward"), steps=state.get("steps", 0),
                               tokens=state.get("tokens", 0), error=state.get("error"), gold=env.gold)
        log.log(StepKind.RUN_END, text=result.answer, data={"error": result.error, "steps": result.steps,
                                                            "tokens": result.tokens, "reward": result.reward})
        log.set_meta({"status": "error" if result.error else "done", "answer": result.answer})
        return result
    finally:
        await env.close()
        if own_log:
            log.close()


async def asolve(question: str, client: ModelClient, *, tools: list[Tool] | None = None, gold: str | None = None,
                 config: AgentConfig | None = None, python: bool = True, **kwargs: Any) -> EpisodeResult:
    """Answer one question with ``client``; ``python`` adds the sandboxed Python tool to the calculator."""
    env = QuestionEnvironment(question, tools=tools, gold=gold, python=python)
    return await run_episode(env, client, config=config, meta={"question": question[:2000]}, **kwargs)


def solve(question: str, *, tools: list[Tool] | None = None, gold: str | None = None,
          config: AgentConfig | None = None, python: bool = True, **endpoint: Any) -> EpisodeResult:
    """Answer one question, starting the embedded engine unless ``base_url`` is given."""
    # built before the server starts, so a bad question fails fast
    env = QuestionEnvironment(question, tools=tools, gold=gold, python=python)

    async def main(client: ModelClient) -> EpisodeResult:
        try:
            await client.check()
            return await run_episode(env, client, config=config, meta={"question": question[:2000]})
        finally:
            await client.close()

    with Endpoint(**endpoint) as client:
        return asyncio.run(main(client))
