"""One async client for any OpenAI-compatible server (vLLM, llama.cpp, OpenAI itself).

It wraps ``openai.AsyncOpenAI`` and adds what agents need on top of the SDK: one retry
loop that also covers streams dropped half-way (the SDK only retries the initial request),
token accounting that works when a server omits usage in streams, mean token logprobs
for process supervision, and errors that name the URL and the fix in one line.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import openai
from pydantic import BaseModel, Field

from peerstep._errors import ModelNotFoundError, ModelServerError

Message = dict[str, Any]
TokenCallback = Callable[[int, str], None]
"""Called as ``on_token(choice_index, text_delta)`` while a response streams in."""
# sent to on_token when a stream breaks after some of its tokens were delivered; a retry starts the reply anew
STREAM_INTERRUPTED = "\n[stream interrupted]\n"


class SamplingParams(BaseModel):
    """Sampling settings sent with every request. ``top_k``/``min_p``/``extra_body`` go through ``extra_body``."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    stop: list[str] | None = None
    seed: int | None = 0
    top_k: int | None = None
    min_p: float | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    extra_body: dict[str, Any] = Field(default_factory=dict)


class Completion(BaseModel):
    """One choice of a chat completion, normalised across servers."""

    index: int = 0
    text: str = ""
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    token_logprobs: list[float] | None = None
    top_logprobs: list[dict[str, float]] | None = Field(
        default=None, description="per generated token, the alternatives' logprobs (non-streaming requests)")
    latency_s: float = 0.0
    model: str = ""

    @property
    def mean_logprob(self) -> float | None:
        if not self.token_logprobs:
            return None
        return sum(self.token_logprobs) / len(self.token_logprobs)


_RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class IncompleteStreamError(Exception):
    """A stream that ended cleanly (``[DONE]``) before every choice had a finish reason: the server cut it off.

    llama-cpp-python's server does this to a stream in progress whenever another request arrives, unless it was
    started with ``--interrupt_requests False``. Such a reply is partial (often empty), never an answer: the
    attempt is retried like a dropped connection.
    """

    def __init__(self, missing: list[int], expected: int) -> None:
        self.missing = missing
        self.expected = expected
        super().__init__(f"the stream ended without a finish reason for choice(s) {missing} of {expected}")


class ModelClient:
    """Chat completions with retries, streaming and clear errors.

    ``max_retries`` counts extra attempts after the first; waits grow as
    ``backoff * 2**attempt`` with jitter, capped at ``max_backoff`` seconds.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout: float = 600.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        http_client: Any = None,  # an httpx-compatible AsyncClient for the openai SDK
        supports_continue: bool = False,
        supports_seed: bool = True,
        headers: dict[str, str] | None = None,
        tool_choice: str | None = None,
        context_tokens: int | None = None,
    ) -> None:
        """``supports_continue``: the server continues a partial assistant message when asked with
        ``continue_final_message`` (vLLM does; llama-cpp-python and OpenAI do not).

        ``supports_seed``: per-request ``seed`` is sent. vLLM's CPU build (0.32) crashes its engine
        core when a seeded request's prompt is prefilled in chunks (over 2,048 tokens), so a vLLM
        CPU endpoint turns seeds off; sampling then differs between runs but stays diverse.

        ``headers``: sent with every request, e.g. the episode id a router keeps sessions sticky by.

        ``tool_choice`` and ``context_tokens``: what the engine peerstep started says of itself (how a run asks it
        for tool calls, its context window); a run whose ``AgentConfig`` leaves them unset takes them from here, so
        the CLI, the Python API and an eval run the same way on the same server. None for a server given by URL."""
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sdk = openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=api_key or "EMPTY",
            timeout=timeout,
            max_retries=0,  # retried here, so that a stream dropped mid-way is retried too
            http_client=http_client,
            default_headers=headers,
        )
        self.supports_continue = supports_continue
        self.supports_seed = supports_seed
        self.tool_choice = tool_choice
        self.context_tokens = context_tokens
        self.api_key = api_key
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.requests = 0

    @property
    def sdk(self) -> openai.AsyncOpenAI:
        return self._sdk

    async def close(self) -> None:
        await self._sdk.close()

    async def list_models(self) -> list[str]:
        page = await self._with_retries(self._sdk.models.list)
        return [m.id for m in page.data]

    async def check(self) -> None:
        """Fail fast, in one line, if the server is unreachable or does not serve ``self.model``."""
        served = await self.list_models()
        if self.model not in served:
            raise ModelNotFoundError(
                f"model {self.model!r} is not served by {self.base_url}; available: {', '.join(served) or 'none'}"
            )

    async def chat(
        self,
        messages: Sequence[Message],
        *,
        sampling: SamplingParams | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        n: int = 1,
        on_token: TokenCallback | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> list[Completion]:
        """Return ``n`` completions. Streams (calling ``on_token``) when a callback is given."""
        params = sampling or SamplingParams()
        body: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "n": n,
        }
        if params.stop:
            body["stop"] = params.stop
        if params.seed is not None and self.supports_seed:
            body["seed"] = params.seed
        if params.logprobs:
            body["logprobs"] = True
            # llama-cpp-python returns no logprobs unless top_logprobs is set
            body["top_logprobs"] = params.top_logprobs or 1
        if tools:
            body["tools"] = tools
            if tool_choice is not None:
                body["tool_choice"] = tool_choice
        if response_format is not None:
            body["response_format"] = response_format
        extra = dict(params.extra_body)
        if params.top_k is not None:
            extra["top_k"] = params.top_k
        if params.min_p is not None:
            extra["min_p"] = params.min_p
        if extra:
            body["extra_body"] = extra

        async def attempt() -> list[Completion]:
            started = time.perf_counter()
            if on_token is None:
                result = await self._complete(body)
            else:
                result = await self._streamed_attempt(body, on_token)
            latency = time.perf_counter() - started
            for c in result:
                c.latency_s = latency
            return result

        completions = await self._with_retries(attempt)
        self.requests += 1
        if completions:
            self.prompt_tokens += completions[0].prompt_tokens
        self.completion_tokens += sum(c.completion_tokens for c in completions)
        return completions

    async def _complete(self, body: dict[str, Any]) -> list[Completion]:
        resp = await self._sdk.chat.completions.create(**body)
        usage = resp.usage
        out = []
        for choice in resp.choices:
            msg = choice.message
            calls = [tc.model_dump(exclude_none=True) for tc in (msg.tool_calls or [])]
            lps, tops = None, None
            if choice.logprobs is not None and choice.logprobs.content:
                lps = [t.logprob for t in choice.logprobs.content]
                tops = [{alt.token: alt.logprob for alt in (t.top_logprobs or [])} for t in choice.logprobs.content]
            out.append(Completion(index=choice.index, text=msg.content or "", tool_calls=calls,
                                  finish_reason=choice.finish_reason, token_logprobs=lps, top_logprobs=tops,
                                  model=resp.model))
        self._spread_usage(out, usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else None)
        return sorted(out, key=lambda c: c.index)

    async def _streamed_attempt(self, body: dict[str, Any], on_token: TokenCallback) -> list[Completion]:
        """A stream that breaks after sending tokens tells ``on_token`` so (``STREAM_INTERRUPTED``): a retry
        then starts the reply again, and a live view would otherwise show the partial and the full reply as one."""
        started: set[int] = set()

        def tracked(index: int, delta: str) -> None:
            started.add(index)
            on_token(index, delta)

        try:
            return await self._stream(body, tracked)
        except Exception:
            for index in sorted(started):
                on_token(index, STREAM_INTERRUPTED)
            raise

    async def _stream(self, body: dict[str, Any], on_token: TokenCallback) -> list[Completion]:
        stream = await self._sdk.chat.completions.create(
            **body, stream=True, stream_options={"include_usage": True}
        )
        texts: dict[int, list[str]] = {}
        calls: dict[int, dict[int, dict[str, Any]]] = {}
        finish: dict[int, str | None] = {}
        lps: dict[int, list[float]] = {}
        chunks: dict[int, int] = {}
        usage_prompt, usage_completion, model = 0, None, ""
        # closed on every way out (a cancelled turn, Ctrl-C, an error): the server then stops generating the
        # abandoned reply at once instead of making the next request wait for it
        async with stream:
            async for chunk in stream:
                model = chunk.model or model
                if chunk.usage is not None:
                    usage_prompt, usage_completion = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
                for choice in chunk.choices:
                    i = choice.index
                    delta = choice.delta
                    if delta is not None and delta.content:
                        texts.setdefault(i, []).append(delta.content)
                        chunks[i] = chunks.get(i, 0) + 1
                        on_token(i, delta.content)
                    for tc in (delta.tool_calls or []) if delta is not None else []:
                        slot = calls.setdefault(i, {}).setdefault(
                            tc.index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
                        )
                        if tc.id:
                            slot["id"] = tc.id
                        if tc.function is not None:
                            # llama-cpp-python repeats the whole name in every delta; OpenAI sends it once
                            piece = tc.function.name or ""
                            if piece and piece != slot["function"]["name"]:
                                slot["function"]["name"] += piece
                            slot["function"]["arguments"] += tc.function.arguments or ""
                    if choice.logprobs is not None and choice.logprobs.content:
                        lps.setdefault(i, []).extend(t.logprob for t in choice.logprobs.content)
                    if choice.finish_reason:
                        finish[i] = choice.finish_reason
                    texts.setdefault(i, [])
        # a finish reason is the server's word that a choice is complete; without one the reply was cut off
        expected = int(body.get("n") or 1)
        missing = [i for i in range(expected) if not finish.get(i)]
        if missing:
            raise IncompleteStreamError(missing, expected)
        out = [
            Completion(index=i, text="".join(parts), finish_reason=finish.get(i), model=model,
                       tool_calls=[calls[i][k] for k in sorted(calls.get(i, {}))],
                       token_logprobs=lps.get(i), completion_tokens=chunks.get(i, 0))
            for i, parts in sorted(texts.items())
        ]
        self._spread_usage(out, usage_prompt, usage_completion)
        return out

    @staticmethod
    def _spread_usage(out: list[Completion], prompt: int, completion: int | None) -> None:
        """Attach usage to choices; servers report one total for all ``n`` choices."""
        for c in out:
            c.prompt_tokens = prompt
        if completion is not None and out:
            # split the total by the chunks each choice streamed (evenly if unknown), keeping the sum exact
            weights = [c.completion_tokens for c in out] if any(c.completion_tokens for c in out) else [1] * len(out)
            shares = [completion * w // sum(weights) for w in weights]
            for k in range(completion - sum(shares)):
                shares[k % len(out)] += 1
            for c, share in zip(out, shares, strict=True):
                c.completion_tokens = share

    async def _with_retries(self, call: Callable[[], Any]) -> Any:
        attempt = 0
        while True:
            try:
                return await call()
            except openai.NotFoundError as exc:
                await self._raise_not_found(exc)
            except openai.APIStatusError as exc:
                if exc.status_code not in _RETRYABLE_STATUS or attempt >= self.max_retries:
                    raise ModelServerError(
                        f"model server {self.base_url} answered HTTP {exc.status_code}: {_short(exc)}"
                    ) from exc
            except IncompleteStreamError as exc:
                if attempt >= self.max_retries:
                    raise ModelServerError(
                        f"model server {self.base_url} cut off the streamed reply before it finished, "
                        f"{attempt + 1} time(s) ({exc}); a llama-cpp-python server does this to a stream whenever "
                        "another request arrives: start it with `--interrupt_requests False` (peerstep serve does), "
                        "or do not stream"
                    ) from exc
            except (openai.APIConnectionError, openai.APIResponseValidationError, httpx.TransportError) as exc:
                if attempt >= self.max_retries:
                    raise ModelServerError(
                        f"model server unreachable at {self.base_url} after {attempt + 1} attempts: {_short(exc)}"
                        " (is it running? start one with `peerstep serve`, or pass --base-url)"
                    ) from exc
            delay = min(self.max_backoff, self.backoff * 2**attempt) * (0.5 + random.random() / 2)
            attempt += 1
            await asyncio.sleep(delay)

    async def _raise_not_found(self, exc: openai.NotFoundError) -> None:
        try:
            page = await self._sdk.models.list()
            served = [m.id for m in page.data]
        except openai.OpenAIError:
            served = []
        if served and self.model not in served:
            raise ModelNotFoundError(
                f"model {self.model!r} is not served by {self.base_url}; available: {', '.join(served)}"
            ) from exc
        hint = missing_version_hint(self.base_url, _request_path(exc, self.base_url)) if not served else None
        raise ModelServerError(hint or f"model server {self.base_url} answered 404: {_short(exc)}") from exc


def missing_version_hint(base_url: str, path: str) -> str | None:
    """What to say when ``base_url`` answered 404 for ``path`` and has no API version in its path.

    OpenAI-compatible servers (vLLM, llama.cpp, OpenAI) serve under ``/v1``; a base URL without it
    (``http://127.0.0.1:8000``) gets a bare 404 for every request, which says nothing about the fix.
    """
    base = base_url.rstrip("/")
    if re.search(r"/v\d+[a-z0-9]*(/|$)", httpx.URL(base).path):
        return None
    return (f"{base} answered 404 for {path}; OpenAI-compatible servers serve under /v1: "
            f"try --base-url {base}/v1")


def _request_path(exc: openai.APIStatusError, base_url: str) -> str:
    """The path of the failed request below ``base_url`` (``/models``, ``/chat/completions``)."""
    url = str(exc.request.url).split("?", 1)[0]
    base = base_url.rstrip("/")
    return (url[len(base):] or "/") if url.startswith(base) else exc.request.url.path


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    cause = exc.__cause__
    detail = text[0] if text else type(exc).__name__
    if cause is not None and str(cause):
        detail += f" ({type(cause).__name__}: {str(cause).splitlines()[0]})"
    return detail[:300]
