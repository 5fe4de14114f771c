"""The answer policy: what the loop does with a reply that calls no tool.

Measured on held-out word problems, the old loop refused every reply without a tool call
with "No tool call found … call submit_answer only with a result you have computed". A 1.5B
model that had just computed the right number and written "\\boxed{4727}" read that as "your
answer is wrong", computed something else and submitted it. An answer the model has stated is
never thrown away now. The policies (chosen by ``AgentConfig.answer_policy``):

``accept``
    A clearly stated final answer (``\\boxed{…}``, "final answer: …", "the answer is …") is
    submitted as if the model had called the finishing tool.
``confirm``
    Ask once, quoting the stated answer ("You wrote 4727. If that is your final answer, call
    submit_answer with it."); a second reply without a call has its stated answer submitted.
``check``
    Like ``accept`` once a tool has been used; an answer stated before any tool use gets one
    request to check it with a tool (quoting it), then is accepted.

A reply with no stated answer that repeats the last tool result is asked once, neutrally,
whether that is the answer. No message here says or implies that a result was wrong.

``program_answer`` is the other half (``AgentConfig.answer_from_output``): when the opening asked for one program
that prints only the final answer, and it printed one number and nothing else, that number is the answer the
model stated, and asking for it again costs a model call that only restates it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from peerstep.grading import (
    drop_zero_decimals,
    is_bare_number,
    number_text,
    numbers,
    parse_number,
    stated_answer,
    whole_number,
)

AnswerPolicy = Literal["accept", "confirm", "check"]
ANSWER_POLICIES: tuple[str, ...] = ("accept", "confirm", "check")
# tools that compute: an answer stated without any of them may deserve a check (policy "check")
COMPUTE_TOOLS = ("calculate", "python")
# replies in a row with no tool call and no answer before the answer is forced
MAX_IDLE_REPLIES = 3


@dataclass(frozen=True)
class NoCall:
    """The loop's decision for a reply without a tool call."""

    submit: str | None = None  # submit this answer with the finishing tool
    message: str | None = None  # or send this to the model (once; ``key`` remembers it was sent)
    key: str | None = None
    force: bool = False  # or force the final answer now
    stated: str | None = None  # the answer the reply stated, if any (logged either way)


def decide(text: str, *, policy: AnswerPolicy, finish_tool: str, tool_names: list[str], tools_used: int,
           last_result: str | None, nudged: list[str], idle: int) -> NoCall:
    """Decide what to do with a reply that called no tool. Pure: the caller logs and applies it."""
    # After a tool result, a reply that is one number and nothing else states it as plainly as "\\boxed{…}" does.
    # Before any tool ran it is a number from the model's head (seen on the real model: "13504879.2" for
    # 48123 * 9177 - 600), so it goes the no-call way and the model is asked to use a tool.
    bare = number_text(text) if tools_used and is_bare_number(text) else None
    stated = stated_answer(text) or bare
    if stated:
        if policy == "confirm" and "confirm" not in nudged:
            return NoCall(message=f"You wrote {stated}. If that is your final answer, call {finish_tool} with it.",
                          key="confirm", stated=stated)
        computes = [t for t in COMPUTE_TOOLS if t in tool_names]
        if policy == "check" and tools_used == 0 and computes and "check" not in nudged:
            # Measured on the dev split: asked to "check it with one calculate call", the 1.5B model calculated
            # its own answer ("94.71") three times. The request now says what to compute: the whole calculation
            # from the question's numbers, as a program when Python is offered.
            how = ("one ```python program that computes it from the numbers in the question and prints the result"
                   if "python" in computes else
                   f"one {computes[0]} call with the whole calculation from the numbers in the question")
            return NoCall(message=(f"You wrote {stated} without running a tool. Compute it again with {how}; if "
                                   f"the result is the same, call {finish_tool} with it."), key="check",
                          stated=stated)
        return NoCall(submit=stated, stated=stated)
    if last_result is not None:
        value = parse_number(last_result)  # the grader's number parser: "1,000", "1e3" and "1000.0" are one value
        if value is not None and value in numbers(text):
            key = f"restated:{number_text(last_result)}"
            if key not in nudged:
                return NoCall(message=(f"You wrote {last_result.strip()}. If that is your final answer, call "
                                       f"{finish_tool} with it; otherwise make the next tool call."), key=key)
    if idle + 1 >= MAX_IDLE_REPLIES:
        return NoCall(force=True)
    return NoCall()


def program_answer(output: str) -> str | None:
    """The answer a program printed, when its whole output is one line holding one number and nothing else (the
    line as printed, as the bare-program baseline takes it); None for anything else (several lines, words, an
    error, a warning on stderr), which goes back to the model as usual."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    if len(lines) == 1 and whole_number(lines[0]) is not None:
        # a float that is a whole number is stated as one ("441624171.0" -> "441624171"), as the model would
        return drop_zero_decimals(lines[0])
    return None
