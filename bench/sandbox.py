"""Sandbox latency benchmark: cold start, warm ``print(1+1)``, and acquiring from a pre-warmed pool.

Run: ``python bench/sandbox.py [--runs 200] [--backends bwrap,local-unsafe]``. Goals: warm p50 <= 5 ms,
from-pool p50 <= 50 ms. Backends that cannot run here (no bwrap, no E2B key) are reported and skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import warnings
from collections.abc import Callable

from peerstep.tools.sandbox import Sandbox, SandboxError, SandboxPool, make_sandbox


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


async def bench_backend(name: str, runs: int, pool_rounds: int) -> None:
    factory: Callable[[], Sandbox] = lambda: make_sandbox(name)  # noqa: E731
    t0 = time.perf_counter()
    sb = factory()
    await sb.start()
    cold = time.perf_counter() - t0
    try:
        res = await sb.run("print(1+1)")
        assert res.stdout == "2\n", res
        warm = []
        for _ in range(runs):
            t = time.perf_counter()
            await sb.run("print(1+1)")
            warm.append(time.perf_counter() - t)
    finally:
        await sb.close()

    acquire = []
    pool = SandboxPool(factory, size=2)
    await pool.start()
    try:
        for _ in range(pool_rounds):
            while pool.idle == 0:  # measure the pre-warmed path: wait for the background reset to finish
                await asyncio.sleep(0.01)
            t = time.perf_counter()
            async with pool.acquire() as pooled:
                acquire.append(time.perf_counter() - t)
                await pooled.run("x = 1")
    finally:
        await pool.close()

    print(
        f"{name:13s} cold start {cold * 1000:7.1f} ms | warm print(1+1) p50 {_pct(warm, 0.5):5.2f} ms "
        f"p95 {_pct(warm, 0.95):5.2f} ms (mean {statistics.mean(warm) * 1000:.2f}, n={runs}) | "
        f"from pool p50 {_pct(acquire, 0.5):6.3f} ms p95 {_pct(acquire, 0.95):6.3f} ms (n={pool_rounds})"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--pool-rounds", type=int, default=20)
    parser.add_argument("--backends", default="bwrap,local-unsafe,e2b")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="LocalUnsafeSandbox is NOT isolated")
    for name in args.backends.split(","):
        try:
            await bench_backend(name, args.runs, args.pool_rounds)
        except SandboxError as err:
            print(f"{name:13s} skipped: {err}")


if __name__ == "__main__":
    import logging

    logging.disable(logging.WARNING)
    asyncio.run(main())
