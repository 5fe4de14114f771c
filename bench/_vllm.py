"""vLLM's prefix-cache counters, for the benchmarks that measure what forks and rollouts reuse."""

from __future__ import annotations

import re

import httpx


def prefix_cache_counters(base_url: str) -> tuple[float, float] | None:
    """(prompt tokens looked up, prompt tokens found) in the prefix cache so far, summed over vLLM's Prometheus
    series ``vllm:prefix_cache_queries`` / ``_hits``; None when the server at ``base_url`` (``…/v1`` or its root)
    publishes no such counters (llama.cpp, a hosted API)."""
    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        text = httpx.get(root + "/metrics", timeout=30).text
    except httpx.HTTPError:
        return None

    def total(name: str) -> float | None:
        found = re.findall(rf"^vllm:{name}(?:_total)?(?:{{[^}}]*}})? (\S+)$", text, re.M)
        return sum(float(v) for v in found) if found else None

    queries, hits = total("prefix_cache_queries"), total("prefix_cache_hits")
    return None if queries is None or hits is None else (queries, hits)


def cache_use(before: tuple[float, float] | None, after: tuple[float, float] | None,
              steps: int) -> dict[str, float | None] | None:
    """What the prefix cache saved between two readings: prompt tokens sent, those served from the cache, the
    hit rate, and per labelled step the prompt tokens computed with the cache and the ones computed without it."""
    if before is None or after is None:
        return None
    queries, hits = after[0] - before[0], after[1] - before[1]
    return {"prompt_tokens": queries, "from_cache": hits,
            "hit_rate": round(hits / queries, 3) if queries else None,
            "computed_prompt_tokens_per_labelled_step": round((queries - hits) / steps, 1) if steps else None,
            "prompt_tokens_per_labelled_step_without_cache": round(queries / steps, 1) if steps else None}
