"""A conformance suite for environments and datasets: the error contract every episode keeps.

An environment never raises for something the agent did (``peerstep.environments`` module docs): an
unknown tool, bad arguments or a reply without a call are observations. The agent relies on this, and
so does a stock Aviary client. Run it on your own environment (or every registered dataset)::

    from peerstep.testing.environment import check_environment, check_dataset
    failures = await check_environment(lambda: MyEnvironment())        # name -> message; {} when all pass
    failures = await check_dataset(load_dataset("my-set", limit=3))

Checks: ``reset`` returns opening messages and tools, and offers the finishing tool when the
environment has one; an unknown tool, malformed arguments and a reply without a tool call each come
back as observations (never an exception, never ``done``); a finishing call ends the episode with a
float reward; ``close`` may be called twice; the checker compares a prediction with the gold it is given, not
with its task's own (a vote groups answers with it, one answer playing the gold).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from peerstep.environments import Environment, EnvironmentDataset
from peerstep.grading import parse_number

Factory = Callable[[], Environment]
Check = Callable[[Environment], Awaitable[str | None]]


def _call(name: str, arguments: str, call_id: str = "call_check") -> dict[str, Any]:
    return {"role": "assistant", "content": "", "tool_calls": [
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]}


async def _opening(env: Environment) -> str | None:
    messages, tools = await env.reset()
    if not messages:
        return "reset returned no opening messages"
    if not all(isinstance(m, dict) and "role" in m for m in messages):
        return "reset's messages are not OpenAI-format dicts with a role"
    finish = getattr(env, "finish_tool", None)
    if finish and finish not in [t.name for t in tools]:
        return f"the finishing tool {finish!r} is not among the tools offered: {[t.name for t in tools]}"
    return None


async def _unknown_tool(env: Environment) -> str | None:
    await env.reset()
    observations, _, done, _ = await env.step(_call("no_such_tool_xyz", "{}"))
    if done:
        return "an unknown tool ended the episode"
    if not observations or not any("no_such_tool_xyz" in str(o.get("content", "")) for o in observations):
        return "an unknown tool's observation does not name the tool"
    return None


async def _bad_arguments(env: Environment) -> str | None:
    _, tools = await env.reset()
    finish = getattr(env, "finish_tool", None)
    others = [t for t in tools if t.name != finish]
    if not others:
        return None
    observations, _, done, _ = await env.step(_call(others[0].name, '{"this is": not json'))
    if done:
        return f"malformed arguments to {others[0].name} ended the episode"
    if not observations:
        return f"malformed arguments to {others[0].name} produced no observation"
    return None


async def _no_call(env: Environment) -> str | None:
    await env.reset()
    observations, _, done, _ = await env.step({"role": "assistant", "content": "I am thinking."})
    if done:
        return "a reply without a tool call ended the episode"
    if not observations or not str(observations[0].get("content", "")).strip():
        return "a reply without a tool call got no observation explaining what to do"
    return None


async def _finishing(env: Environment) -> str | None:
    finish = getattr(env, "finish_tool", None)
    if not finish:
        return None
    _, tools = await env.reset()
    tool = next((t for t in tools if t.name == finish), None)
    params = list(tool.schema()["function"]["parameters"].get("properties", {})) if tool is not None else []
    arg = "answer" if "answer" in params or not params else params[0]
    answer = env.gold if env.gold is not None else "42"
    observations, reward, done, _ = await env.step(_call(finish, json.dumps({arg: answer})))
    if not isinstance(reward, int | float):
        return f"the reward is {type(reward).__name__}, not a number"
    if not done and not observations:
        return "the finishing call neither ended the episode nor explained why not"
    return None


async def _checker_uses_its_gold(env: Environment) -> str | None:
    """A vote groups answers by the task's checker with one answer in the gold's place: a checker that grades
    against its task's own gold whatever it is given merges the right answer into any group and the vote can pick
    a wrong one. Checked on a numeric gold (another number is plainly another answer)."""
    gold = env.gold
    value = parse_number(gold) if gold else None
    if gold is None or value is None:
        return None
    other = str(int(value) + 1000)
    if not env.checker(gold, gold):
        return f"the checker rejects the gold {gold!r} as its own answer"
    if env.checker(gold, other):
        return f"checker({gold!r}, {other!r}) is true: the checker ignores the gold it is given (votes would group " \
               "the right answer with any other)"
    return None


CHECKS: dict[str, Check] = {"opening": _opening, "unknown_tool": _unknown_tool, "bad_arguments": _bad_arguments,
                            "no_call": _no_call, "finishing": _finishing,
                            "checker_uses_its_gold": _checker_uses_its_gold}


async def check_environment(factory: Factory) -> dict[str, str]:
    """Run every check on a fresh environment from ``factory``; name -> failure (exceptions included)."""
    failures: dict[str, str] = {}
    for name, check in CHECKS.items():
        env = factory()
        try:
            problem = await check(env)
        except Exception as exc:  # an exception is exactly what the contract forbids: report it as the failure
            problem = f"raised {type(exc).__name__}: {exc}"
        try:
            await env.close()
            await env.close()
        except Exception as exc:
            failures.setdefault("close", f"close raised {type(exc).__name__}: {exc} (it must be idempotent)")
        if problem:
            failures[name] = problem
    return failures


async def check_dataset(dataset: EnvironmentDataset, indices: list[int] | None = None) -> dict[str, str]:
    """``check_environment`` on tasks of ``dataset`` (default: the first); failures keyed ``index:check``."""
    failures: dict[str, str] = {}
    if len(dataset) == 0:
        return {"size": "the dataset has no tasks"}
    for index in indices or [0]:
        for name, problem in (await check_environment(dataset.factory(index))).items():
            failures[f"{index}:{name}"] = problem
    try:
        dataset.info(len(dataset))
        failures["out_of_range"] = "info() of an index past the end did not raise IndexError"
    except IndexError:
        pass
    return failures
