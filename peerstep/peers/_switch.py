"""A changed answer counts only if it was re-computed (``SharingConfig.switch_needs_rerun``).

Measured on the embedded 1.5B (stop 30, dev ``gsm-symbolic``, round length 1): after reading its peers' comments a
trajectory dropped the right number its own program had printed 11 times and picked up a right one 3 times, and
the vote over the numbers printed before any comment solved 7 of 10 tasks where LeaP's vote solved 4. Most switches
took a peer's number on the peer's word. LeaP's premise is that a peer's reasoning helps; a small model reads a
confident summary as an order. This rule keeps what helps (a comment that made the trajectory re-run something and
print a new number) and drops what hurts (a number adopted without computing it): such a trajectory votes with the
number its own program printed before the first comment.

It decides only which answer each trajectory votes with, so it can be replayed exactly from the step logs of runs
made without it (``bench/peer_switches.py``); the trajectory's own submitted answer is logged unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from peerstep.grading import drop_zero_decimals, last_number_text
from peerstep.steplog import StepKind, StepRecord
from peerstep.steplog._records import is_tool_result
from peerstep.verify.aggregate import backed_by


@dataclass(frozen=True)
class Outputs:
    """What one trajectory's tools printed, split at the first peer comment it was shown."""

    before: tuple[str, ...]  # successful tool outputs before the first comment, in order
    after: tuple[str, ...]  # and after it
    commented: bool  # whether it was shown a comment at all


def outputs_around_comments(records: Iterable[StepRecord], finish_tool: str | None = "submit_answer") -> Outputs:
    """Split one trajectory's successful tool outputs (failed calls and the finishing tool left out) at the first
    ``PEER_INJECT`` record among ``records`` (its own step records, in log order)."""
    before: list[str] = []
    after: list[str] = []
    commented = False
    for rec in records:
        if rec.kind is StepKind.PEER_INJECT:
            commented = True
        elif is_tool_result(rec, finish_tool):
            (after if commented else before).append(rec.text or "")
    return Outputs(tuple(before), tuple(after), commented)


def own_number(outputs: Outputs) -> str | None:
    """The number the trajectory's last successful tool output printed before any comment (what it would have
    answered alone), as written with zero decimals dropped; None when it printed no number first."""
    if not outputs.before:
        return None
    text = last_number_text(outputs.before[-1])
    return drop_zero_decimals(text) if text else None


def voting_answer(answer: str | None, outputs: Outputs) -> str | None:
    """The answer a trajectory votes with when a switch needs a re-run: ``answer`` if it was never shown a comment,
    printed no number before it, kept that number, or had one of its own tools print ``answer`` after the comment;
    otherwise the number it printed before the first comment."""
    own = own_number(outputs)
    if (not outputs.commented or own is None or answer is None or backed_by(answer, outputs.before[-1:])
            or backed_by(answer, outputs.after)):
        return answer
    return own
