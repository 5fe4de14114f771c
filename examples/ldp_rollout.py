"""A stock LDP agent on a peerstep dataset served over Aviary's HTTP protocol, with a model behind ``peerstep serve``.

Nothing from peerstep runs on the client side: LDP's ``SimpleAgent`` calls the model through its own LLM
client (``lmi``/LiteLLM) with native tool calls, and LDP's ``RolloutManager`` drives the episodes through
fhaviary's ``TaskDatasetClient``. Two servers, started beforehand::

    peerstep serve --port 8000                 # the model (llama.cpp; native tool calls)
    peerstep serve-env math --port 8001        # the dataset's environments (Aviary protocol)
    python examples/ldp_rollout.py --env-url http://127.0.0.1:8001 \\
        --base-url http://127.0.0.1:8000/v1 --model qwen2.5-coder-1.5b-instruct --tasks 10

Prints one JSON line per episode (task index, reward, steps, tool calls, done/truncated) and a summary.
Needs ``pip install 'peerstep[ldp]'`` (LDP and its LLM client) and ``'peerstep[aviary]'``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

# LiteLLM otherwise fetches its model price table from the internet when imported
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from aviary.core import TaskDatasetClient, ToolRequestMessage
from ldp.agent import SimpleAgent
from ldp.alg import RolloutManager
from lmi.config import LLMConfig, ModelSpec


def make_agent(base_url: str, model: str, api_key: str = "none", temperature: float = 0.0) -> SimpleAgent:
    """LDP's stock agent, its model an OpenAI-compatible server (LiteLLM's ``openai/`` provider)."""
    spec = ModelSpec.from_name(f"openai/{model}", api_base=base_url, api_key=api_key, timeout=600.0,
                               temperature=temperature, max_tokens=512)
    return SimpleAgent(llm_config=LLMConfig(models=[spec]))


async def rollouts(env_url: str, base_url: str, model: str, tasks: list[int], max_steps: int,
                   api_key: str = "none") -> list[dict[str, Any]]:
    """Run one episode per task index with ``RolloutManager``; a summary of each."""
    dataset = TaskDatasetClient(server_url=env_url, request_timeout=600.0)
    envs = [dataset.get_new_env_by_idx(i) for i in tasks]
    manager = RolloutManager(make_agent(base_url, model, api_key), concurrency_limit=1)
    trajectories = await manager.sample_trajectories(environments=envs, max_steps=max_steps)
    out = []
    for idx, trajectory in zip(tasks, trajectories, strict=True):
        steps = trajectory.steps
        calls = [tc.function.name for s in steps if s.action is not None
                 and isinstance(s.action.value, ToolRequestMessage) for tc in s.action.value.tool_calls]
        out.append({"task": idx, "reward": sum(s.reward for s in steps), "steps": len(steps),
                    "tool_calls": len(calls), "tools": calls,
                    "done": bool(steps and steps[-1].done), "truncated": bool(steps and steps[-1].truncated),
                    "failure": trajectory.failed})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env-url", required=True, help="the Aviary task server (peerstep serve-env)")
    parser.add_argument("--base-url", required=True, help="the model server's OpenAI base URL (…/v1)")
    parser.add_argument("--model", required=True)
    parser.add_argument("--api-key", default="none")
    parser.add_argument("--tasks", type=int, default=3, help="episodes: task indices 0..N-1")
    parser.add_argument("--start", type=int, default=0, help="first task index")
    parser.add_argument("--max-steps", type=int, default=6)
    args = parser.parse_args()
    results = asyncio.run(rollouts(args.env_url, args.base_url, args.model,
                                   list(range(args.start, args.start + args.tasks)), args.max_steps, args.api_key))
    for row in results:
        print(json.dumps(row))
    n = len(results)
    print(json.dumps({"episodes": n, "reward": sum(r["reward"] for r in results),
                      "positive": sum(r["reward"] > 0 for r in results),
                      "tool_calls_per_episode": sum(r["tool_calls"] for r in results) / max(n, 1),
                      "truncated": sum(r["truncated"] for r in results)}))


if __name__ == "__main__":
    main()
