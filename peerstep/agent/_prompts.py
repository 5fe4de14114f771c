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
When you know the final answer, call submit_answer with the answer only."""

FORCE_FINAL = ("You have no budget left for more steps. Give your final answer now by calling submit_answer "
               "with your best answer.")


ONE_CALL_NOTE = ("\n(Only your first tool call was run. Make one tool call per reply and wait for its result "
                 "before using it.)")


REPEAT_NOTE = ("\n(You already made this exact call; the result is the same. If it answers the question, "
               "call submit_answer now; otherwise try something different.)")


# When Python is offered the prompt asks for a program, in the bare-program baseline's words. Measured on held-out
# word problems (README, "Held-out"): the 1.5B model asked once for "one Python program that prints the answer"
# solved 10/12, while under the generic tool prompt it computed in its head and solved 4/12. On the dev split, a
# prompt that asked to work "step by step" got long explanations and wrong programs; one that showed the JSON call
# format next to the fence got JSON calls inside python fences. The loop adds what a single shot lacks: the model
# sees the output, fixes a failing program, and states the answer.
PROGRAM_TEMPLATE = """Write one Python program that computes the answer to the problem and prints only the final answer.
Reply with the program in a single ```python code block, then stop: you will see what it prints. If it fails, fix it
and run it again. When it has printed the answer, reply with the final answer as \\boxed{{answer}}.
You can also call these tools, one per reply, by writing one JSON object
{{"name": "<tool name>", "arguments": {{...}}}}:
{tools}"""


def system_prompt(tools: list[Tool]) -> str:
    lines = []
    for t in tools:
        first = t.description.strip().splitlines()[0] if t.description.strip() else ""
        lines.append(f"- {t.signature_text()}: {first}")
    if any(t.name == "python" for t in tools):
        return PROGRAM_TEMPLATE.format(tools="\n".join(lines))
    return SYSTEM_TEMPLATE.format(tools="\n".join(lines))


def tool_result_message(name: str, arguments: object, output: str, source: str | None = None) -> str:
    """How a result of a call the model wrote as text is shown back to it (as a user turn).

    Code written in a fence gets its output in the fenced ```output block the coder models were trained on
    (they write one themselves when not stopped); a JSON call gets the call and its result.
    """
    if source == "code_block":
        return f"```output\n{output}\n```"
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return f"Result of {name}({args}): {output}"
