"""``AviaryEnvironment``: an Aviary environment run as a peerstep ``Environment``.

Errors. An exception from the Aviary environment's ``step`` (a tool calling a network service
that is down, a remote server answering 500, a bug) becomes an observation: one ``role: "tool"``
message per requested call (a ``user`` message if there were none) saying what failed, with
``info = {"ok": False, "error": "<ExceptionName>: <message>", "stage": "step"}`` so the step log
marks the observation as failed. The episode goes on, because most such failures are transient or
specific to one call and the agent can retry, try another tool or answer; after ``max_errors``
consecutive failing steps it ends as truncated (no reward), so a dead environment cannot eat the
whole budget. A failing ``reset`` (e.g. the remote server is unreachable) gives one observation
stating the error and no tools, and the first ``step`` ends the episode as truncated.

A reply without tool calls. peerstep's own environments answer it with Aviary's neutral "No tool
calls received" (``NO_TOOL_CALLS``; peerstep's agent shows its own format hint instead) and go on;
Aviary's calculator instead ends the episode with its failure reward, and the embedded small model
often thinks aloud in its first reply (measured on ``calc-0``: the episode ended at step 1 with
reward -1). So by default (``no_tool_calls="hint"``) such a reply gets ``NO_TOOL_CALLS`` and is not
sent to the Aviary environment; ``no_tool_calls="aviary"`` sends it as a ``ToolRequestMessage`` with no
calls, exactly what an Aviary/LDP agent would send, for rewards comparable with Aviary's numbers.

Bad arguments. Each call's arguments are checked against its tool's schema first, by the check peerstep's own
tools use (``peerstep.tools.check_arguments``): a call with an invented, missing or mistyped argument, or with
arguments that are not a JSON object, is answered with an observation naming the arguments the tool takes and
is not sent (Aviary would call the tool's function with them and fail with a ``TypeError``, or rename the call
``INVALID`` and give its failure reward). The other calls of the action are sent as usual.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from peerstep.environments._base import (
    NO_TOOL_CALLS,
    Environment,
    Message,
    StepOutput,
    call_arguments,
    observation,
)
from peerstep.environments.aviary._convert import AviaryTool, to_aviary_message, to_openai_message
from peerstep.environments.aviary._errors import _require_aviary, describe_exception
from peerstep.grading import DEFAULT_CHECKER, Checker
from peerstep.tools._base import Tool, ToolResult
from peerstep.tools._schema import check_arguments

if TYPE_CHECKING:
    import aviary.core as av

logger = logging.getLogger(__name__)

# Names Aviary environments give the tool that ends an episode with an answer, in order of preference.
ANSWER_TOOL_NAMES = ("submit_answer", "submit", "answer", "final_answer", "complete", "finish")

# Attributes Aviary environments keep their reference answer in (CalculatorEnv: ``answer``; HotPotQAEnv
# keeps only the normalised form).
_GOLD_ATTRIBUTES = ("gold", "answer", "correct_answer", "normalized_correct_answer")
_QUESTION_ATTRIBUTES = ("problem", "question", "task")
_ID_ATTRIBUTES = ("problem_id", "question_id", "task_id")


def _scalar_text(value: object) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int | str):
        return str(value) or None
    return None


def _first_attribute(env: object, names: Sequence[str]) -> str | None:
    for name in names:
        text = _scalar_text(getattr(env, name, None))
        if text is not None:
            return text
    return None


def aviary_gold(env: object) -> str | None:
    """The reference answer an Aviary environment keeps, when it keeps one under a known attribute."""
    return _first_attribute(env, _GOLD_ATTRIBUTES)


class AviaryEnvironment(Environment):
    """A peerstep environment that delegates to an Aviary environment.

    ``env`` is an ``aviary.core.Environment`` or a zero-argument factory for one (called at the first
    ``reset``, so building a remote environment cannot fail before the episode can report it).
    ``finish_tool`` defaults to the Aviary environment's answer tool (``ANSWER_TOOL_NAMES``) so a
    forced answer names it; ``gold`` defaults to the answer the Aviary environment keeps, if any.
    ``max_errors`` consecutive failing steps end the episode; ``no_tool_calls`` is explained in the
    module docstring. The reward is the Aviary environment's own; ``checker`` is the rule peerstep grades
    with where it must decide itself (vote grouping, the verdict on a chosen answer, an eval's grade), so
    give the one that mirrors the Aviary reward (``DEFAULT_CHECKER``, mathematical equivalence, by default).
    """

    name = "aviary"

    def __init__(
        self,
        env: av.Environment[Any] | Callable[[], av.Environment[Any]],
        *,
        finish_tool: str | None = None,
        gold: str | None = None,
        max_errors: int = 3,
        no_tool_calls: Literal["hint", "aviary"] = "hint",
        checker: Checker = DEFAULT_CHECKER,
    ) -> None:
        _require_aviary()
        from aviary.core import Environment as AviaryEnv

        self._inner: AviaryEnv[Any] | None = env if isinstance(env, AviaryEnv) else None
        self._factory: Callable[[], AviaryEnv[Any]] | None = None if isinstance(env, AviaryEnv) else env
        self._explicit_finish = finish_tool
        self.finish_tool: str | None = finish_tool or "submit_answer"
        self._gold = gold
        self.max_errors = max_errors
        self.no_tool_calls = no_tool_calls
        self.checker = checker
        self.tools: list[Tool] = []
        self.errors = 0  # consecutive failing steps
        self._broken: str | None = None  # set when reset failed
        self._closed = False

    @property
    def inner(self) -> av.Environment[Any] | None:
        """The wrapped Aviary environment (``None`` until a factory-built one is first reset)."""
        return self._inner

    @property
    def gold(self) -> str | None:
        if self._gold is not None:
            return self._gold
        return aviary_gold(self._inner) if self._inner is not None else None

    @property
    def scored(self) -> bool:
        return True  # an Aviary environment computes its own reward

    def _failure(self, calls: list[dict[str, Any]], error: str, stage: str, content: str) -> list[Message]:
        info = {"ok": False, "error": error, "stage": stage}
        if not calls:
            return [{"role": "user", "content": content, "info": info}]
        return [{"role": "tool", "tool_call_id": call.get("id") or "call",
                 "name": (call.get("function") or {}).get("name", ""), "content": content, "info": dict(info)}
                for call in calls]

    async def reset(self) -> tuple[list[Message], list[Tool]]:
        self.errors = 0
        try:
            if self._inner is None and self._factory is not None:
                self._inner = self._factory()
            if self._inner is None:
                raise RuntimeError("no Aviary environment to reset")
            messages, tools = await self._inner.reset()
        except Exception as exc:  # reported to the agent and the log; the first step then ends the episode
            self._broken = describe_exception(exc)
            self.tools = []
            return self._failure([], self._broken, "reset",
                                 f"Error: the environment could not start ({self._broken}). "
                                 "This episode cannot be played."), []
        self._broken = None
        self.tools = [AviaryTool(t) for t in tools]
        names = [t.name for t in self.tools]
        self.finish_tool = self._explicit_finish or next((n for n in ANSWER_TOOL_NAMES if n in names), None)
        return [to_openai_message(m) for m in messages], list(self.tools)

    async def step(self, action: Message) -> StepOutput:
        calls = list(action.get("tool_calls") or [])
        if self._broken is not None:
            return self._failure(calls, self._broken, "reset",
                                 f"Error: the environment could not start ({self._broken})."), 0.0, False, True
        if self._inner is None:
            raise RuntimeError("step() before reset()")
        if not calls and self.no_tool_calls == "hint":
            return [{"role": "user", "content": NO_TOOL_CALLS}], 0.0, False, False
        sent, rejected = self._check_calls(calls)
        if calls and not sent:  # every call had bad arguments: nothing reaches the Aviary environment
            return rejected, 0.0, False, False
        if calls:
            action = {**action, "tool_calls": sent}
        try:
            observations, reward, done, truncated = await self._inner.step(to_aviary_message(action))
        except Exception as exc:  # an environment failure is an observation, never a crash
            self.errors += 1
            error = describe_exception(exc)
            give_up = self.errors >= self.max_errors
            tail = (f"The episode ends after {self.errors} failing steps in a row." if give_up else
                    "The step had no result; you may retry, try something else, or submit your answer.")
            failed = self._failure(sent, error, "step", f"Error: the environment failed: {error}. {tail}")
            return _in_call_order(calls, [*failed, *rejected]), 0.0, False, give_up
        self.errors = 0
        out = []
        names = {t.name for t in self.tools}
        called = {c.get("id"): c.get("function", {}).get("name", "") for c in calls}
        for obs in observations:
            msg = to_openai_message(obs)
            name = called.get(msg.get("tool_call_id"))
            if msg.get("role") == "tool" and not str(msg.get("content") or "").strip() and name is not None \
                    and name not in names:
                # Aviary answers an unknown tool (or unparseable arguments, its "INVALID") with an empty message:
                # say what went wrong, so the agent can recover
                msg["content"] = (f"Error: there is no tool named {name!r} (or its arguments were not valid "
                                  f"JSON). Available tools: {', '.join(sorted(names))}.")
            info = msg.get("info")
            if isinstance(info, dict) and isinstance(info.get("start_ts"), int | float) \
                    and isinstance(info.get("end_ts"), int | float):
                info.setdefault("latency_s", info["end_ts"] - info["start_ts"])  # Aviary's timings, in the log
            out.append(msg)
        return _in_call_order(calls, [*out, *rejected]), float(reward), bool(done), bool(truncated)

    def _check_calls(self, calls: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Message]]:
        """The calls to send on (arguments as ``check_arguments`` passes them), and an observation for each call
        whose arguments do not fit its tool's schema: Aviary would call the tool's function with them and fail with
        a bare ``TypeError`` (``calculator(expression=...)`` for ``calculator(expr)``). Unknown tools go on to
        Aviary, whose answer to them is explained in ``step``."""
        tools = {t.name: t for t in self.tools}
        sent: list[dict[str, Any]] = []
        rejected: list[Message] = []
        for call in calls:
            fn = call.get("function") or {}
            tool = tools.get(fn.get("name", ""))
            if tool is None:
                sent.append(call)
                continue
            arguments, problem = check_arguments(tool.name, tool.parameters, call_arguments(call))
            if arguments is None:
                rejected.append(observation(call.get("id") or "call", tool.name, problem or "Error: bad arguments.",
                                            ToolResult(ok=False, output="")))
                continue
            sent.append({**call, "function": {**fn, "arguments": json.dumps(arguments)}})
        return sent, rejected

    async def close(self) -> None:
        """Close the Aviary environment once; it stays referenced so ``gold`` can still be read."""
        if self._inner is not None and not self._closed:
            self._closed = True
            try:
                await self._inner.close()
            except Exception as exc:  # the episode is over and logged; a failed cleanup must not undo that
                logger.warning("closing the Aviary environment failed: %s", describe_exception(exc))


def _in_call_order(calls: list[dict[str, Any]], messages: list[Message]) -> list[Message]:
    """Observations in the order of the calls they answer (one per call, as the protocol says); messages that
    answer no call keep their order, after them."""
    position = {call.get("id") or "call": i for i, call in enumerate(calls)}
    return sorted(messages, key=lambda m: position.get(m.get("tool_call_id"), len(calls)))
