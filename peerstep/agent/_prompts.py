"""Prompts. Written for small local models: one format, stated once, with an example."""

from __future__ import annotations

import json

from peerstep.tools._base import Tool

SYSTEM_TEMPLATE = """You are a careful problem solver that uses tools.
Work step by step. To use a tool, reply with one JSON object, then stop and wait for the result:
{{"name": "<tool name>", "arguments": {{...}}}}
Tools:
{tools}

Use a tool for every calculation instead of computing in your head; write a whole calculation as one expression
when you can. Read each tool result, then take the next step.
{finish}"""

# Every sentence that names the finishing tool is built from the one the environment offers (``finish_tool``):
# an Aviary environment may end with ``complete`` or ``submit``, and a prompt naming a tool that is not on offer
# sends the model after it. Without a finishing tool the model is asked to state its answer.
_FINISH_LINE = "When you know the final answer, call {name} with the answer only."
_STATE_LINE = "When you know the final answer, state it."


def force_final(finish_tool: str | None) -> str:
    """The request for the final answer when the budget is spent."""
    how = f"by calling {finish_tool} with your best answer" if finish_tool else "as your best answer"
    return f"You have no budget left for more steps. Give your final answer now {how}."


ONE_CALL_NOTE = ("\n(Only your first tool call was run. Make one tool call per reply and wait for its result "
                 "before using it.)")


def repeat_note(finish_tool: str | None) -> str:
    """Added to the result of a call the model already made."""
    then = f"call {finish_tool} now" if finish_tool else "give your final answer now"
    return (f"\n(You already made this exact call; the result is the same. If it answers the question, {then}; "
            "otherwise try something different.)")


# When Python is offered, the opening prompt is the bare-program baseline's, word for word (one constant, used by
# both): the loop's first reply is then the program the bare model would write, and the loop adds only what a
# single shot lacks -- the model sees the output, fixes a failing program, and states the answer (OUTPUT_NEXT, sent
# with the output). Measured on the dev split: a longer opening that also stated the answer format and the tool
# list changed the first program and lost 3 of 16 tasks the bare prompt solved; "step by step" got long
# explanations and wrong programs; showing the JSON call format beside the fence got JSON calls inside fences.
PROGRAM_PROMPT = ("Write one Python program that computes the answer to the problem and prints only the final "
                  "answer. Reply with the program in a single ```python code block.")
# Tools other than these and the finishing tool are listed after the program prompt (a program covers arithmetic;
# the finishing tool is reached by stating the answer).
_PROGRAM_COVERS = {"python", "calculate"}
OTHER_TOOLS = """
You can also call these tools, one per reply, by writing one JSON object
{{"name": "<tool name>", "arguments": {{...}}}}:
{tools}"""
OUTPUT_NEXT = ("\nIf the program ran and printed the answer, reply with the final answer as \\boxed{answer}. If it "
               "failed, reply with the fixed program.")


def no_call_hint(tool_names: list[str], finish_tool: str | None) -> str:
    """What this agent tells a reply without a tool call, in place of the environment's neutral
    ``NO_TOOL_CALLS``: how to write a call in its text format, schematically, with the tools on offer.

    The agent's, not the environment's: it names the JSON-text call format this agent's prompt teaches, which means
    nothing to an agent with native tool calls. Neutral on purpose: the old hint ("call submit_answer only with a
    result you have computed") read to small models as "your answer is wrong", and its concrete example expression
    was copied into answers.
    """
    others = [n for n in tool_names if n != finish_tool]
    return ("Your reply had no tool call, so nothing was run. To use a tool, reply with one JSON object: "
            '{"name": "<tool name>", "arguments": {"<argument name>": <value>}}. '
            f"Tools: {', '.join(others) or 'none'}."
            + (f" When you have the final answer, call {finish_tool} with it." if finish_tool else ""))


def system_prompt(tools: list[Tool], finish_tool: str | None = "submit_answer") -> str:
    """The opening system prompt, listing ``tools``; ``finish_tool`` is the environment's finishing tool (None when
    it offers none)."""
    lines = []
    for t in tools:
        first = t.description.strip().splitlines()[0] if t.description.strip() else ""
        lines.append(f"- {t.signature_text()}: {first}")
    if any(t.name == "python" for t in tools):
        covered = {*_PROGRAM_COVERS, *([finish_tool] if finish_tool else [])}
        others = [line for t, line in zip(tools, lines, strict=True) if t.name not in covered]
        return PROGRAM_PROMPT + (OTHER_TOOLS.format(tools="\n".join(others)) if others else "")
    finish = _FINISH_LINE.format(name=finish_tool) if finish_tool else _STATE_LINE
    return SYSTEM_TEMPLATE.format(tools="\n".join(lines), finish=finish)


def tool_result_message(name: str, arguments: object, output: str, source: str | None = None) -> str:
    """How a result of a call the model wrote as text is shown back to it (as a user turn).

    Code written in a fence gets its output in the fenced ```output block the coder models were trained on
    (they write one themselves when not stopped); a JSON call gets the call and its result.
    """
    if source == "code_block":
        return f"```output\n{output}\n```{OUTPUT_NEXT}"
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return f"Result of {name}({args}): {output}"
