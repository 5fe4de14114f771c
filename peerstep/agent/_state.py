"""One trajectory's state: plain data only, so that it checkpoints cheaply and serialises anywhere.

Resources (model client, environment, step log) are not state; they live in the
``Trajectory`` runtime the loop's nodes close over. The step log is not state either: it is
written to disk as steps happen.
"""

from __future__ import annotations

from typing import Any, TypedDict


class TrajectoryState(TypedDict, total=False):
    trajectory_id: int
    messages: list[dict[str, Any]]  # the conversation as the model sees it (OpenAI format)
    opening: int  # how many of ``messages`` the opening holds (system prompt, earlier turns, the question)
    action: dict[str, Any] | None  # the assistant message waiting for the environment
    native_calls: bool  # whether ``action``'s calls came back as structured tool_calls
    steps: int  # model calls made
    tokens: int  # completion tokens generated
    started_at: float
    forced: bool  # the budget ran out; the next call must answer
    last_step_id: str | None  # parent for the next step record
    seen_calls: list[str]  # signatures of calls already run, to flag exact repeats
    round_end_steps: int  # the loop yields to its caller (a barrier) when ``steps`` reaches this
    round_end_tokens: int  # ... or when ``tokens`` reaches this
    stated_answer: str | None  # the last final answer the model stated in plain text
    last_result: str | None  # the output of the last tool call that succeeded
    tools_used: int  # tool calls run (the finishing call excluded)
    nudged: list[str]  # one-time hints already sent (by key), so none is sent twice
    idle: int  # replies in a row with neither a tool call nor an answer
    force_reason: str | None  # set by a caller ending the run: the loop forces the answer first, with this reason
    forced_calls: int  # model calls made since the answer was forced
    summary: str | None  # a finished trajectory's LeaP summary, written once and offered to its active peers
    done: bool
    answer: str | None
    reward: float | None
    error: str | None
