"""How long from Enter to the first streamed token in ``peerstep chat``, against the bare ``openai`` SDK?

The chat's code path is ``Session.stream`` (what ``peerstep chat`` runs for each line): check the text, save the
session file, build the turn's environment with the conversation so far, create the run (step log, checkpointer,
graph), and make the model call, streaming. The bare side sends the *same* messages and sampling (captured from the
session's own request) with ``openai.AsyncOpenAI(...).chat.completions.create(stream=True)`` and stops at the first
content chunk; a third row is peerstep's model client alone (``ModelClient.chat``), to tell the client's cost from
the run's. All run against the same server in one process, alternating which goes first, each on an idle server (a
second's pause before each); each prompt is sent once beforehand, so every side finds it in the server's prompt
cache and the difference is what peerstep adds. Each measured turn is stopped after its first token (as Ctrl-C
would) and undone, so every turn has the same history.

    .venv/bin/python bench/chat_latency.py --base-url http://127.0.0.1:8911/v1 [--reps 20]

Without ``--base-url`` it starts the embedded engine. Goal: at most 20 ms added at the median.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import openai

from peerstep import Endpoint
from peerstep.agent import ModelClient
from peerstep.session import Session, TokenEvent

IDLE_S = 1.0
QUESTIONS = [f"What is {a} times {b}? Use Python." for a, b in zip(range(311, 371, 3), range(17, 37), strict=False)]


class Recording(ModelClient):
    """The real client, keeping the first request body of each turn (what the bare SDK then sends)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[dict[str, Any]] = []

    async def chat(self, messages: Any, **kwargs: Any) -> Any:
        sampling = kwargs.get("sampling")
        self.seen.append({"messages": [dict(m) for m in messages],
                          "sampling": sampling.model_dump() if sampling is not None else {}})
        return await super().chat(messages, **kwargs)


async def session_first_token(session: Session, question: str) -> float:
    started = time.perf_counter()
    elapsed = float("nan")
    events = session.stream(question)
    try:
        async for event in events:
            if isinstance(event, TokenEvent):
                elapsed = time.perf_counter() - started
                break
    finally:
        await events.aclose()  # stops the turn, as Ctrl-C does
    await session.undo()
    return elapsed


async def sdk_first_token(sdk: openai.AsyncOpenAI, model: str, request: dict[str, Any]) -> float:
    s = request["sampling"]
    started = time.perf_counter()
    stream = await sdk.chat.completions.create(
        model=model, messages=request["messages"], temperature=s.get("temperature", 0.0), top_p=s.get("top_p", 1.0),
        max_tokens=s.get("max_tokens", 512), stop=s.get("stop") or None, stream=True)
    elapsed = float("nan")
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            elapsed = time.perf_counter() - started
            break
    await stream.close()
    return elapsed


async def client_first_token(client: ModelClient, request: dict[str, Any]) -> float:
    """peerstep's model client alone, as the turn calls it: separates its cost from the run's."""
    from peerstep.agent import SamplingParams

    started = time.perf_counter()
    first: list[float] = []
    task = asyncio.ensure_future(client.chat(request["messages"], sampling=SamplingParams(**request["sampling"]),
                                             on_token=lambda _i, _d: first.append(time.perf_counter())))
    while not first and not task.done():
        await asyncio.sleep(0.0005)
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
    return (first[0] - started) if first else float("nan")


async def main(base_url: str | None, model: str | None, reps: int) -> None:
    async with contextlib.AsyncExitStack() as stack:
        if base_url is None:
            endpoint = Endpoint(model=model)
            opened = await stack.enter_async_context(endpoint)
            base_url, model = opened.base_url, opened.model
        sdk = openai.AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=0, timeout=600)
        if model is None:
            model = (await sdk.models.list()).data[0].id
        client = Recording(base_url, model)
        runs = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        session = await stack.enter_async_context(Session(client=client, runs_dir=runs))
        ours: list[float] = []
        bare: list[float] = []
        plain: list[float] = []
        for i in range(reps):
            question = QUESTIONS[i % len(QUESTIONS)]
            # once, unmeasured: captures the exact request and puts its prompt in the server's cache
            client.seen.clear()
            await session_first_token(session, question)
            request = client.seen[0]
            await sdk_first_token(sdk, model, request)
            order = ("peerstep", "bare", "client") if i % 2 == 0 else ("client", "bare", "peerstep")
            for side in order:
                # a stopped stream's last tokens may still be generating: each measurement starts on an idle server
                await asyncio.sleep(IDLE_S)
                if side == "peerstep":
                    ours.append(await session_first_token(session, question))
                elif side == "client":
                    plain.append(await client_first_token(client, request))
                else:
                    bare.append(await sdk_first_token(sdk, model, request))
        added = [a - b for a, b in zip(ours, bare, strict=True)]
        print(f"server {base_url}, model {model}, {reps} paired turns (prompt cached for both sides)")
        print(f"  bare openai SDK   first token: median {statistics.median(bare) * 1000:7.1f} ms")
        print(f"  peerstep client   first token: median {statistics.median(plain) * 1000:7.1f} ms")
        print(f"  peerstep chat     first token: median {statistics.median(ours) * 1000:7.1f} ms")
        print(f"  added by peerstep (paired):    median {statistics.median(added) * 1000:7.1f} ms, "
              f"p90 {sorted(added)[int(0.9 * (len(added) - 1))] * 1000:.1f} ms (goal: median <= 20 ms)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url")
    parser.add_argument("--model")
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.base_url, args.model, args.reps))
