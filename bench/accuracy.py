"""Accuracy of the strategies on generated multi-step word problems, with tokens spent per problem.

    .venv/bin/python bench/accuracy.py --engine vllm --limit 30 --strategies single,majority,leap,leap+verify

Every problem runs under every strategy on the same engine and model. Tokens are every token the
model generated for the problem (reasoning, summaries, judge verdicts), counted by the client.
Grading: math-verify equivalence, or within half a cent (money answers are rounded by models).
Prints a markdown table and writes the per-problem results as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from problems import generate

from peerstep.agent import AgentConfig, Budget, ModelClient
from peerstep.engines import EngineConfig, make_engine
from peerstep.environments import QuestionEnvironment
from peerstep.models import DEFAULT_MODEL
from peerstep.steplog import StepLog
from peerstep.strategies import run_strategy
from peerstep.verify import answers_equivalent


def graded(answer: str | None, gold: str) -> bool:
    if answers_equivalent(answer, gold):
        return True
    from peerstep.environments._answers import numbers_in

    nums = numbers_in(answer or "")
    return len(nums) == 1 and abs(float(nums[0]) - float(gold)) <= 0.005


async def one(strategy: str, row: dict[str, str], base_url: str, model: str, n: int, runs: Path,
              supports_continue: bool, python: bool) -> dict[str, Any]:
    client = ModelClient(base_url, model, supports_continue=supports_continue)
    log = StepLog.create(directory=runs, meta={"question": row["question"], "strategy": strategy, "id": row["id"]})
    started = time.perf_counter()
    agent = AgentConfig(budget=Budget(max_steps=8, max_tokens=3000))
    try:
        result = await run_strategy(strategy, lambda: QuestionEnvironment(row["question"], gold=row["answer"],
                                                                          python=python),
                                    client, n=n, agent=agent, log=log)
        answer, error = result.answer, None
    except Exception as exc:  # a benchmark records failures and goes on
        answer, error = None, f"{type(exc).__name__}: {exc}"
    finally:
        log.close()
        await client.close()
    return {"id": row["id"], "strategy": strategy, "answer": answer, "gold": row["answer"],
            "correct": graded(answer, row["answer"]), "tokens": client.completion_tokens,
            "requests": client.requests, "seconds": round(time.perf_counter() - started, 1), "error": error,
            "run_id": log.run_id}


async def run_all(args: argparse.Namespace, base_url: str, model: str, supports_continue: bool) -> list[dict]:
    rows = generate(args.limit, seed=args.seed)
    runs = Path(args.runs)
    out: list[dict[str, Any]] = []
    sem = asyncio.Semaphore(args.concurrency)
    for strategy in args.strategies.split(","):
        n = 1 if strategy == "single" else args.n

        async def guarded(row: dict[str, str], strategy: str = strategy, n: int = n) -> dict[str, Any]:
            async with sem:
                return await one(strategy, row, base_url, model, n, runs, supports_continue, args.python)

        results = await asyncio.gather(*(guarded(r) for r in rows))
        out.extend(results)
        acc = sum(r["correct"] for r in results)
        print(f"  {strategy}@{n}: {acc}/{len(results)} correct, "
              f"{statistics.mean(r['tokens'] for r in results):.0f} tokens/problem", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="vllm")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--strategies", default="single,majority,leap,leap+verify")
    parser.add_argument("-n", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=2, help="problems in flight at once")
    parser.add_argument("--python", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--runs", default="/tmp/peerstep-bench-runs")
    parser.add_argument("--out", default="bench/results/accuracy.json")
    args = parser.parse_args()
    config = EngineConfig(model=args.model, context_length=4096, start_timeout=900, parallel=16)
    with make_engine(args.engine, config) as engine:
        print(f"{args.engine} / {engine.served_name}: {args.limit} problems, n={args.n}", flush=True)
        results = asyncio.run(run_all(args, engine.base_url, engine.served_name, args.engine == "vllm"))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print("\n| strategy | accuracy | tokens / problem | seconds / problem |\n|---|---|---|---|")
    for strategy in args.strategies.split(","):
        rs = [r for r in results if r["strategy"] == strategy]
        n = 1 if strategy == "single" else args.n
        print(f"| {strategy}@{n} | {sum(r['correct'] for r in rs)}/{len(rs)} "
              f"| {statistics.mean(r['tokens'] for r in rs):.0f} | {statistics.mean(r['seconds'] for r in rs):.1f} |")


if __name__ == "__main__":
    main()
