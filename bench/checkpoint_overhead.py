"""What a run's checkpointer costs: the same leap@4 run with and without it, side by side in one process.

1. Framework cost (scripted model, deterministic: both arms make exactly the same steps). R runs of leap@4 with
   the checkpointer and R without, interleaved; the added wall time per run and per checkpoint saved (each
   superstep of the run graph and each reason/act step of every trajectory's loop is one). Goal: <= 2 ms per
   superstep.
2. On a real server (``--base-url``): the same leap@4 question, with and without, alternating, on the same
   server. Wall time ratio, and per generated token (the real model's replies differ between runs at several
   requests in flight, so tokens are reported too). Goal: <= 3% wall-time overhead.

    .venv/bin/python bench/checkpoint_overhead.py [--repeats 20] [--base-url URL --model NAME --real-repeats 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from peerstep import AgentConfig, Budget, arun
from peerstep.graphs.parallel import ParallelConfig
from peerstep.peers import SharingConfig
from peerstep.testing.model import ScriptedClient

SCRIPT = ['{"name": "calculate", "arguments": {"expression": "6*7"}}',
          "Let me check that again.",
          '{"name": "calculate", "arguments": {"expression": "42+0"}}',
          '{"name": "submit_answer", "arguments": {"answer": "42"}}']


class Scripted(ScriptedClient):
    """Each trajectory replies from SCRIPT by its position in the conversation; summaries are fixed."""

    def __init__(self) -> None:
        super().__init__([])

    async def chat(self, messages: Any, *, sampling: Any = None, **kwargs: Any) -> Any:
        last = messages[-1]
        if "Summarize your current conclusions" in (last.get("content") or "") or (
                last["role"] == "assistant" and (last.get("content") or "").startswith("<summarize>")):
            self.replies = ["<summarize>6*7 is 42 so far</summarize>"]
        else:
            k = sum(1 for m in messages if m["role"] == "assistant")
            self.replies = [SCRIPT[min(k, len(SCRIPT) - 1)]]
        return await super().chat(messages, sampling=sampling, **kwargs)


CONFIG = ParallelConfig(n=4, max_rounds=4, round_steps=1, sharing=SharingConfig())


def checkpoints_saved(runs: Path, run_id: str) -> int:
    with sqlite3.connect(runs / f"{run_id}.ckpt.db") as db:
        return int(db.execute("SELECT count(*) FROM checkpoints").fetchone()[0])


async def framework(repeats: int) -> None:
    times: dict[bool, list[float]] = {True: [], False: []}
    saved = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        for i in range(2 * repeats + 2):
            on = i % 2 == 0
            t0 = time.perf_counter()
            result = await arun("What is 6*7?", Scripted(), strategy="leap", parallel=CONFIG, python=False,
                                runs_dir=runs, checkpoint=on)
            elapsed = time.perf_counter() - t0
            if i < 2:
                continue  # warm-up pair (imports, first SQLite files)
            times[on].append(elapsed)
            if on:
                saved.append(checkpoints_saved(runs, result.run_id))
    on_ms, off_ms = statistics.median(times[True]) * 1e3, statistics.median(times[False]) * 1e3
    per = (on_ms - off_ms) / statistics.median(saved)
    print(f"framework, scripted leap@4 (4 rounds, 1 call each), median of {repeats} runs per arm:")
    print(f"  with checkpointer {on_ms:8.1f} ms   without {off_ms:8.1f} ms   added {on_ms - off_ms:7.1f} ms "
          f"over {statistics.median(saved):.0f} checkpoints = {per:.2f} ms per superstep (goal <= 2 ms)")


async def real(base_url: str, model: str, repeats: int) -> None:
    from peerstep.client import ModelClient

    question = "A shop sells 37 boxes of 24 pens and 19 boxes of 12 pens. How many pens is that?"
    agent = AgentConfig(budget=Budget(max_steps=4))
    rows: dict[bool, list[tuple[float, int]]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(2 * repeats):
            on = i % 2 == 0
            client = ModelClient(base_url, model)
            t0 = time.perf_counter()
            try:
                result = await arun(question, client, strategy="leap", n=4, agent=agent, runs_dir=Path(tmp),
                                    checkpoint=on)
            finally:
                await client.close()
            rows[on].append((time.perf_counter() - t0, result.tokens))
            print(f"  run {i + 1}: checkpointer {'on ' if on else 'off'} {rows[on][-1][0]:7.1f} s "
                  f"{result.tokens:5d} tokens")
    wall = {k: sum(t for t, _ in v) for k, v in rows.items()}
    toks = {k: sum(n for _, n in v) for k, v in rows.items()}
    print(f"real server, leap@4, {repeats} runs per arm: wall on/off = {wall[True] / wall[False]:.3f}; "
          f"per generated token on/off = {(wall[True] / toks[True]) / (wall[False] / toks[False]):.3f} "
          "(goal <= 1.03)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--base-url")
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    ap.add_argument("--real-repeats", type=int, default=2)
    args = ap.parse_args()
    asyncio.run(framework(args.repeats))
    if args.base_url:
        asyncio.run(real(args.base_url, args.model, args.real_repeats))


if __name__ == "__main__":
    main()
