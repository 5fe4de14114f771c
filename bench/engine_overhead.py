"""Does peerstep's client path cost throughput? The same concurrent generations, side by side.

For each engine and N in (1, 4, 8): N concurrent chat completions of the same prompts and the same
``max_tokens`` go through (a) the bare ``openai`` SDK and (b) peerstep's ``ModelClient.chat``, against
the same server, alternating a/b for several rounds. Prints generated tokens/s of each (median over
rounds) and the ratio peerstep / raw. Goal: ratio >= 0.95.

    .venv/bin/python bench/engine_overhead.py [--engines llamacpp,vllm] [--model NAME] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import openai

from peerstep.agent import ModelClient, SamplingParams
from peerstep.engines import EngineConfig, make_engine
from peerstep.models import DEFAULT_MODEL

PROMPTS = [f"Write the numbers from {i} to {i + 400}, separated by commas, and nothing else." for i in range(8)]


async def raw_batch(sdk: openai.AsyncOpenAI, model: str, n: int, max_tokens: int) -> int:
    async def one(prompt: str) -> int:
        resp = await sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                                 max_tokens=max_tokens, temperature=0.0, seed=0)
        return resp.usage.completion_tokens if resp.usage else 0

    return sum(await asyncio.gather(*(one(p) for p in PROMPTS[:n])))


async def peerstep_batch(client: ModelClient, n: int, max_tokens: int) -> int:
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, seed=0)

    async def one(prompt: str) -> int:
        out = await client.chat([{"role": "user", "content": prompt}], sampling=params)
        return out[0].completion_tokens

    return sum(await asyncio.gather(*(one(p) for p in PROMPTS[:n])))


async def measure(base_url: str, model: str, ns: list[int], rounds: int, max_tokens: int) -> list[str]:
    sdk = openai.AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=0, timeout=600)
    client = ModelClient(base_url, model)
    await raw_batch(sdk, model, 1, 8)  # warm-up: first request pays prompt-cache and graph compilation
    lines = []
    for n in ns:
        raw_rates, ps_rates = [], []
        for r in range(rounds):
            # alternate which goes first, so drift (cache warmth, thermal) does not favour one side
            for kind in (("raw", "peerstep") if r % 2 == 0 else ("peerstep", "raw")):
                started = time.perf_counter()
                tokens = await (raw_batch(sdk, model, n, max_tokens) if kind == "raw"
                                else peerstep_batch(client, n, max_tokens))
                rate = tokens / (time.perf_counter() - started)
                (raw_rates if kind == "raw" else ps_rates).append(rate)
        raw, ps = statistics.median(raw_rates), statistics.median(ps_rates)
        lines.append(f"N={n}: raw {raw:7.1f} tok/s   peerstep {ps:7.1f} tok/s   ratio {ps / raw:.3f}")
        print("  " + lines[-1], flush=True)
    await sdk.close()
    await client.close()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="llamacpp,vllm")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--ns", default="1,4,8")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    ns = [int(x) for x in args.ns.split(",")]
    for name in args.engines.split(","):
        engine = make_engine(name, EngineConfig(model=args.model, context_length=4096, start_timeout=900))
        print(f"{name} ({args.model}, max_tokens={args.max_tokens}, rounds={args.rounds})", flush=True)
        with engine:
            asyncio.run(measure(engine.base_url, engine.served_name, ns, args.rounds, args.max_tokens))


if __name__ == "__main__":
    main()
