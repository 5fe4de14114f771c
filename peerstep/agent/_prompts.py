"""Prompts. Written for small local models: one format, stated once, with an example."""

from __future__ import annotations

import json

from peerstep.tools._base import Tool

SYSTEM_TEMPLATE = """You are a careful problem solver that uses tools.
Work step by step. To use a tool, reply with one JSON object, then stop and wait for the result:
{{"name": "<tool name>", "arguments": {{...}}}}
{extra}
Tools:
{tools}

Use a tool for every calculation instead of computing in your head; write a whole calculation as one expression
when you can. Read each tool result, then take the next step.
When you know the final answer, call submit_answer with the answer only."""

PYTHON_HINT = "To run Python code you may also write it in a ```python fenced block; print what you need to see."

FORCE_FINAL = ("You have no budget left for more steps. Give your final answer now by calling submit_answer "
               "with your best answer.")


ONE_CALL_NOTE = ("\n(Only your first tool call was run. Make one tool call per reply and wait for its result "
                 "before using it.)")


REPEAT_NOTE = ("\n(You already made this exact call; the result is the same. If it answers the question, "
               "call submit_answer now; otherwise try something different.)")


def system_prompt(tools: list[Tool]) -> str:
    lines = []
    for t in tools:
        first = t.description.strip().splitlines()[0] if t.description.strip() else ""
        lines.append(f"- {t.signature_text()}: {first}")
    extra = PYTHON_HINT + "\n" if any(t.name == "python" for t in tools) else ""
    return SYSTEM_TEMPLATE.format(tools="\n".join(lines), extra=extra)


def tool_result_message(name: str, arguments: object, output: str, source: str | None = None) -> str:
    """How a result of a call the model wrote as text is shown back to it (as a user turn).

    Code written in a fence gets its output in the fenced ```output block the coder models were trained on
    (they write one themselves when not stopped); a JSON call gets the call and its result.
    """
    if source == "code_block":
        return f"```output\n{output}\n```"
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return f"Result of {name}({args}): {output}"
