"""Keeping a conversation inside the model's context window: estimate its size, fold old tool outputs.

A request over the window is refused by the server (llama.cpp and vLLM answer 400), which would end the
trajectory with an error. Users of agents expect the bulky old parts to give way instead, and to be told: the
oldest tool outputs are replaced by a one-line placeholder, newest kept, and the step log says how many. Sizes are
estimated (characters / 3: a little more than Qwen's tokenizer needs for English and code), so the fit errs
towards a shorter prompt. The chat session fits earlier turns with the same estimate (``peerstep.session``).
"""

from __future__ import annotations

from typing import Any

CHARS_PER_TOKEN = 3.0
PER_MESSAGE = 6  # the chat template's role markers
FOLDED = "[a tool output of {size:,} characters was left out to fit the context window]"
KEEP_CHARS = 200  # outputs this short are not worth folding


def estimate(messages: list[dict[str, Any]]) -> int:
    """Tokens the messages take, estimated (content plus any tool calls' arguments)."""
    total = 0
    for msg in messages:
        text = str(msg.get("content") or "")
        for call in msg.get("tool_calls") or []:
            text += str((call.get("function") or {}).get("arguments", ""))
        total += int(len(text) / CHARS_PER_TOKEN) + PER_MESSAGE
    return total


def is_output(msg: dict[str, Any]) -> bool:
    """A tool's output as the model sees it: a ``tool`` message, or a user message carrying a text-mode result."""
    content = str(msg.get("content") or "")
    return msg.get("role") == "tool" or (msg.get("role") == "user" and (
        content.startswith("```output\n") or content.startswith("Result of ")))


def fold(messages: list[dict[str, Any]], budget: int, start: int = 0) -> tuple[list[dict[str, Any]], int]:
    """``messages`` with the oldest tool outputs from ``start`` on folded until the estimate fits ``budget``;
    and how many were folded. The newest output is folded last; what still does not fit is left to the server."""
    out = [dict(m) for m in messages]
    folded = 0
    for i in range(start, len(out)):
        if estimate(out) <= budget:
            break
        content = str(out[i].get("content") or "")
        if is_output(out[i]) and len(content) > KEEP_CHARS and not content.startswith("[a tool output of"):
            out[i]["content"] = FOLDED.format(size=len(content))
            folded += 1
    return out, folded
