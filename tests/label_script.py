"""A trajectory with known Monte-Carlo values, for the label tests (in-process client and a fake HTTP server).

The parent run (one trajectory, gold 42) makes four model calls: ``6*7`` (right), ``42+1`` (wrong, but some
continuations recover), ``43*1`` (from here every continuation answers 43) and submits 43. Continuations reply by
their position in the conversation (assistant messages so far) and their seed (the fork's trajectory id), so the
expected labels are exact: after step 0, 3 of 4 continuations answer 42; after step 1, 1 of 4; after step 2, 0 of 4;
the answer step is wrong. The first error is step 2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from peerstep.testing.model import ScriptedClient
from peerstep.testing.server import ScriptedServer


def calc(expr: str) -> str:
    return f'{{"name": "calculate", "arguments": {{"expression": "{expr}"}}}}'


def submit(answer: str) -> str:
    return f'{{"name": "submit_answer", "arguments": {{"answer": "{answer}"}}}}'


QUESTION = "What is 6*7?"
GOLD = "42"
PARENT = [calc("6*7"), calc("42+1"), calc("43*1"), submit("43")]
EXPECTED_K = [3, 1, 0]  # correct continuations of 4 after steps 0, 1, 2
EXPECTED_FIRST_ERROR = 2


def continuation(position: int, seed: int) -> str:
    """The reply a continuation gets with ``position`` assistant messages in its conversation."""
    if position == 1:
        return submit("42") if seed < 3 else submit("41")
    if position == 2:
        return submit("42") if seed == 0 else submit("43")
    return submit("43")


def long_parent(steps: int) -> list[str]:
    """A parent of ``steps`` calculator steps, then a wrong answer (43)."""
    return [*(calc(f"{i}+1") for i in range(steps)), submit("43")]


def recovers_until(first_error: int) -> Callable[[int, int], str]:
    """Continuations of ``long_parent``: from after step i, the seed-0 continuation answers 42 while
    i < ``first_error``, every other one 43; so step values are 1/K, then 0 from ``first_error`` on."""
    def reply(position: int, seed: int) -> str:
        return submit("42") if position - 1 < first_error and seed == 0 else submit("43")
    return reply


def position(messages: Sequence[dict[str, Any]]) -> int:
    return sum(1 for m in messages if m["role"] == "assistant")


class ParentClient(ScriptedClient):
    def __init__(self, script: list[str] | None = None) -> None:
        super().__init__([])
        self.script = script or PARENT

    async def chat(self, messages: Sequence[dict[str, Any]], **kwargs: Any) -> Any:
        self.replies = [self.script[position(messages)]]
        return await super().chat(messages, **kwargs)


class ContinuationClient(ScriptedClient):
    """Continuations by (position, seed); ``reply`` may be replaced for other trajectories."""

    def __init__(self, reply: Any = continuation) -> None:
        super().__init__([])
        self.reply = reply

    async def chat(self, messages: Sequence[dict[str, Any]], *, sampling: Any = None, **kwargs: Any) -> Any:
        seed = sampling.seed if sampling is not None and sampling.seed is not None else 0
        self.replies = [self.reply(position(messages), seed)]
        return await super().chat(messages, sampling=sampling, **kwargs)


class ContinuationServer(ScriptedServer):
    """The continuations behind ``/v1/chat/completions`` (non-streamed), each reply after ``delay`` seconds:
    peerstep's scripted server answering by (position, seed)."""

    def __init__(self, reply: Callable[[int, int], str] = continuation, delay: float = 0.0,
                 model: str = "scripted") -> None:
        super().__init__(delay=delay, model=model, reply=lambda messages, seed: reply(position(messages), seed))
