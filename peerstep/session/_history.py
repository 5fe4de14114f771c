"""Earlier turns as the model sees them, fitted to its context window.

A session grows without bound; the model's window does not. Users of chat agents expect the old, bulky parts to
go first and to be told: tool outputs of the oldest turns are folded to a one-line placeholder, then, if that is
not enough, the oldest turns are dropped whole and a note says how many. The newest turns stay verbatim. Sizes are
estimated (characters / 3, a little more than Qwen's tokenizer needs for English and code), so the fit errs on the
side of a shorter prompt instead of an error from the server.
"""

from __future__ import annotations

from typing import Any

CHARS_PER_TOKEN = 3.0
PER_MESSAGE = 6  # the chat template's role markers
PREAMBLE = ("(Earlier in this conversation. The Python session keeps its variables, functions and imports "
            "between questions.)\n")


def estimate(messages: list[dict[str, Any]]) -> int:
    """Tokens the messages take, estimated (content plus any tool calls' arguments)."""
    total = 0
    for msg in messages:
        text = str(msg.get("content") or "")
        for call in msg.get("tool_calls") or []:
            text += str((call.get("function") or {}).get("arguments", ""))
        total += int(len(text) / CHARS_PER_TOKEN) + PER_MESSAGE
    return total


def _is_output(msg: dict[str, Any], index: int) -> bool:
    """A tool's output: a ``tool`` message, or a user message after the turn's question (how text-mode calls'
    results come back)."""
    return msg.get("role") == "tool" or (msg.get("role") == "user" and index > 0)


def fit(turns: list[list[dict[str, Any]]], budget: int) -> tuple[list[dict[str, Any]], str | None]:
    """The turns' messages, flattened and fitted into ``budget`` tokens; and a note saying what was left out."""
    turns = [[dict(m) for m in t] for t in turns if t]
    folded = dropped = 0
    for turn in turns:  # oldest first: the newest turn keeps its outputs unless nothing else is left to fold
        if estimate([m for t in turns for m in t]) <= budget:
            break
        for i, msg in enumerate(turn):
            if _is_output(msg, i) and len(str(msg.get("content") or "")) > 200:
                size = len(str(msg.get("content")))
                msg["content"] = f"[a tool output of {size:,} characters was left out to fit the context window]"
                folded += 1
    while turns and estimate([m for t in turns for m in t]) > budget:
        turns.pop(0)
        dropped += 1
    flat = [m for t in turns for m in t]
    notes = []
    if folded:
        notes.append(f"{folded} old tool output{'s' if folded != 1 else ''} folded")
    if dropped:
        notes.append(f"{dropped} oldest turn{'s' if dropped != 1 else ''} dropped")
    note = None
    if notes:
        note = f"context: {' and '.join(notes)} to fit the model's context window ({budget:,} tokens for history)"
    if flat:
        first = flat[0]
        lead = PREAMBLE + (f"[{dropped} earlier turn{'s were' if dropped != 1 else ' was'} left out to fit the "
                           "context window.]\n" if dropped else "")
        flat[0] = {**first, "content": lead + str(first.get("content") or "")}
    return flat, note
