"""What does the tool-call front cost? llama-cpp-python's server with and without it, side by side.

1. Throughput of plain requests (no ``tools``: the front only reads the body and passes it on). The same
   model and arguments served by ``python -m llama_cpp.server`` and by peerstep's
   ``peerstep.engines._llamacpp_server``, one server at a time, started afresh per round in alternating order,
   answer the same chat requests. Prints generated tokens/s of each (median) and the ratio front / plain. Goal: >= 0.98.
2. Framework cost of a tool request: translating a request with tools and a tool history, and reading a
   reply's calls (``text_request`` + ``tool_reply``), in microseconds, median of many.

    .venv/bin/python bench/toolfront_overhead.py [--model NAME] [--rounds 4] [--max-tokens 64] [--control]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import openai

from peerstep.engines import EngineConfig, LlamaCppEngine, text_request, tool_reply
from peerstep.models import DEFAULT_MODEL

PROMPTS = [f"Write the numbers from {i} to {i + 400}, separated by commas, and nothing else." for i in range(4)]


class PlainLlamaCpp(LlamaCppEngine):
    """The same engine, launched as llama-cpp-python's own server (no front)."""

    def command(self, port: int) -> list[str]:
        cmd = super().command(port)
        cmd[cmd.index("peerstep.engines._llamacpp_server")] = "llama_cpp.server"
        return cmd


def tokens_per_s(sdk: openai.OpenAI, model: str, max_tokens: int) -> float:
    generated, start = 0, time.perf_counter()
    for prompt in PROMPTS:
        out = sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                          max_tokens=max_tokens, temperature=0.0, seed=0)
        generated += out.usage.completion_tokens if out.usage else 0
    return generated / (time.perf_counter() - start)


def translation_us(repeats: int = 2000) -> float:
    tools = [{"type": "function", "function": {"name": f"tool{i}", "description": "A tool.", "parameters": {
        "type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}}} for i in range(4)]
    history: list[dict[str, Any]] = [{"role": "user", "content": "q " * 200}]
    for i in range(6):
        history += [{"role": "assistant", "content": None, "tool_calls": [
                        {"id": f"c{i}", "type": "function", "function": {"name": "tool0", "arguments": '{"x": "1"}'}}]},
                    {"role": "tool", "tool_call_id": f"c{i}", "content": "result " * 50}]
    body = {"model": "m", "messages": history, "tools": tools}
    reply: dict[str, Any] = {"choices": [{"index": 0, "message": {"role": "assistant", "content":
                          'Thinking.\n<tool_call>\n{"name": "tool1", "arguments": {"x": "2"}}\n</tool_call>'},
                          "finish_reason": "stop"}]}
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _, plan = text_request(body)
        assert plan is not None
        tool_reply({"choices": [{**reply["choices"][0], "message": dict(reply["choices"][0]["message"])}]}, plan)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--control", action="store_true",
                        help="both servers without the front: how far apart two identical servers measure")
    args = parser.parse_args()
    print(f"tool request translated and its reply read: {translation_us():.0f} us (median)")
    # One server at a time, started afresh for each measurement and in alternating order: two servers loaded side
    # by side measured 7% apart even when both were llama-cpp-python's own (the first started was the slower).
    classes = {"front": PlainLlamaCpp if args.control else LlamaCppEngine, "plain": PlainLlamaCpp}
    rates: dict[str, list[float]] = {"front": [], "plain": []}
    with tempfile.TemporaryDirectory() as state:
        for r in range(args.rounds):
            for name in (["front", "plain"] if r % 2 == 0 else ["plain", "front"]):
                engine = classes[name](EngineConfig(model=args.model), state_dir=Path(state) / f"{name}{r}")
                try:
                    engine.start(reuse=False)
                    sdk = openai.OpenAI(base_url=engine.base_url, api_key="x")
                    tokens_per_s(sdk, engine.served_name, 8)  # warm up (first-request allocations)
                    rates[name].append(tokens_per_s(sdk, engine.served_name, args.max_tokens))
                finally:
                    engine.stop()
    print("per round (tok/s):", {k: [round(x, 2) for x in v] for k, v in rates.items()})
    f, p = statistics.median(rates["front"]), statistics.median(rates["plain"])
    label = "the same server (control)" if args.control else "with the front"
    print(f"plain llama_cpp.server: {p:.2f} tok/s  {label}: {f:.2f} tok/s  ratio = {f / p:.3f}  "
          f"(rounds: {args.rounds}, {len(PROMPTS)} requests each)")

if __name__ == "__main__":
    main()
