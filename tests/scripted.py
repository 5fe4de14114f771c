"""A scripted stand-in for a model server, for graph-logic tests only.

Replies are consumed in order; each is a text reply, a list of native tool calls, or an
exception to raise (as a dead server would). Every request is recorded so tests can check
what the agent sent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from peerstep.agent import Completion, ModelClient, SamplingParams

Reply = str | list[dict[str, Any]] | BaseException


def native_call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"id": f"call_{name}", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


class ScriptedClient(ModelClient):
    def __init__(self, replies: Sequence[Reply], model: str = "scripted") -> None:
        super().__init__("http://scripted.invalid/v1", model, max_retries=0)
        self.replies = list(replies)
        self.requests_seen: list[dict[str, Any]] = []

    async def chat(self, messages: Sequence[dict[str, Any]], *, sampling: SamplingParams | None = None,
                   tools: list[dict[str, Any]] | None = None, tool_choice: Any = None, n: int = 1,
                   on_token: Any = None, response_format: Any = None) -> list[Completion]:
        self.requests_seen.append({"messages": [dict(m) for m in messages], "tools": tools,
                                   "tool_choice": tool_choice, "sampling": sampling})
        if not self.replies:
            raise AssertionError("the scripted model ran out of replies")
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, str):
            if on_token is not None:
                for word in reply.split(" "):
                    on_token(0, word + " ")
            out = Completion(text=reply, finish_reason="stop", completion_tokens=max(1, len(reply.split())),
                             prompt_tokens=10, model=self.model)
        else:
            out = Completion(text="", tool_calls=reply, finish_reason="tool_calls", completion_tokens=5,
                             prompt_tokens=10, model=self.model)
        self.requests += 1  # the same accounting as the real client
        self.prompt_tokens += out.prompt_tokens
        self.completion_tokens += out.completion_tokens
        return [out]


class PerTrajectoryClient(ScriptedClient):
    """One script per trajectory, told apart by the per-trajectory seed (base seed 0 + trajectory id).

    Summary requests are answered from ``summaries[tid]``; a script entry that is an exception is
    raised as that trajectory's model failure.
    """

    def __init__(self, scripts: dict[int, list[Reply]], summaries: dict[int, str] | None = None) -> None:
        super().__init__([])
        self.scripts = {tid: list(s) for tid, s in scripts.items()}
        self.summaries = summaries or {}

    async def chat(self, messages: Sequence[dict[str, Any]], *, sampling: SamplingParams | None = None,
                   **kwargs: Any) -> list[Completion]:
        tid = (sampling.seed if sampling is not None and sampling.seed is not None else 0)
        last = messages[-1]
        is_summary = (last["role"] == "user" and "Summarize your current conclusions" in (last["content"] or "")) \
            or (last["role"] == "assistant" and (last["content"] or "").startswith("<summarize>"))
        if is_summary:
            self.replies = [f"<summarize>{self.summaries.get(tid, f'summary of {tid}')}</summarize>"]
        else:
            self.replies = [self.scripts[tid].pop(0)]
        return await super().chat(messages, sampling=sampling, **kwargs)
