"""Parallel trajectories against the raw engine, and LeaP's token overhead.

1. Throughput. N peerstep trajectories (sharing off) solve a problem together; every request each
   trajectory made is recorded. The raw engine then replays the same workload with the bare
   ``openai`` SDK: N concurrent chains, each sending that trajectory's requests in order with the
   same prompts and lengths (vLLM: ``min_tokens``/``ignore_eos`` pin the length). Aggregate generated
   tokens/s of both, and the ratio, per engine and N. Goal: ratio >= 0.90.
2. LeaP overhead. The same problems with sharing on (``leap``) and off (``majority``), same N and
   budget: total generated tokens (reasoning + summaries). Goal: <= 15% more.

    .venv/bin/python bench/parallel.py [--engines llamacpp,vllm] [--ns 4,8] [--problems 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Sequence
from typing import Any

import openai
from problems import generate

from peerstep import arun
from peerstep.agent import AgentConfig, Budget, Completion, ModelClient, SamplingParams
from peerstep.engines import EngineConfig, ManagedEngine, make_engine
from peerstep.environments import QuestionEnvironment
from peerstep.models import DEFAULT_MODEL
from peerstep.steplog import StepLog


class RecordingClient(ModelClient):
    """Keeps every request and its generated length, keyed by trajectory (its seed)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: dict[int, list[dict[str, Any]]] = {}

    async def chat(self, messages: Sequence[dict[str, Any]], *, sampling: SamplingParams | None = None,
                   **kwargs: Any) -> list[Completion]:
        out = await super().chat(messages, sampling=sampling, **kwargs)
        params = sampling or SamplingParams()
        self.calls.setdefault(params.seed or 0, []).append({
            "messages": list(messages), "params": params, "tools": kwargs.get("tools"),
            "tool_choice": kwargs.get("tool_choice"), "tokens": out[0].completion_tokens})
        return out


async def replay(sdk: openai.AsyncOpenAI, model: str, chains: dict[int, list[dict[str, Any]]],
                 pin_length: bool) -> tuple[int, float]:
    async def chain(calls: list[dict[str, Any]]) -> int:
        total = 0
        for call in calls:
            p: SamplingParams = call["params"]
            body: dict[str, Any] = {"model": model, "messages": call["messages"], "temperature": p.temperature,
                                    "top_p": p.top_p, "max_tokens": max(1, call["tokens"]), "seed": p.seed}
            if call["tools"]:
                body["tools"] = call["tools"]
                if call["tool_choice"]:
                    body["tool_choice"] = call["tool_choice"]
            extra = dict(p.extra_body)
            if pin_length:
                extra.update({"min_tokens": max(1, call["tokens"]), "ignore_eos": True})
            elif p.stop:
                body["stop"] = p.stop
            if extra:
                body["extra_body"] = extra
            resp = await sdk.chat.completions.create(**body)
            total += resp.usage.completion_tokens if resp.usage else 0
        return total

    started = time.perf_counter()
    tokens = sum(await asyncio.gather(*(chain(c) for c in chains.values())))
    return tokens, time.perf_counter() - started


async def reset_prefix_cache(base_url: str) -> None:
    """Start each measured phase with a cold prefix cache: the replay must not reuse the run's prompts.

    vLLM offers ``POST /reset_prefix_cache`` in dev mode (``VLLM_SERVER_DEV_MODE=1``, set in ``main``);
    llama.cpp has no cross-request cache to reset (404 is fine).
    """
    import httpx

    async with httpx.AsyncClient(timeout=60) as http:
        await http.post(base_url.removesuffix("/v1") + "/reset_prefix_cache")


async def throughput(engine_name: str, base_url: str, model: str, n: int, question: dict[str, str]) -> str:
    await reset_prefix_cache(base_url)
    client = RecordingClient(base_url, model)
    agent = AgentConfig(budget=Budget(max_steps=6, max_tokens=2000))
    started = time.perf_counter()
    await arun(lambda: QuestionEnvironment(question["question"], python=False), client, strategy="majority", n=n,
               agent=agent, log=StepLog.create(directory=_RUNS))
    ps_wall = time.perf_counter() - started
    ps_tokens = client.completion_tokens
    await client.close()
    sdk = openai.AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=0, timeout=900)
    await reset_prefix_cache(base_url)
    raw_tokens, raw_wall = await replay(sdk, model, client.calls, pin_length=engine_name == "vllm")
    await sdk.close()
    ps_rate, raw_rate = ps_tokens / ps_wall, raw_tokens / raw_wall
    return (f"N={n}: peerstep {ps_tokens} tok in {ps_wall:.1f} s = {ps_rate:.1f} tok/s; raw replay {raw_tokens} "
            f"tok in {raw_wall:.1f} s = {raw_rate:.1f} tok/s; ratio {ps_rate / raw_rate:.3f}")


async def overhead(engine: ManagedEngine, n: int, rows: list[dict[str, str]]) -> str:
    totals = {}
    for strategy in ("majority", "leap"):
        total = 0
        for row in rows:
            client = engine.client()
            agent = AgentConfig(budget=Budget(max_steps=8, max_tokens=3000))
            await arun(lambda row=row: QuestionEnvironment(row["question"], python=False),
                       client, strategy=strategy, n=n, agent=agent, log=StepLog.create(directory=_RUNS))
            total += client.completion_tokens
            await client.close()
        totals[strategy] = total
    extra = totals["leap"] / totals["majority"] - 1
    return (f"LeaP overhead N={n} over {len(rows)} problems: sharing off {totals['majority']} tokens, "
            f"on {totals['leap']} tokens: {extra:+.1%}")


_RUNS = None  # set in main


def main() -> None:
    global _RUNS
    from pathlib import Path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="llamacpp,vllm")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--ns", default="4,8")
    parser.add_argument("--problems", type=int, default=3, help="problems for the LeaP overhead measurement")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--runs", default="/tmp/peerstep-bench-runs")
    args = parser.parse_args()
    _RUNS = Path(args.runs)
    os.environ["VLLM_SERVER_DEV_MODE"] = "1"  # for /reset_prefix_cache between measured phases
    rows = generate(max(args.problems, 1), seed=7)
    for name in args.engines.split(","):
        with make_engine(name, EngineConfig(model=args.model, context_length=4096, start_timeout=900,
                                            parallel=16)) as engine:
            print(f"{name} / {engine.served_name}", flush=True)
            for n in (int(x) for x in args.ns.split(",")):
                print("  " + asyncio.run(throughput(name, engine.base_url, engine.served_name, n, rows[0])),
                      flush=True)
            if not args.skip_overhead:
                print("  " + asyncio.run(overhead(engine, 4, rows)),
                      flush=True)


if __name__ == "__main__":
    main()
