"""Sandbox benchmark: latency (cold start, warm ``print(1+1)``, acquiring from a pre-warmed pool), what hostile code
reaches in a bwrap sandbox (memory, shared memory, disk, processes + threads) against its limits, and the largest
pool that starts.

Run: ``python bench/sandbox.py [--runs 200] [--backends bwrap,local-unsafe] [--pools 8,16,32,64]``. Goals: warm
p50 <= 5 ms, from-pool p50 <= 50 ms; a hostile sandbox stays within its limits. Backends that cannot run here (no
bwrap, no E2B key) are reported and skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import warnings
from collections.abc import Callable

from peerstep.testing.sandbox import measure_hostile
from peerstep.tools.sandbox import MAX_POOL_SIZE, Sandbox, SandboxError, SandboxPool, make_sandbox

HOSTILE_LIMITS = {"memory_bytes": 1 << 30, "processes": 64, "disk_bytes": 256 << 20, "timeout_s": 60.0}


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


async def bench_hostile() -> None:
    """What hostile code reached in one bwrap sandbox, next to its limits."""
    sb = make_sandbox("bwrap", **HOSTILE_LIMITS)
    await sb.start()
    try:
        t = time.perf_counter()
        got = await measure_hostile(sb)
        took = time.perf_counter() - t
        enforced = getattr(sb, "enforcement", {})
    finally:
        await sb.close()
    m, lim = 1 << 20, HOSTILE_LIMITS
    mem, disk, procs = lim["memory_bytes"] / m, lim["disk_bytes"] / m, lim["processes"]
    print(f"hostile bwrap sandbox ({took:.1f} s):")
    rows = [
        ("memory held by 3 processes at once", got["memory_bytes"] / m, f"limit {mem:.0f} MiB", 1.8 * mem, "memory"),
        ("memory held in memfds", got["shared_memory_bytes"] / m, f"limit {mem:.0f} MiB", 1.5 * mem, "memory"),
        ("written into /work + /tmp", got["disk_bytes"] / m, f"quota {disk:.0f} MiB", disk + 256, "disk"),
    ]
    for what, value, limit, asked, key in rows:
        print(f"  {what:36s} {value:6.0f} MiB ({limit}, asked for {asked:.0f}) - {enforced.get(key)}")
    print(
        f"  {'processes + threads at once':36s} {got['tasks']:6d}     (limit {procs}, asked for {4 * procs})"
        f" - {enforced.get('processes')}"
    )


async def bench_pools(sizes: list[int]) -> None:
    """Start pools of growing size with the default limits; report the largest that starts and how long it took."""
    largest = 0
    for size in sizes:
        t = time.perf_counter()
        try:
            async with SandboxPool(lambda: make_sandbox("bwrap"), size=size) as pool:
                started = time.perf_counter() - t
                assert pool.idle == size
        except SandboxError as err:
            print(f"pool of {size:3d}: FAILED after {time.perf_counter() - t:.1f} s: {err}")
            break
        largest = size
        print(f"pool of {size:3d}: started in {started:5.1f} s, closed after {time.perf_counter() - t - started:.1f} s")
    print(f"largest pool that started: {largest} (limit MAX_POOL_SIZE = {MAX_POOL_SIZE})")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--pool-rounds", type=int, default=20)
    parser.add_argument("--backends", default="bwrap,local-unsafe,e2b")
    parser.add_argument("--pools", default="8,16,32,64", help="pool sizes to try, comma-separated ('' to skip)")
    parser.add_argument("--no-hostile", action="store_true", help="skip the hostile-code figures")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="LocalUnsafeSandbox is NOT isolated")
    for name in filter(None, args.backends.split(",")):
        try:
            await bench_backend(name, args.runs, args.pool_rounds)
        except SandboxError as err:
            print(f"{name:13s} skipped: {err}")
    try:
        if not args.no_hostile:
            await bench_hostile()
        if args.pools:
            await bench_pools([int(n) for n in args.pools.split(",")])
    except SandboxError as err:
        print(f"bwrap figures skipped: {err}")


if __name__ == "__main__":
    import logging

    logging.disable(logging.WARNING)
    asyncio.run(main())
