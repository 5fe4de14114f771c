"""Orchestration throughput: episodes per second in this process and on a Ray cluster of one and two nodes.

Run: ``python bench/scale.py [--episodes 48] [--concurrency 8] [--strategy single] [-n 4]``.

The model is a scripted OpenAI-compatible HTTP server (``peerstep.testing.server``) that answers at once, so what
is measured is peerstep's side: the agent graph, the tools, the step logs, and for Ray the task round trip, the
worker's fresh event loop and client, and the step log shipped back. The cluster is real: ``ray start --head``
(and a second ``ray start --address`` node) on this machine, under a private temp dir, killed afterwards
(``tests/ray_cluster.py``); each node declares ``--concurrency``/2 CPUs, one per episode in flight, so one
node runs half as many episodes at once as local and two nodes as many. For each setup a warm-up round (Ray
starts its worker processes) is not timed.

Two figures per setup: throughput (``--episodes`` episodes, ``--concurrency`` in flight) and the latency of one
episode at a time (``--serial`` episodes), whose difference from the local one is the overhead Ray adds per
episode (goal: at most 50 ms). Writes bench/results/scale.json. On a shared two-core machine the figures are
orders of magnitude: the cluster's own processes and other work compete with the episodes for the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from peerstep.environments.taskfile import TaskFileDataset  # noqa: E402
from peerstep.evals import ClientSpec, Executor, RayExecutor, run_eval  # noqa: E402
from peerstep.testing.server import ScriptedServer  # noqa: E402
from tests.ray_cluster import LocalCluster  # noqa: E402


def tasks(folder: Path, count: int) -> TaskFileDataset:
    lines = ["tasks:"] + [f'  - {{id: q{i}, question: "What is {i + 2}*{i + 3}?", tools: [calculator], '
                          f'checker: exact, gold: "{(i + 2) * (i + 3)}"}}' for i in range(count)]
    (folder / "tasks.yaml").write_text("\n".join(lines) + "\n")
    return TaskFileDataset(folder / "tasks.yaml")


async def measure(label: str, executor_of: Any, spec: ClientSpec, folder: Path, args: argparse.Namespace,
                  ) -> dict[str, Any]:
    big, small = tasks(folder, args.episodes), tasks(folder / "serial", args.serial)

    async def one_eval(dataset: TaskFileDataset, concurrency: int) -> tuple[float, list[float]]:
        executor: Executor | None = executor_of()
        started = time.perf_counter()
        outcomes = await run_eval(dataset, spec, [args.strategy], n=args.n, concurrency=concurrency,
                                  runs_dir=folder / "runs", executor=executor)
        wall = time.perf_counter() - started
        assert all(o.error is None for o in outcomes), [o.error for o in outcomes if o.error]
        return wall, [o.seconds for o in outcomes]

    await one_eval(tasks(folder / "warm", args.concurrency * 2), args.concurrency)  # workers start here
    wall, _ = await one_eval(big, args.concurrency)
    serial_wall, inside = await one_eval(small, 1)
    row = {"setup": label, "episodes": args.episodes, "seconds": round(wall, 2),
           "episodes_per_s": round(args.episodes / wall, 2),
           "serial_ms_per_episode": round(1000 * serial_wall / args.serial, 1),
           "ms_inside_episode": round(1000 * statistics.mean(inside), 1)}
    print(f"{label:>12}: {row['episodes_per_s']:6.2f} episodes/s ({args.episodes} in {wall:.1f} s, "
          f"{args.concurrency} in flight); one at a time {row['serial_ms_per_episode']:.0f} ms/episode "
          f"(of which {row['ms_inside_episode']:.0f} ms inside the episode)", flush=True)
    return row


class Connected:
    """Connect to the cluster once, outside the timings: each eval then reuses the connection."""

    def __init__(self, address: str) -> None:
        import ray

        self.ray = ray
        ray.init(address=address, logging_level="ERROR", log_to_driver=False, configure_logging=False)

    def __call__(self) -> RayExecutor:
        return RayExecutor(address="auto")

    def close(self) -> None:
        self.ray.shutdown()


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    with ScriptedServer() as server, tempfile.TemporaryDirectory(prefix="peerstep-scale-") as tmp:
        spec = ClientSpec((server.base_url,), "scripted")
        for label in ("local", "ray-1-node", "ray-2-nodes"):
            folder = Path(tmp) / label
            for sub in ("", "serial", "warm"):
                (folder / sub).mkdir(parents=True, exist_ok=True)
            if label == "local":
                rows.append(await measure(label, lambda: None, spec, folder, args))
                continue
            cluster = LocalCluster(nodes=1 if label == "ray-1-node" else 2, cpus=args.concurrency // 2).start()
            try:
                connected = Connected(cluster.address)
                try:
                    rows.append(await measure(label, connected, spec, folder, args))
                finally:
                    connected.close()
            finally:
                left = cluster.stop()
                assert not left, left
    local = rows[0]["serial_ms_per_episode"]
    for row in rows[1:]:
        row["overhead_ms_per_episode"] = round(row["serial_ms_per_episode"] - local, 1)
        print(f"{row['setup']:>12}: Ray adds {row['overhead_ms_per_episode']:.0f} ms per episode (one at a time)")
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=48)
    parser.add_argument("--serial", type=int, default=24, help="Episodes run one at a time for the latency.")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--strategy", default="single")
    parser.add_argument("-n", type=int, default=4)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale.json")
    arguments = parser.parse_args()
    results = asyncio.run(main(arguments))
    arguments.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(arguments).items()},
                                         "rows": results}, indent=1) + "\n")
    print(f"results: {arguments.out}")
