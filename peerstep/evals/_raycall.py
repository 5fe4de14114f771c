"""Run one small function on every node of a Ray cluster and wait for all the answers, or fail in one line.

The checks made before an eval sends anything to a node (``check_nodes``: peerstep's packages; ``NodeEngines``:
vLLM's Python) are each such a question; they share this so that pinning, the zero-CPU request (a check never
waits behind episodes) and the timeout are the same for both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from peerstep._errors import InputError


def on_node(node: dict[str, Any]) -> Any:
    """A scheduling strategy that runs a task or actor on ``node`` (one of ``ray.nodes()``) and nowhere else."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)


async def ask_every_node(fn: Callable[..., Any], nodes: list[dict[str, Any]], *args: Any, timeout: float,
                         what: str) -> list[Any]:
    """``fn(*args)`` run once on each node (no CPU reserved), the answers in the order of ``nodes``;
    :class:`InputError` "Ray nodes did not say within T s WHAT" when any is late."""
    import ray

    probe = ray.remote(fn)
    refs = [probe.options(num_cpus=0, scheduling_strategy=on_node(node)).remote(*args) for node in nodes]
    try:
        return list(await asyncio.wait_for(asyncio.gather(*refs), timeout))
    except TimeoutError:
        raise InputError(f"Ray nodes did not say within {timeout:.0f} s {what}") from None
