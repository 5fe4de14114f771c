"""A scripted model behind the real client's interface: the public fake for tests of agents and environments.

Like httpx's ``MockTransport``: code under test talks to a ``ModelClient`` and cannot tell. Replies are
consumed in order; each is a text reply, a list of native tool calls, or an exception to raise (as a
dead server would). Every request is recorded so tests can check what the agent sent. For graph logic
only: every capability also needs an end-to-end test on a real model.

    from peerstep import arun
    from peerstep.testing.model import ScriptedClient, native_call

    client = ScriptedClient(["The answer is 4.", [native_call("submit_answer", answer="4")]])
    result = await arun("What is 2+2?", client, python=False)
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
    """A ``ModelClient`` that answers from a script instead of a server."""

    def __init__(self, replies: Sequence[Reply], model: str = "scripted") -> None:
        super().__init__("http://scripted.invalid/v1", model, max_retries=0)
        self.replies = list(replies)
        self.requests_seen: list[dict[str, Any]] = []

    async def list_models(self) -> list[str]:
        return [self.model]

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
            if on_token is not None:  # word by word, adding up to exactly the reply
                words = reply.split(" ")
                for i, word in enumerate(words):
                    on_token(0, word if i == len(words) - 1 else word + " ")
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


async def check_model_client(client: ModelClient, *, prompt: str = "Reply with the word: ready.") -> dict[str, str]:
    """The contract every model client keeps (the real one against any server, or a fake): name -> failure.

    It sends two short requests (one plain, one streamed): a client that passes can stand in for
    ``ModelClient`` anywhere in peerstep. An empty dict means every check passed.
    """
    failures: dict[str, str] = {}
    messages = [{"role": "user", "content": prompt}]
    params = SamplingParams(max_tokens=16)
    try:
        models = await client.list_models()
        if client.model not in models:
            failures["list_models"] = f"the client's model {client.model!r} is not among {models!r}"
    except Exception as exc:  # the check reports; it never raises
        failures["list_models"] = f"{type(exc).__name__}: {exc}"
    before = client.completion_tokens
    try:
        plain = await client.chat(messages, sampling=params)
        if len(plain) != 1:
            failures["one_completion"] = f"asked for one completion, got {len(plain)}"
        elif not (plain[0].text or plain[0].tool_calls):
            failures["non_empty"] = "the completion has neither text nor tool calls"
        elif plain[0].finish_reason is None:
            failures["finish_reason"] = "a completion without a finish reason is a cut-off stream, not an answer"
        if client.completion_tokens <= before:
            failures["token_count"] = "completion_tokens did not grow: evals could not count cost"
    except Exception as exc:
        failures["chat"] = f"{type(exc).__name__}: {exc}"
    streamed: list[str] = []
    try:
        got = await client.chat(messages, sampling=params, on_token=lambda _i, delta: streamed.append(delta))
        if got and got[0].text and "".join(streamed) != got[0].text:
            failures["streaming"] = "the streamed tokens do not add up to the completion's text"
    except Exception as exc:
        failures["streaming"] = f"{type(exc).__name__}: {exc}"
    return failures
