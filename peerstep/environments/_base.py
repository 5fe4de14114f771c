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
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from peerstep.grading import DEFAULT_CHECKER, Checker, normalise_answer
from peerstep.tools._base import Tool, ToolResult

Message = dict[str, Any]
StepOutput = tuple[list[Message], float, bool, bool]

# What an environment says to a reply with no tool calls: Aviary's own words
# (``aviary.core.Environment.default_no_tool_calls_response``), as a ``user`` message, reward 0, not done. It is
# environment-level and neutral about how the calls are written: an agent with native tool calls reads it as it
# is, and peerstep's agent, which writes calls as text, replaces it with its own format hint
# (``peerstep.agent._prompts.no_call_hint``).
NO_TOOL_CALLS = "No tool calls received. Please call one or more tools to proceed."

def register_environment(name: str) -> Callable[[Callable[..., Environment]], Callable[..., Environment]]:
    """Class decorator: make an environment constructible with ``Environment.from_name(name, **kwargs)``."""
    from peerstep.registry import ENVIRONMENTS

    return ENVIRONMENTS.register(name)


def environment_names() -> list[str]:
    from peerstep.registry import ENVIRONMENTS

    return ENVIRONMENTS.names()


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

    @property
    def scored(self) -> bool:
        """Whether this environment's reward means something: it has a gold answer, or it scores by itself
        (a game, a user checker that needs no gold). An unscored episode's reward is None, not 0.0."""
        return self.gold is not None

    def grade(self, answer: str | None) -> bool | None:
        """Is ``answer`` right? None when nothing can tell (no gold). The verdict of a whole run: the vote's
        answer is graded here, with the same checker the reward uses."""
        if self.gold is None:
            return None
        return answer is not None and bool(self.checker(answer, self.gold))

    @classmethod
    def from_name(cls, name: str, **kwargs: Any) -> Environment:
        from peerstep.registry import ENVIRONMENTS

        factory: Callable[..., Environment] = ENVIRONMENTS.get(name)
        return factory(**kwargs)


def observation(call_id: str, name: str, content: str, result: ToolResult | None = None) -> Message:
    """A ``role: "tool"`` message; ``info`` carries execution facts for the step log, not for the model."""
    msg: Message = {"role": "tool", "tool_call_id": call_id, "name": name, "content": content}
    if result is not None:
        msg["info"] = _info(result)
    return msg


def _info(result: ToolResult) -> dict[str, Any]:
    return {"ok": result.ok, "latency_s": result.latency_s, "timed_out": result.timed_out,
            "truncated": result.truncated}


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
        self.submitted: str | None = None  # the submitted answer in the task's canonical form
        self._asked_for_form = False

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
            return [{"role": "user", "content": NO_TOOL_CALLS}], 0.0, False, False
        messages: list[Message] = []
        reward = 0.0
        for call in calls:
            if call.get("function", {}).get("name") == self.finish_tool:
                answer = _answer_argument(call)
                canonical = normalise_answer(self.checker, answer) if answer.strip() else None
                if canonical is None and not self._asked_for_form:
                    # the answer does not have the form the task grades (e.g. several numbers for a numeric
                    # task): ask once, instead of grading a sentence as wrong
                    self._asked_for_form = True
                    messages.append(observation(call.get("id") or "call", self.finish_tool, _form_hint(
                        answer, self.finish_tool), ToolResult(ok=False, output="")))
                    break
                self.done = True  # ``submit`` may reopen the episode (e.g. a wrong guess in a game)
                self.submitted = canonical or answer.strip()
                started = time.perf_counter()
                msg, reward = await self.submit(call)
                if msg.get("role") == "tool" and "info" not in msg:
                    # the finishing tool's observation carries the same execution facts as every other tool's
                    msg = {**msg, "info": _info(ToolResult(ok=True, output="",
                                                           latency_s=time.perf_counter() - started))}
                messages.append(msg)
                break  # calls after the finishing call are not run
            messages.append(await self.run_tool(call))
        return messages, reward, self.done, False

    @abstractmethod
    async def submit(self, call: dict[str, Any]) -> tuple[Message, float]:
        """Handle the finishing call: the observation and the reward. Set ``self.done = False`` to go on."""


def finish_argument(tool: Tool | None) -> str:
    """The argument of a finishing tool that takes the answer: ``answer``, else its only (first) one."""
    params = list(tool.parameters.get("properties", {})) if tool is not None else []
    return "answer" if "answer" in params or not params else params[0]


def task_instructions(tools: list[Tool], finish_tool: str | None) -> str:
    """What to do, for an agent that knows nothing of this environment: built from the tools actually offered.

    ``"Answer the question below. Use the tools offered (calculate, search) as you need them; when you have the
    final answer, call submit_answer with its answer argument set to the final answer only."``
    """
    finish = next((t for t in tools if t.name == finish_tool), None)
    others = [t.name for t in tools if t is not finish]
    text = "Answer the question below."
    if others:
        text += f" Use the tools offered ({', '.join(others)}) as you need them"
        text += ";" if finish is not None else "."
    if finish is not None:
        text += (" when" if others else " When") + (
            f" you have the final answer, call {finish.name} with its {finish_argument(finish)} argument set to "
            "the final answer only.")
    return text


def _answer_argument(call: dict[str, Any]) -> str:
    args = call_arguments(call)
    if isinstance(args, dict):
        value = args["answer"] if "answer" in args else next(iter(args.values()), "")
        return str(value)
    return str(args)


def _form_hint(answer: str, finish_tool: str) -> str:
    return (f"Your answer {answer.strip()[:200]!r} is not in the form this task is graded in (for a number: one "
            f"number, not several). Call {finish_tool} again with just the final answer.")
