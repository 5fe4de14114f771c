"""The environment protocol: Aviary's, in OpenAI message format, kept small and exact.

``reset()`` returns the opening messages and the tools; ``step(action)`` takes one
assistant message (OpenAI format, with ``tool_calls``) and returns the observation
messages (``role: "tool"``, one per call, in call order), the reward, ``done`` and
``truncated``. An environment never raises for something the agent did: a bad tool name,
bad arguments or a failing tool are observations. Environments are found by name through a
registry so that the CLI and eval runner can build them from a string.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from peerstep.grading import DEFAULT_CHECKER, Checker
from peerstep.tools._base import Tool, ToolResult

Message = dict[str, Any]
StepOutput = tuple[list[Message], float, bool, bool]

_REGISTRY: dict[str, Callable[..., Environment]] = {}


def register_environment(name: str) -> Callable[[Callable[..., Environment]], Callable[..., Environment]]:
    """Class decorator: make an environment constructible with ``Environment.from_name(name, **kwargs)``."""

    def add(factory: Callable[..., Environment]) -> Callable[..., Environment]:
        _REGISTRY[name] = factory
        return factory

    return add


def environment_names() -> list[str]:
    return sorted(_REGISTRY)


class Environment(ABC):
    """An episode the agent acts in. Subclasses implement ``reset`` and ``step``."""

    name: ClassVar[str] = "environment"

    @abstractmethod
    async def reset(self) -> tuple[list[Message], list[Tool]]:
        """Start the episode: the opening messages and the tools the agent may call."""

    @abstractmethod
    async def step(self, action: Message) -> StepOutput:
        """Apply one assistant message; return (observations, reward, done, truncated)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (sandboxes, connections). Idempotent."""

    @property
    def gold(self) -> str | None:
        """The reference answer, when the environment has one (for verifiers and reports)."""
        return None

    _checker: Checker = DEFAULT_CHECKER

    @property
    def checker(self) -> Checker:
        """The rule that grades this environment's answers, ``(prediction, gold) -> bool``.

        Its reward uses it, and so do vote grouping, the aggregate verdict, the answer verifier and an eval's grade,
        so that they all agree. ``DEFAULT_CHECKER`` (mathematical equivalence) unless the environment sets its own.
        """
        return self._checker

    @checker.setter
    def checker(self, checker: Checker) -> None:
        self._checker = checker

    @classmethod
    def from_name(cls, name: str, **kwargs: Any) -> Environment:
        try:
            factory = _REGISTRY[name]
        except KeyError:
            raise KeyError(f"unknown environment {name!r}; known: {', '.join(environment_names())}") from None
        return factory(**kwargs)


def observation(call_id: str, name: str, content: str, result: ToolResult | None = None) -> Message:
    """A ``role: "tool"`` message; ``info`` carries execution facts for the step log, not for the model."""
    msg: Message = {"role": "tool", "tool_call_id": call_id, "name": name, "content": content}
    if result is not None:
        msg["info"] = {"ok": result.ok, "latency_s": result.latency_s, "timed_out": result.timed_out,
                       "truncated": result.truncated}
    return msg


def call_arguments(call: dict[str, Any]) -> dict[str, Any] | str:
    raw = call.get("function", {}).get("arguments", "{}")
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return str(raw)
    return value if isinstance(value, dict) else str(raw)


class ToolEnvironment(Environment):
    """An environment whose step runs the requested tools; subclasses decide what ends the episode.

    ``submit`` receives the arguments of the terminating tool and returns (observation, reward).
    """

    finish_tool: ClassVar[str] = "submit_answer"

    def __init__(self, tools: list[Tool]) -> None:
        self.tools: dict[str, Tool] = {t.name: t for t in tools}
        self.done = False

    async def run_tool(self, call: dict[str, Any]) -> Message:
        name = call.get("function", {}).get("name", "")
        call_id = call.get("id") or "call"
        tool = self.tools.get(name)
        if tool is None:
            known = ", ".join(self.tools)
            return observation(call_id, name, f"Error: there is no tool named {name!r}. Available tools: {known}.",
                               ToolResult(ok=False, output=""))
        result = await tool(call_arguments(call))
        return observation(call_id, name, result.output, result)

    async def step(self, action: Message) -> StepOutput:
        calls = action.get("tool_calls") or []
        if self.done:
            return [], 0.0, True, False
        if not calls:
            others = [n for n in self.tools if n != self.finish_tool]
            hint = ("No tool call found in your reply, so nothing was run. Reply with one JSON object such as "
                    '{"name": "<tool>", "arguments": {...}}' + f". Tools: {', '.join(others)}. "
                    f"Use them to check your work; call {self.finish_tool} only with a result you have computed.")
            return [{"role": "user", "content": hint}], 0.0, False, False
        messages: list[Message] = []
        reward = 0.0
        for call in calls:
            if call.get("function", {}).get("name") == self.finish_tool:
                self.done = True  # ``submit`` may reopen the episode (e.g. a wrong guess in a game)
                msg, reward = await self.submit(call)
                messages.append(msg)
                break  # calls after the finishing call are not run
            messages.append(await self.run_tool(call))
        return messages, reward, self.done, False

    @abstractmethod
    async def submit(self, call: dict[str, Any]) -> tuple[Message, float]:
        """Handle the finishing call: the observation and the reward. Set ``self.done = False`` to go on."""
