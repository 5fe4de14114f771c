"""Accuracy of the strategies on generated problems, with tokens per problem and LeaP's token overhead.

    .venv/bin/python bench/accuracy.py --engine vllm --dataset math --limit 30

A thin layer over the eval runner (``peerstep eval``): the same episodes, grading and report, with
single, majority@N, leap@N and leap+verify@N by default. It adds the figure the LeaP overhead goal
is judged by: tokens generated with peer sharing on (leap) against off (majority), for the same
problems, N and budget. Results are written as JSON next to a per-episode JSONL file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from peerstep.cli.evals import run_and_report
from peerstep.environments import load_dataset


def leap_overhead(report: dict) -> str:
    tokens = {s["strategy"]: s["mean_tokens"] for s in report["summaries"]}
    if "leap" not in tokens or "majority" not in tokens:
        return "LeaP overhead: needs both majority and leap in --strategies"
    return (f"LeaP overhead: {tokens['leap']:.0f} tokens/problem with sharing, {tokens['majority']:.0f} without "
            f"(majority, same N and budget): {tokens['leap'] / tokens['majority'] - 1:+.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="vllm")
    parser.add_argument("--base-url", default=None, help="use a running server instead of starting one")
    parser.add_argument("--model", default=None)
    parser.add_argument("--dataset", default="math")
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--strategies", default="single,majority,leap,leap+verify")
    parser.add_argument("-n", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=2, help="problems in flight at once")
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("bench/results/accuracy.json"))
    args = parser.parse_args()
    dataset = load_dataset(args.dataset, seed=args.seed, python=True)
    try:
        run_and_report(dataset, args.strategies.split(","), args.n, args.limit, args.concurrency, args.seed,
                       args.engine, args.model, args.base_url, None, args.out, None, args.max_steps)
    finally:
        if args.out.exists():
            print(leap_overhead(json.loads(args.out.read_text())))


if __name__ == "__main__":
    main()
