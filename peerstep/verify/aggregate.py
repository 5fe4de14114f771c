"""Turning N trajectories' answers into one: majority, weighted majority, tool-backed majority, best-of-N.

Answers are grouped by equivalence, not by string: by the task's checker when it is given as
``equivalent`` (so votes group by the rule that grades the task), else by ``answers_equivalent``
(``0.5`` and ``1/2`` vote together). Majority vote is the always-available baseline every other
strategy is measured against.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from fractions import Fraction

from pydantic import BaseModel, Field

from peerstep.grading import Checker, answers_equivalent, decimals_of, grade, normalise_text, numbers, parse_number


class Candidate(BaseModel):
    trajectory_id: int
    answer: str | None
    score: float | None = Field(default=None, description="verifier score in [0, 1], when scored")
    backed: bool | None = Field(default=None, description="whether one of the trajectory's own tool results states "
                                "the answer (``backed_by``); None when not known")


class Decision(BaseModel):
    answer: str | None
    method: str
    support: float = Field(description="votes (or weight) behind the answer")
    total: float
    groups: list[tuple[str, list[int], float]] = Field(default_factory=list,
                                                       description="(answer, trajectory ids, weight) per group")


def group_answers(candidates: Sequence[Candidate], equivalent: Checker = answers_equivalent,
                  ) -> list[tuple[str, list[Candidate]]]:
    """Equivalence classes of the non-empty answers, in order of first appearance.

    An answer joins the first group whose representative (its first answer) it matches, read as
    ``equivalent(answer, representative)``: the representative plays the gold, as in grading. The same text
    always votes together, even for a checker that cannot read it (a numeric checker and "3 or 4").
    """
    groups: list[tuple[str, list[Candidate]]] = []
    for cand in candidates:
        if not cand.answer:
            continue
        for rep, members in groups:
            if cand.answer.strip() == rep.strip() or grade(cand.answer, rep, equivalent):
                members.append(cand)
                break
        else:
            groups.append((cand.answer, [cand]))
    return groups


def _decide(candidates: Sequence[Candidate], method: str, weight: dict[int, float],
            equivalent: Checker) -> Decision:
    groups = group_answers(candidates, equivalent)
    total = sum(weight[c.trajectory_id] for c in candidates if c.answer)
    if not groups:
        return Decision(answer=None, method=method, support=0, total=total)
    scored = [(rep, members, sum(weight[m.trajectory_id] for m in members)) for rep, members in groups]
    # ties go to the answer seen first, which is deterministic for a given trajectory order
    best = max(scored, key=lambda g: g[2])
    return Decision(answer=best[0], method=method, support=best[2], total=total,
                    groups=[(rep, [m.trajectory_id for m in members], w) for rep, members, w in scored])


def majority_vote(candidates: Sequence[Candidate], equivalent: Checker = answers_equivalent) -> Decision:
    return _decide(candidates, "majority", {c.trajectory_id: 1.0 for c in candidates}, equivalent)


def weighted_vote(candidates: Sequence[Candidate], equivalent: Checker = answers_equivalent) -> Decision:
    """Votes weighted by verifier score (an unscored trajectory weighs 0.5)."""
    return _decide(candidates, "weighted",
                   {c.trajectory_id: 0.5 if c.score is None else c.score for c in candidates}, equivalent)


UNBACKED_WEIGHT = 0.5
"""An answer no tool result of its trajectory states counts half (fixed before any measurement, not tuned)."""


def tool_backed_vote(candidates: Sequence[Candidate], equivalent: Checker = answers_equivalent) -> Decision:
    """Majority vote in which an answer backed by its trajectory's own tool result counts 1 and one stated without
    such a result counts ``UNBACKED_WEIGHT`` (an unknown backing counts 1): a computed answer outweighs a guess."""
    return _decide(candidates, "tool-backed",
                   {c.trajectory_id: UNBACKED_WEIGHT if c.backed is False else 1.0 for c in candidates}, equivalent)


def backed_by(answer: str | None, outputs: Iterable[str]) -> bool:
    """Whether some tool output states ``answer``: for a numeric answer, a number in an output equal to it once
    rounded to the answer's decimals (a program prints 3.14159, the answer says 3.14); for any other answer, its
    normalised text inside an output's. A peer's comment or a hint is not a tool output: callers pass only what
    tools returned."""
    if not answer or not answer.strip():
        return False
    value = parse_number(answer)
    if value is None:
        wanted = normalise_text(answer)
        return bool(wanted) and any(wanted in normalise_text(out) for out in outputs)
    decimals = decimals_of(answer)
    for out in outputs:
        for found in numbers(out):
            if found == value or (decimals is not None and round(_decimal(found), decimals) == _decimal(value)):
                return True
    return False


def _decimal(value: Fraction) -> Decimal:
    return Decimal(value.numerator) / Decimal(value.denominator)


def best_of_n(candidates: Sequence[Candidate], equivalent: Checker = answers_equivalent) -> Decision:
    """The single highest-scored answer; ties broken by the larger vote."""
    answered = [c for c in candidates if c.answer]
    if not answered:
        return Decision(answer=None, method="best-of-n", support=0, total=0)
    votes = majority_vote(answered, equivalent)
    size = {tid: len(ids) for _, ids, _ in votes.groups for tid in ids}
    best = max(answered, key=lambda c: (c.score if c.score is not None else -1.0, size[c.trajectory_id]))
    return Decision(answer=best.answer, method="best-of-n", support=best.score or 0.0, total=1.0,
                    groups=votes.groups)


def agreement_reached(candidates: Sequence[Candidate], needed: int,
                      equivalent: Checker = answers_equivalent, lead: int = 0) -> str | None:
    """The answer at least ``needed`` finished trajectories agree on, if any (for early stopping); with ``lead``,
    only if it also has at least ``lead`` more votes than every other answer (``lead=1``: a tie is not agreement)."""
    sizes = sorted(((len(members), rep) for rep, members in group_answers(candidates, equivalent)),
                   key=lambda g: g[0], reverse=True)
    if not sizes or sizes[0][0] < needed:
        return None
    runner_up = sizes[1][0] if len(sizes) > 1 else 0
    return sizes[0][1] if sizes[0][0] - runner_up >= lead else None
