"""A trajectory's *steps* for process supervision, read from its records alone.

One step is one model call (a ``reason`` record) with the tool call(s) it made and their observation(s), up to
the next model call: the unit a ReAct agent acts in, the one ToolComp labels, and the one ``peerstep label``
measures and the PRM exports write. Pure functions of records, so labelling and every export agree on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from peerstep.steplog._records import StepKind, StepRecord

STEP_SEPARATOR = "\n"
"""What joins the question and the steps for a PRM (TRL's ``step_separator``): the trl-prm export is trained
with it and ``TransformersPRM`` reads each step's score at it."""

PEER_EFFECT_THRESHOLD = 0.25
"""A peer label's effect (value with the comment - value without) above +this helped, below -this hurt, else none:
one continuation's worth at K = 4, since a single continuation flipping is within sampling noise. Here, below the
labeller and the view, so both read the same number."""


@dataclass
class Step:
    """One labelled unit of a trajectory: a reason record and what it led to, up to the next one."""

    index: int
    reason: StepRecord
    fork_from: str
    """The step id a fork continues from: the step's last observation (the tool result), else the reason."""
    final: bool
    """The step whose action ended the trajectory (its answer); labelled by the graded answer, not by rollouts."""
    records: list[StepRecord] = field(default_factory=list)
    """Every record of the step, the reason first (tool calls, observations, and what else was logged)."""


def trajectory_steps(records: list[StepRecord]) -> list[Step]:
    """A trajectory's steps in order: each reason record with the records after it until the next one."""
    spans: list[list[StepRecord]] = []
    for rec in records:
        if rec.kind == StepKind.LABEL:  # labels are about steps, not part of them
            continue
        if rec.kind == StepKind.REASON:
            spans.append([rec])
        elif spans:
            spans[-1].append(rec)
    steps = []
    for i, span in enumerate(spans):
        # a notice (e.g. the sandbox was rebuilt) is logged inside the next model call's node: no checkpoint ends
        # on it, so a fork from it would include that call; the tool results and the answer-policy hints do
        results = [r for r in span if r.kind == StepKind.OBSERVATION and not r.data.get("notice")]
        steps.append(Step(index=i, reason=span[0], fork_from=results[-1].step_id if results else span[0].step_id,
                          final=any(r.kind == StepKind.FINAL for r in span), records=span))
    return steps


def labels_of(records: list[StepRecord]) -> dict[str, StepRecord]:
    """Labelled reason step id -> its (first) label record."""
    out: dict[str, StepRecord] = {}
    for rec in records:
        if rec.kind == StepKind.LABEL and rec.parent_id and rec.parent_id not in out:
            out[rec.parent_id] = rec
    return out


def step_text(step: Step) -> str:
    """A step as text: the model's reply, the calls it made natively, and the tool results."""
    parts = [(step.reason.text or "").strip()]
    calls = {r.tool.call_id: r.tool for r in step.records if r.kind == StepKind.TOOL_CALL and r.tool}
    for call in calls.values():
        if call.source == "native":
            parts.append(f"<tool_call>{json.dumps({'name': call.name, 'arguments': call.arguments})}</tool_call>")
    for rec in step.records:
        if rec.kind == StepKind.OBSERVATION and rec.tool is not None and not rec.data.get("notice"):
            parts.append(f"<tool_response>\n{rec.tool.output if rec.tool.output is not None else rec.text or ''}"
                         "\n</tool_response>")
    return "\n".join(p for p in parts if p)


def process_step_texts(records: list[StepRecord]) -> list[str]:
    """A trajectory's steps as text, as the PRM exports write them and a PRM verifier reads them."""
    return [step_text(s) for s in trajectory_steps(records)]
