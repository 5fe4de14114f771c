"""Which works better on the embedded model: parsing calls from text, or constrained decoding?

Runs the calculator question set (bench/calc_questions.jsonl) once with ``tool_choice="auto"``
(the model writes calls as text; peerstep parses them) and once with ``tool_choice="required"``
(the server constrains decoding to a tool call; vLLM's structured output), on the same engine,
and prints accuracy, model calls, generated tokens and wall time per mode.

    .venv/bin/python bench/tool_choice.py [--engine vllm] [--model NAME] [--limit 12]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from peerstep import asolve
from peerstep.agent import AgentConfig, ModelClient
from peerstep.engines import EngineConfig, make_engine
from peerstep.models import DEFAULT_MODEL
from peerstep.steplog import StepLog

QUESTIONS = Path(__file__).with_name("calc_questions.jsonl")


async def run_mode(client: ModelClient, rows: list[dict[str, str]], mode: str, runs: Path) -> str:
    correct = steps = tokens = 0
    started = time.perf_counter()
    for row in rows:
        log = StepLog.create(directory=runs, meta={"question": row["question"], "mode": mode})
        result = await asolve(row["question"], client, gold=row["answer"], python=False, log=log,
                              agent=AgentConfig(tool_choice=mode))  # type: ignore[arg-type]
        log.close()
        correct += result.reward == 1.0
        steps += result.steps
        tokens += result.tokens
    wall = time.perf_counter() - started
    n = len(rows)
    return (f"tool_choice={mode:<8} accuracy {correct}/{n}   model calls/question {steps / n:.1f}   "
            f"tokens/question {tokens / n:.0f}   wall {wall:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="vllm")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--limit", type=int, default=12)
    parser.add_argument("--runs", default="/tmp/peerstep-bench-runs")
    args = parser.parse_args()
    rows = [json.loads(line) for line in QUESTIONS.read_text().splitlines()][: args.limit]
    with make_engine(args.engine, EngineConfig(model=args.model, context_length=4096, start_timeout=900)) as engine:
        async def both() -> None:
            client = engine.client()
            for mode in ("auto", "required"):
                print(await run_mode(client, rows, mode, Path(args.runs)), flush=True)
            await client.close()

        print(f"{args.engine} / {args.model}: {len(rows)} questions, calculator only, temperature 0")
        asyncio.run(both())


if __name__ == "__main__":
    main()
