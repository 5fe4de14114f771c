"""Typed step records: the unit of process supervision.

One record per thing that happened in a trajectory. The fields are a superset of what
PRM800K, Math-Shepherd, TRL's PRM datasets and ToolComp need, so an exporter can build
any of them from a run's records alone, without replaying the run.
"""

from __future__ import annotations

import time
import uuid
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field


class StepKind(str, Enum):
    RUN_START = "run_start"
    REASON = "reason"  # one model call and what it produced
    TOOL_CALL = "tool_call"  # a tool call the model requested
    OBSERVATION = "observation"  # what the environment answered
    SUMMARY = "summary"
    PEER_INJECT = "peer_inject"
    VERIFY = "verify"
    PRUNE = "prune"  # a verifier-ranked trajectory was retired at a barrier
    BARRIER = "barrier"  # run-level: a round ended (trajectory -1)
    AGGREGATE = "aggregate"  # run-level: the answers were combined into one decision (trajectory -1)
    BUDGET = "budget"  # a budget ran out and the trajectory is forced to answer
    FINAL = "final"  # the trajectory's submitted answer and reward
    ERROR = "error"  # anything that went wrong, with a clear message
    RUN_END = "run_end"
    RESUME = "resume"  # run-level: the run was resumed from its checkpoint (what was superseded, what replayed)
    LABEL = "label"  # a Monte-Carlo label of a reason step (parent_id): mc_n, mc_k, value, hard, first_error


def new_id() -> str:
    return uuid.uuid4().hex[:16]


class ToolInfo(BaseModel):
    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    call_id: str | None = None
    output: str | None = None
    ok: bool | None = None
    latency_s: float | None = None
    timed_out: bool = False
    source: str | None = Field(default=None, description="native | json_text | code_block: how the call was found")


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class StepRecord(BaseModel):
    """One step of one trajectory. Append-only: a record is never changed after it is written."""

    run_id: str
    episode_id: str = "0"
    trajectory_id: int = 0
    step_id: str = Field(default_factory=new_id)
    parent_id: str | None = None
    kind: StepKind
    created_at: float = Field(default_factory=time.time)
    text: str | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    mean_logprob: float | None = None
    token_logprobs: list[float] | None = None
    latency_s: float | None = None
    tool: ToolInfo | None = None
    reward: float | None = None
    done: bool | None = None
    model: str | None = None
    sampling: dict[str, Any] | None = None
    data: dict[str, Any] = Field(
        default_factory=dict,
        description="kind-specific extras: routing (strategy, sources, similarities), verifier (id, score, "
        "rationale), labels (mc_n, mc_k, value, hard, first_error), outcome (prediction, gold, correct), error",
    )


def is_tool_result(rec: StepRecord, finish_tool: str | None) -> bool:
    """Whether ``rec`` is what a tool returned without failing, the finishing tool's acknowledgement left out: what a
    tool-backed vote, a peer's evidence and ``switch_needs_rerun`` read as computed."""
    return (rec.kind == StepKind.OBSERVATION and rec.tool is not None and rec.tool.name != finish_tool
            and rec.tool.ok is not False and bool(rec.text))
