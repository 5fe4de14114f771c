"""Forks are cheap on vLLM: K continuations of a logged trajectory share its prefix in the server's cache.

A parent run (leap with 2 trajectories, one model call per round, Python offered; "confirm" answer policy so a
trajectory makes several calls) answers a question; then ``afork`` starts K = 8 continuations from trajectory 0's
third model call (its last one before the final call, if it made fewer). The server's ``/metrics`` counters
``vllm:prefix_cache_queries`` / ``_hits`` (prompt tokens looked up / found in the cache) are read before and after
the fork: the hit rate is the share of the forked requests' prompt tokens served from the cache (goal >= 85%). Then
the K first requests of the fork are sent again, side by side in one run: once with the cache warm (the parent's
prefix cached), once after ``POST /reset_prefix_cache`` (cold), same prompts, same lengths: the wall times and their
ratio.

    .venv/bin/python bench/fork_cache.py [--k 8] [--base-url URL --model NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _vllm import prefix_cache_counters

from peerstep import AgentConfig, Budget, StepKind, StepLog, afork, arun
from peerstep.agent import ModelClient
from peerstep.engines import EngineConfig, make_engine
from peerstep.graphs.parallel import ParallelConfig
from peerstep.models import DEFAULT_MODEL
from peerstep.peers import SharingConfig

QUESTION = ("A warehouse has 7 shelves with 38 boxes each and 5 shelves with 46 boxes each. Each box holds 24 "
            "cans. How many cans are in the warehouse?")


async def cache_counters(root: str) -> tuple[float, float]:
    """(queries, hits) in prompt tokens, from vLLM's Prometheus text."""
    counters = await asyncio.to_thread(prefix_cache_counters, root)
    if counters is None:
        raise SystemExit(f"{root}/metrics has no vllm:prefix_cache_* counters: this benchmark needs a vLLM server")
    return counters


class FirstRequests(ModelClient):
    """Keeps the first request of each trajectory (by seed): the fork's K prompts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.first: dict[int, list[dict[str, Any]]] = {}

    async def chat(self, messages: Any, *, sampling: Any = None, **kwargs: Any) -> Any:
        if sampling is not None and "Summarize" not in str(messages[-1].get("content")):
            self.first.setdefault(sampling.seed or 0, [dict(m) for m in messages])
        return await super().chat(messages, sampling=sampling, **kwargs)


async def burst(base_url: str, model: str, prompts: list[list[dict[str, Any]]], tokens: int) -> float:
    async with httpx.AsyncClient(timeout=900) as http:
        async def one(messages: list[dict[str, Any]]) -> None:
            r = await http.post(base_url + "/chat/completions", json={
                "model": model, "messages": messages, "max_tokens": tokens, "min_tokens": tokens,
                "ignore_eos": True, "temperature": 0.6, "seed": len(messages)})
            r.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one(p) for p in prompts))
        return time.perf_counter() - started


async def measure(base_url: str, model: str, k: int, runs: Path) -> None:
    root = base_url.removesuffix("/v1")
    parent_client = ModelClient(base_url, model)
    agent = AgentConfig(budget=Budget(max_steps=5), answer_policy="confirm")
    agent.sampling = agent.sampling.model_copy(update={"max_tokens": 200})
    started = time.perf_counter()
    parent = await arun(QUESTION, parent_client, runs_dir=runs, agent=agent, strategy="leap",
                        parallel=ParallelConfig(n=2, max_rounds=3, round_steps=1,
                                                sharing=SharingConfig(summary_tokens=64)))
    await parent_client.close()
    with StepLog.open(parent.run_id, runs) as log:
        replies = list(log.records(trajectory_id=0, kind=StepKind.REASON))
    step = replies[min(2, len(replies) - 2)] if len(replies) > 1 else replies[0]
    print(f"parent run {parent.run_id} (leap, 2 trajectories): trajectory 0 made {len(replies)} model calls, "
          f"{parent.tokens} tokens in all, answer {parent.answer} "
          f"(gold {(7 * 38 * 24 + 5 * 46 * 24)}), {time.perf_counter() - started:.0f} s; forking from model call "
          f"{replies.index(step) + 1}", flush=True)

    fork_agent = agent.model_copy(update={"budget": Budget(max_steps=2)})
    fork_agent.sampling = agent.sampling.model_copy(update={"max_tokens": 48})
    client = FirstRequests(base_url, model)
    q0, h0 = await cache_counters(root)
    started = time.perf_counter()
    forked = await afork(parent.run_id, step.step_id, client, k=k, runs_dir=runs, agent=fork_agent)
    fork_wall = time.perf_counter() - started
    q1, h1 = await cache_counters(root)
    await client.close()
    rate = (h1 - h0) / max(q1 - q0, 1)
    print(f"fork of K={k}: {fork_wall:.0f} s, {client.requests} requests, answers {sorted(forked.answers.values())}; "
          f"prefix cache: {h1 - h0:.0f} of {q1 - q0:.0f} prompt tokens served from the cache = {rate:.1%} "
          "(goal >= 85%)", flush=True)

    prompts = list(client.first.values())[:k]
    warm = await burst(base_url, model, prompts, 16)
    async with httpx.AsyncClient(timeout=60) as http:
        reset = await http.post(root + "/reset_prefix_cache")
    cold = await burst(base_url, model, prompts, 16)
    print(f"the fork's {len(prompts)} first requests again, 16 tokens each: warm cache {warm:.1f} s, cold cache "
          f"{cold:.1f} s (reset: HTTP {reset.status_code}); cold/warm = {cold / warm:.2f}x", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--base-url")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.base_url:
            asyncio.run(measure(args.base_url, args.model, args.k, Path(tmp)))
            return
        os.environ["VLLM_SERVER_DEV_MODE"] = "1"  # for /reset_prefix_cache
        with make_engine("vllm", EngineConfig(model=args.model, context_length=4096, start_timeout=900,
                                              parallel=16)) as engine:
            asyncio.run(measure(engine.base_url, engine.served_name, args.k, Path(tmp)))


if __name__ == "__main__":
    main()
