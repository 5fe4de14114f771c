"""Aviary compatibility, both ways: run peerstep on Aviary environments, serve peerstep's to Aviary users.

Aviary (PyPI ``fhaviary``, imported as ``aviary``) is FutureHouse's gym for language agents. Its
protocol is the one peerstep's environments copy (async ``reset``/``step``, OpenAI-shaped
messages), so the adapter is a faithful translation, not a re-interpretation:

* ``AviaryEnvironment`` wraps any ``aviary.core.Environment`` (an instance, or a factory that
  builds one at the first ``reset``) as a peerstep ``Environment``. Messages and tool schemas are
  converted losslessly (``to_openai_message`` / ``to_aviary_message``, ``AviaryTool`` /
  ``to_aviary_tool``); the Aviary environment still runs its own tools in its own ``step``.
* ``AviaryDataset`` puts an Aviary ``TaskDataset`` (local, or a ``TaskDatasetClient`` talking to
  a ``TaskDatasetServer``) behind peerstep's ``EnvironmentDataset``, so ``peerstep eval`` and the
  strategies run on it. ``aviary-calculator`` is registered: Aviary's own ``CalculatorEnv`` on a
  few arithmetic problems written here (``CALCULATOR_ROWS``).
* ``PeerstepAviaryEnv`` and ``PeerstepTaskDataset`` go the other way: any peerstep environment or
  dataset as an Aviary ``Environment`` / ``TaskDataset``, servable with Aviary's
  ``TaskDatasetServer`` so that Aviary and LDP agents can drive it. ``AviaryServer`` runs such a
  server in a background thread on 127.0.0.1 (Aviary's own default binds every interface).

Errors. An exception from the Aviary environment's ``step`` (a tool calling a network service
that is down, a remote server answering 500, a bug) becomes an observation: one ``role: "tool"``
message per requested call (a ``user`` message if there were none) saying what failed, with
``info = {"ok": False, "error": "<ExceptionName>: <message>", "stage": "step"}`` so the step log
marks the observation as failed. The episode goes on, because most such failures are transient or
specific to one call and the agent can retry, try another tool or answer; after ``max_errors``
consecutive failing steps it ends as truncated (no reward), so a dead environment cannot eat the
whole budget. A failing ``reset`` (e.g. the remote server is unreachable) gives one observation
stating the error and no tools, and the first ``step`` ends the episode as truncated.

A reply without tool calls. peerstep's own environments answer it with a format hint and go on;
Aviary's calculator instead ends the episode with its failure reward, and the embedded small model
often thinks aloud in its first reply (measured on ``calc-0``: the episode ended at step 1 with
reward -1). So by default (``no_tool_calls="hint"``) such a reply gets peerstep's hint and is not sent
to the Aviary environment; ``no_tool_calls="aviary"`` sends it as a ``ToolRequestMessage`` with no
calls, exactly what an Aviary/LDP agent would send, for rewards comparable with Aviary's numbers.

GSM8K and HotPotQA with network access. Aviary's ``TaskDataset.from_name("gsm8k", split="test")``
and ``TaskDataset.from_name("hotpotqa", split="dev")`` download their rows from the Hugging Face
hub when they are created, and HotPotQA's ``search`` tool calls live Wikipedia; neither can run
offline. Where the network is available::

    from aviary.core import TaskDataset
    from peerstep.environments.aviary import AviaryDataset
    dataset = AviaryDataset(TaskDataset.from_name("gsm8k", split="test"), name="gsm8k")
    # then e.g. peerstep.evals.run_eval(dataset, ...) or run_strategy("majority", dataset.factory(0), client)

A single HotPotQA task needs no download: ``HotPotQAEnv(question_id=None, question=..., correct_answer=...)``
builds from a local row (only its ``search`` tool needs the network).

Install: ``pip install 'peerstep[aviary]'`` (``fhaviary[server,gsm8k,hotpotqa]``: the server extra
brings FastAPI/uvicorn for ``TaskDatasetServer``; ``gsm8k`` brings the calculator environment).
``aviary`` is imported only when one of these adapters is used, so importing this module (which
the eval runner does, to register ``aviary-calculator``) costs nothing without it.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from peerstep._errors import PeerstepError
from peerstep.environments._base import Environment, Message, StepOutput, no_call_hint
from peerstep.environments._dataset import EnvironmentDataset, TaskInfo, register_dataset
from peerstep.grading import DEFAULT_CHECKER, Checker, NumericChecker
from peerstep.tools._base import Tool, ToolResult

if TYPE_CHECKING:
    import aviary.core as av

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'peerstep[aviary]'"

# Names Aviary environments give the tool that ends an episode with an answer, in order of preference.
ANSWER_TOOL_NAMES = ("submit_answer", "submit", "answer", "final_answer", "complete", "finish")

# Attributes Aviary environments keep their reference answer in (CalculatorEnv: ``answer``; HotPotQAEnv
# keeps only the normalised form).
_GOLD_ATTRIBUTES = ("gold", "answer", "correct_answer", "normalized_correct_answer")
_QUESTION_ATTRIBUTES = ("problem", "question", "task")
_ID_ATTRIBUTES = ("problem_id", "question_id", "task_id")


class AviaryNotInstalledError(PeerstepError, ImportError):
    """Aviary support was used without fhaviary installed. Also an ``ImportError``, for optional-import code."""


@functools.cache
def _require_aviary() -> None:
    """Fail with the install command instead of a bare ``ModuleNotFoundError`` deep inside an adapter."""
    try:
        import aviary.core  # noqa: F401
    except ImportError as exc:
        raise AviaryNotInstalledError(f"Aviary support needs the fhaviary package: {INSTALL_HINT}") from exc


def _require_calculator() -> None:
    _require_aviary()
    try:
        import aviary.envs.gsm8k  # noqa: F401
    except ImportError as exc:
        raise AviaryNotInstalledError(
            f"Aviary's calculator environment needs fhaviary's gsm8k extra: {INSTALL_HINT}") from exc


# --- messages --------------------------------------------------------------------------------------


def to_openai_message(message: av.Message) -> Message:
    """An Aviary message as an OpenAI chat dict; Aviary's ``info`` is kept under peerstep's ``info`` key.

    Tool-call arguments become JSON strings (OpenAI's wire form); multimodal content becomes the
    list of content blocks Aviary stores JSON-encoded.
    """
    _require_aviary()
    from aviary.core import ToolRequestMessage, ToolResponseMessage

    out: Message = {"role": message.role, "content": message.deserialized_content}
    if isinstance(message, ToolRequestMessage):
        out["tool_calls"] = [{"id": call.id, "type": call.type,
                              "function": {"name": call.function.name,
                                           "arguments": json.dumps(call.function.arguments)}}
                             for call in message.tool_calls]
    elif isinstance(message, ToolResponseMessage):
        out["tool_call_id"] = message.tool_call_id
        out["name"] = message.name
    if message.info is not None:
        out["info"] = copy.deepcopy(message.info)
    return out


def to_aviary_message(message: Message) -> av.Message:
    """An OpenAI chat dict as the matching Aviary message class.

    ``role: "tool"`` gives a ``ToolResponseMessage``; an assistant message carrying a ``tool_calls``
    list (even an empty one) gives a ``ToolRequestMessage``; anything else a plain ``Message``.
    Arguments that are not valid JSON follow Aviary's own rule: the call is renamed ``INVALID``.
    """
    _require_aviary()
    from aviary.core import Message as AviaryMessage
    from aviary.core import ToolCall, ToolCallFunction, ToolRequestMessage, ToolResponseMessage

    role = message.get("role", "user")
    content = message.get("content")
    info = copy.deepcopy(message.get("info"))
    if role == "tool":
        return ToolResponseMessage(content=content if content is not None else "", name=message.get("name") or "",
                                   tool_call_id=message.get("tool_call_id") or "", info=info)
    if role == "assistant" and message.get("tool_calls") is not None:
        calls = []
        for call in message["tool_calls"]:
            fn = call.get("function") or {}
            calls.append(ToolCall(
                id=call.get("id") or ToolCall.generate_id(),
                function=ToolCallFunction.model_validate({"name": fn.get("name", ""),
                                                          "arguments": fn.get("arguments")}),
            ))
        return ToolRequestMessage(content=content, tool_calls=calls, info=info)
    return AviaryMessage(role=role, content=content, info=info)


# --- tools -----------------------------------------------------------------------------------------


class AviaryTool(Tool):
    """A peerstep ``Tool`` whose schema is an Aviary tool's, byte for byte.

    peerstep's agent needs tools for the system prompt and the ``tools`` request field; Aviary runs
    its tools itself inside ``Environment.step`` (injecting its own state), so this tool is a
    description, and calling it directly says so instead of bypassing the environment.
    """

    def __init__(self, aviary_tool: av.Tool) -> None:
        info = aviary_tool.info

        def run_by_the_environment() -> str:
            """Run by the Aviary environment in its ``step``."""
            return ""

        super().__init__(run_by_the_environment, name=info.name, description=info.description)
        self.aviary_tool = aviary_tool
        self._schema: dict[str, Any] = aviary_tool.model_dump(exclude_none=True, by_alias=True)

    @property
    def parameters(self) -> dict[str, Any]:
        params = self._schema["function"].get("parameters")
        return copy.deepcopy(params) if params is not None else {"type": "object", "properties": {}}

    def schema(self) -> dict[str, Any]:
        return copy.deepcopy(self._schema)

    async def __call__(self, arguments: dict[str, Any] | str) -> ToolResult:
        return ToolResult(ok=False, output=f"Error: {self.name} is run by the Aviary environment in its step; "
                                           "send it as a tool call in an action instead.")


def to_aviary_tool(tool: Tool) -> av.Tool:
    """A peerstep tool as an Aviary ``Tool`` with the same OpenAI schema, callable by Aviary's ``exec_tool_calls``."""
    _require_aviary()
    from aviary.core import FunctionInfo
    from aviary.core import Tool as AviaryToolModel

    if isinstance(tool, AviaryTool):
        return tool.aviary_tool
    function = tool.schema()["function"]
    parameters = copy.deepcopy(function.get("parameters"))
    if parameters is not None:
        parameters.setdefault("required", [])  # Aviary's schema model requires the key; OpenAI's does not

    async def run(**arguments: Any) -> str:
        return (await tool(arguments)).output

    return AviaryToolModel(tool_fn=run, info=FunctionInfo(name=function["name"],
                                                          description=function.get("description") or "",
                                                          parameters=parameters))


# --- Aviary environments in peerstep ---------------------------------------------------------------


def describe_exception(exc: BaseException) -> str:
    """``"<ExceptionName>: <message>"``, with the cause a wrapper hides (a retry, a remote 500) appended."""
    text = f"{type(exc).__name__}: {exc}"
    last_attempt = getattr(exc, "last_attempt", None)  # tenacity.RetryError hides the real failure
    if last_attempt is not None and callable(getattr(last_attempt, "exception", None)):
        inner = last_attempt.exception()
        if inner is not None:
            text += f" (last attempt: {type(inner).__name__}: {inner})"
    response = getattr(exc, "response", None)  # httpx.HTTPStatusError from a remote Aviary server
    body = getattr(response, "text", None)
    if isinstance(body, str) and body:
        try:
            detail = json.loads(body).get("detail", body)
        except (json.JSONDecodeError, AttributeError):
            detail = body
        last_line = str(detail).strip().splitlines()[-1:] or [""]
        text += f" (server: {last_line[0][:300]})"
    return text[:1000]


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

    def _hint(self) -> str:
        return no_call_hint([t.name for t in self.tools], self.finish_tool)

    async def step(self, action: Message) -> StepOutput:
        calls = list(action.get("tool_calls") or [])
        if self._broken is not None:
            return self._failure(calls, self._broken, "reset",
                                 f"Error: the environment could not start ({self._broken})."), 0.0, False, True
        if self._inner is None:
            raise RuntimeError("step() before reset()")
        if not calls and self.no_tool_calls == "hint":
            return [{"role": "user", "content": self._hint()}], 0.0, False, False
        try:
            observations, reward, done, truncated = await self._inner.step(to_aviary_message(action))
        except Exception as exc:  # an environment failure is an observation, never a crash
            self.errors += 1
            error = describe_exception(exc)
            give_up = self.errors >= self.max_errors
            tail = (f"The episode ends after {self.errors} failing steps in a row." if give_up else
                    "The step had no result; you may retry, try something else, or submit your answer.")
            return self._failure(calls, error, "step", f"Error: the environment failed: {error}. {tail}"), \
                0.0, False, give_up
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
        return out, float(reward), bool(done), bool(truncated)

    async def close(self) -> None:
        """Close the Aviary environment once; it stays referenced so ``gold`` can still be read."""
        if self._inner is not None and not self._closed:
            self._closed = True
            try:
                await self._inner.close()
            except Exception as exc:  # the episode is over and logged; a failed cleanup must not undo that
                logger.warning("closing the Aviary environment failed: %s", describe_exception(exc))


class AviaryDataset(EnvironmentDataset):
    """An Aviary ``TaskDataset`` (local or a ``TaskDatasetClient``) as a peerstep dataset.

    ``infos`` gives each task's id, question and gold when the Aviary dataset cannot tell them
    without starting an episode (a remote client); otherwise they are read from a freshly built
    environment's attributes (``problem``/``question``, ``problem_id``, the gold answer). ``checker``
    grades answers for every task (see ``AviaryEnvironment``).
    """

    def __init__(self, task_dataset: av.TaskDataset[Any], *, name: str = "aviary",
                 infos: Sequence[TaskInfo] | None = None, finish_tool: str | None = None,
                 max_errors: int = 3, no_tool_calls: Literal["hint", "aviary"] = "hint",
                 checker: Checker = DEFAULT_CHECKER) -> None:
        _require_aviary()
        self.task_dataset = task_dataset
        self.name = name
        self._infos: dict[int, TaskInfo] = dict(enumerate(infos)) if infos is not None else {}
        self.finish_tool = finish_tool
        self.max_errors = max_errors
        self.no_tool_calls: Literal["hint", "aviary"] = no_tool_calls
        self._checker = checker

    @classmethod
    def remote(cls, server_url: str, *, name: str = "aviary-remote", api_key: str | None = None,
               infos: Sequence[TaskInfo] | None = None, request_timeout: float | None = 300.0) -> AviaryDataset:
        """The tasks a ``TaskDatasetServer`` at ``server_url`` serves (its ``/info`` is read now)."""
        _require_aviary()
        from aviary.core import TaskDatasetClient

        return cls(TaskDatasetClient(server_url, request_timeout=request_timeout, api_key=api_key),
                   name=name, infos=infos)

    def __len__(self) -> int:
        return len(self.task_dataset)

    def _check(self, index: int) -> None:
        if not 0 <= index < len(self):
            raise IndexError(f"task {index} is out of range; {self.name} has {len(self)} tasks")

    def info(self, index: int) -> TaskInfo:
        self._check(index)
        if index not in self._infos:
            env = self.task_dataset.get_new_env_by_idx(index)
            self._infos[index] = TaskInfo(task_id=_first_attribute(env, _ID_ATTRIBUTES) or str(index),
                                          question=_first_attribute(env, _QUESTION_ATTRIBUTES) or "",
                                          gold=aviary_gold(env), tags={"aviary_env": type(env).__name__})
        return self._infos[index]

    def checker(self, index: int) -> Checker:
        self._check(index)
        return self._checker

    def make(self, index: int) -> AviaryEnvironment:
        self._check(index)
        known = self._infos.get(index)
        return AviaryEnvironment(lambda: self.task_dataset.get_new_env_by_idx(index), finish_tool=self.finish_tool,
                                 gold=known.gold if known is not None else None, max_errors=self.max_errors,
                                 no_tool_calls=self.no_tool_calls, checker=self._checker)


# --- the calculator on local rows ------------------------------------------------------------------


class CalculatorRow(NamedTuple):
    task_id: str
    problem: str
    answer: float


CALCULATOR_ROWS: tuple[CalculatorRow, ...] = (
    CalculatorRow("calc-0", "A crate holds 24 bottles. How many bottles are in 17 crates?", 408),
    CalculatorRow("calc-1", "What is 1234 * 56 - 789?", 68315),
    CalculatorRow("calc-2", "A train travels at 85 km per hour for 3.5 hours. How many kilometres does it travel?",
                  297.5),
    CalculatorRow("calc-3", "Maria had 250 dollars, spent 37% of it, then earned 48 dollars. "
                            "How many dollars does she have now?", 205.5),
    CalculatorRow("calc-4", "What is (17 + 26) * 19 / 4?", 204.25),
    CalculatorRow("calc-5", "A field is 12.5 m long and 8 m wide. What is its area in square metres?", 100),
)


class AviaryCalculatorChecker:
    """Aviary ``CalculatorEnv``'s own rule: the answer is a float ``a`` with ``|a - g| / (|g| + rel_tol) < rel_tol``.

    So that peerstep's grade of an answer is the reward Aviary gives it: "408 bottles" is wrong for both.
    """

    def __init__(self, rel_tol: float = 1e-4) -> None:
        self.rel_tol = rel_tol

    def __call__(self, prediction: str, gold: str) -> bool:
        try:
            answer, reference = float(prediction), float(gold)
        except (TypeError, ValueError):
            return False
        return abs(answer - reference) / (abs(reference) + self.rel_tol) < self.rel_tol

    def normalise(self, answer: str) -> str | None:
        """The one number the answer states, which this checker can read; None when it states none or several."""
        return NumericChecker().normalise(answer)

    def __repr__(self) -> str:
        return f"AviaryCalculatorChecker(rel_tol={self.rel_tol})"


def calculator_task_dataset(rows: Sequence[CalculatorRow] = CALCULATOR_ROWS,
                            config: dict[str, Any] | None = None) -> av.TaskDataset[Any]:
    """Aviary's ``CalculatorEnv`` (the GSM8K environment) on local rows: an Aviary ``TaskDataset``, no download.

    ``config`` is Aviary's ``CalculatorEnvConfig`` as a dict (rewards, ``done_on_failure``, tolerance).
    """
    task_dataset: av.TaskDataset[Any] = _calculator_class()(rows, config)
    return task_dataset


@register_dataset("aviary-calculator")
def aviary_calculator(done_on_failure: bool = False) -> AviaryDataset:
    """Aviary's calculator environment on ``CALCULATOR_ROWS``, for ``peerstep eval aviary-calculator``.

    Aviary's default ends an episode at the first failed or unknown tool call; peerstep's environments never end
    an episode for an agent's mistake (small models make malformed calls and recover), so that is off here unless
    asked for.
    """
    task_dataset = calculator_task_dataset(config={"done_on_failure": done_on_failure})
    rel_tol = float(getattr(getattr(task_dataset, "config", None), "rel_tol", 1e-4))
    return AviaryDataset(task_dataset, name="aviary-calculator", checker=AviaryCalculatorChecker(rel_tol))


# --- peerstep environments in Aviary ---------------------------------------------------------------


class _AviaryClasses(NamedTuple):
    PeerstepAviaryEnv: type[Any]
    PeerstepTaskDataset: type[Any]


@functools.cache
def _classes() -> _AviaryClasses:
    """Classes that subclass Aviary's, defined on first use so that this module imports without Aviary."""
    _require_aviary()
    from aviary.core import Environment as AviaryEnv
    from aviary.core import Frame, TaskDataset
    from aviary.core import Message as AviaryMessage
    from aviary.core import Tool as AviaryToolModel

    class PeerstepAviaryEnv(AviaryEnv[None]):
        """A peerstep environment as an Aviary ``Environment``: each ``reset`` builds a fresh one from ``factory``.

        Observations keep peerstep's ``info`` (``ok``, latency, timeouts) as Aviary's ``Message.info``,
        which Aviary's server sends to clients.
        """

        def __init__(self, factory: Callable[[], Environment], *, task_id: str | None = None,
                     gold: str | None = None) -> None:
            self.factory = factory
            self.task_id = task_id
            self.gold = gold
            self.env: Environment | None = None
            self.tools: list[AviaryToolModel] = []
            self.state = None
            self.last: dict[str, Any] = {}

        async def reset(self) -> tuple[list[AviaryMessage], list[AviaryToolModel]]:
            await self.close()
            self.env = self.factory()
            messages, tools = await self.env.reset()
            self.tools = [to_aviary_tool(t) for t in tools]
            self.last = {"reward": 0.0, "done": False, "truncated": False}
            return [to_aviary_message(m) for m in messages], list(self.tools)

        async def step(self, action: AviaryMessage) -> tuple[list[AviaryMessage], float, bool, bool]:
            if self.env is None:
                raise RuntimeError("step() before reset(): reset the environment first")
            observations, reward, done, truncated = await self.env.step(to_openai_message(action))
            self.last = {"reward": reward, "done": done, "truncated": truncated}
            return [to_aviary_message(o) for o in observations], reward, done, truncated

        async def get_id(self) -> str:
            if self.task_id is None:
                raise ValueError("this environment was built without a task id")
            return self.task_id

        def export_frame(self) -> Frame:
            return Frame(state=dict(self.last), info={"task_id": self.task_id, "gold": self.gold,
                                                      "environment": type(self.env).__name__ if self.env else None})

        async def close(self) -> None:
            if self.env is not None:
                env, self.env = self.env, None
                await env.close()

    class PeerstepTaskDataset(TaskDataset[PeerstepAviaryEnv]):
        """A peerstep ``EnvironmentDataset`` as an Aviary ``TaskDataset`` (servable with ``TaskDatasetServer``)."""

        def __init__(self, dataset: EnvironmentDataset) -> None:
            self.dataset = dataset

        def __len__(self) -> int:
            return len(self.dataset)

        def get_new_env_by_idx(self, idx: int) -> PeerstepAviaryEnv:
            if not 0 <= idx < len(self.dataset):
                raise IndexError(f"task {idx} is out of range; the dataset has {len(self.dataset)} tasks")
            info = self.dataset.info(idx)
            return PeerstepAviaryEnv(self.dataset.factory(idx), task_id=info.task_id, gold=info.gold)

    return _AviaryClasses(PeerstepAviaryEnv, PeerstepTaskDataset)


@functools.cache
def _calculator_class() -> type[Any]:
    """Defined on first use, like ``_classes``; separate because it needs the ``gsm8k`` extra too."""
    _require_calculator()
    from aviary.core import TaskDataset
    from aviary.envs.gsm8k import CalculatorEnv, CalculatorEnvConfig

    class CalculatorTaskDataset(TaskDataset[CalculatorEnv]):
        """Aviary's ``CalculatorEnv`` over rows held in memory (``GSM8kDataset`` downloads its rows instead)."""

        def __init__(self, rows: Sequence[CalculatorRow], config: dict[str, Any] | None = None) -> None:
            self.rows = list(rows)
            self.config = CalculatorEnvConfig(**(config or {}))

        def __len__(self) -> int:
            return len(self.rows)

        def get_new_env_by_idx(self, idx: int) -> CalculatorEnv:
            row = self.rows[idx]
            return CalculatorEnv(problem_id=row.task_id, problem=row.problem, answer=row.answer, config=self.config)

    return CalculatorTaskDataset


def peerstep_aviary_env(factory: Callable[[], Environment], *, task_id: str | None = None,
                        gold: str | None = None) -> av.Environment[None]:
    """A peerstep environment factory as an Aviary ``Environment`` (a ``PeerstepAviaryEnv``)."""
    env: av.Environment[None] = _classes().PeerstepAviaryEnv(factory, task_id=task_id, gold=gold)
    return env


def peerstep_task_dataset(dataset: EnvironmentDataset) -> av.TaskDataset[Any]:
    """A peerstep dataset as an Aviary ``TaskDataset`` (a ``PeerstepTaskDataset``)."""
    task_dataset: av.TaskDataset[Any] = _classes().PeerstepTaskDataset(dataset)
    return task_dataset


def __getattr__(name: str) -> Any:
    """``PeerstepAviaryEnv``, ``PeerstepTaskDataset`` and ``CalculatorTaskDataset`` subclass Aviary's classes,
    so they exist only once Aviary is imported; asking for one imports it (PEP 562)."""
    if name in _AviaryClasses._fields:
        return getattr(_classes(), name)
    if name == "CalculatorTaskDataset":
        return _calculator_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- serving ---------------------------------------------------------------------------------------


class AviaryServer:
    """Aviary's ``TaskDatasetServer`` for ``dataset`` in a background thread; stops cleanly on ``stop()``.

    Binds 127.0.0.1 unless told otherwise (Aviary's own default is every interface). ``port=0``
    takes a free port, read back into ``port`` and ``url`` once the server is listening.
    """

    def __init__(self, dataset: av.TaskDataset[Any], *, host: str = "127.0.0.1", port: int = 0,
                 api_key: str | None = None, start_timeout: float = 30.0) -> None:
        _require_aviary()
        self.dataset = dataset
        self.host = host
        self.port = port
        self.api_key = api_key
        self.start_timeout = start_timeout
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> AviaryServer:
        try:
            import uvicorn
            from aviary.core import TaskDatasetServer
        except ImportError as exc:
            raise AviaryNotInstalledError(f"serving Aviary tasks needs fhaviary's server extra: {INSTALL_HINT}") \
                from exc
        task_server = TaskDatasetServer(self.dataset, host=self.host, port=self.port, api_key=self.api_key)
        if task_server.app is None:
            raise PeerstepError("the TaskDatasetServer has no app to serve")
        config = uvicorn.Config(task_server.app, host=self.host, port=self.port, log_level="warning",
                                access_log=False, lifespan="off")
        self._server = server = uvicorn.Server(config)

        async def serve() -> None:
            try:
                await server.serve()
            finally:
                await task_server.close()  # environments a client left open

        def run() -> None:
            try:
                asyncio.run(serve())
            except BaseException as exc:  # reported by start() or stop(), in the caller's thread
                self._failure = exc

        self._thread = threading.Thread(target=run, name=f"aviary-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                why = describe_exception(self._failure) if self._failure else "it did not start in time"
                raise PeerstepError(f"the Aviary task server on {self.host}:{self.port} failed to start: {why}")
            time.sleep(0.02)
        self.port = server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
            if self._thread.is_alive():
                raise PeerstepError(f"the Aviary task server on port {self.port} did not stop within 30 s")
        self._thread = None

    def __enter__(self) -> AviaryServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


__all__ = ["ANSWER_TOOL_NAMES", "CALCULATOR_ROWS", "INSTALL_HINT", "AviaryDataset", "AviaryEnvironment",
           "AviaryNotInstalledError", "AviaryServer", "AviaryTool", "CalculatorRow", "aviary_calculator",
           "aviary_gold", "calculator_task_dataset", "describe_exception", "peerstep_aviary_env",
           "peerstep_task_dataset", "to_aviary_message", "to_aviary_tool", "to_openai_message"]
