"""The final answer a model reply states in plain text, if it states one.

Small models often finish with "the number of boxes is \\boxed{4727}" instead of calling the submit tool; the
reason/act loop takes such a clearly stated answer rather than throwing it away. "Clearly stated" is narrow on
purpose: a ``\\boxed{...}`` (the last one wins), or a phrase that announces the answer ("final answer: X",
"**Final Answer**: X", "the answer is X", "the final answer is X"). A reply that merely mentions a number, or that
is an action (a fenced code block, a JSON tool call, a ``<tool_call>`` tag), states no answer: ``None``.
"""

from __future__ import annotations

import re

from peerstep.grading._limits import MAX_REPLY_CHARS, MAX_STATED_CHARS

__all__ = ["stated_answer"]

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
# "Final Answer: X", "**Final Answer**: X", "**Final Answer:** X", "final answer is X", "the answer is X"
_PHRASE = re.compile(
    r"(?:\*\*|__)?\bfinal\s+answer\s*(?:\*\*|__)?\s*[:：]"
    r"|\b(?:the\s+|my\s+)?final\s+answer\s+is\b\s*:?"
    r"|\bthe\s+answer\s+is\b\s*:?",
    re.IGNORECASE,
)
# the phrase is a condition or a plan, not a statement: "if the answer is 5, ...", "to check whether the answer is"
_HYPOTHETICAL = re.compile(r"\b(?:if|whether|suppose|supposing|assume|assuming|unless)\b[^.!?\n]*$",
                           re.IGNORECASE)
# what follows the phrase is a verdict or a lead-in, not an answer: "the answer is correct", "the answer is as follows:"
_NOT_AN_ANSWER = re.compile(
    r"(?:not|below|above|as follows|the following|given by|that|this)\b|(?:correct|incorrect|wrong|right)$",
    re.IGNORECASE,
)
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*(?:\n.*?(?:```|\Z)|\Z)", re.DOTALL)  # a whole block, open or closed
_PROSE_FENCES = {"text", "txt", "plaintext", "latex", "tex", "math", "markdown", "md"}
_TOOL_CALL = re.compile(r"<tool_call>|<function[=>]|\{\s*\"name\"\s*:[^{}]*\"(?:arguments|parameters)\"\s*:", re.DOTALL)
_WRAPPERS = (("$$", "$$"), ("$", "$"), ("\\[", "\\]"), ("\\(", "\\)"), ("**", "**"), ("__", "__"), ("`", "`"),
             ("*", "*"))


def _is_action(text: str) -> bool:
    """A reply that runs something (code fence, JSON tool call) is an action, whatever prose surrounds it."""
    if _TOOL_CALL.search(text):
        return True
    return any(m.group(1).lower() not in _PROSE_FENCES for m in _FENCE.finditer(text)) if "```" in text else False


def _braced(text: str, start: int) -> str | None:
    """The text from ``start`` (just after an opening brace) to its matching closing brace; None if unclosed."""
    depth, i = 1, start
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2  # \{ and \} are literal braces, and no command name is a brace
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
        i += 1
    return None


def _last_boxed(text: str) -> str | None:
    for m in reversed(list(_BOXED.finditer(text))):
        content = _braced(text, m.end())
        if content is not None and content.strip():
            return content.strip()
    return None


def _clause(rest: str) -> str:
    """``rest`` up to the end of its sentence or line, not counting stops inside math or braces ("$3.5$", "{1. 2}")."""
    depth, math, i = 0, "", 0
    while i < len(rest):
        c = rest[i]
        two = rest[i:i + 2]
        if math == "" and two in ("$$", "\\[", "\\("):
            math, i = {"$$": "$$", "\\[": "\\]", "\\(": "\\)"}[two], i + 2
            continue
        if math and two == math:
            math, i = "", i + 2
            continue
        if c == "\\":
            i += 2
            continue
        if c == "$":
            math = "" if math == "$" else (math or "$")
        elif c == "{":
            depth += 1
        elif c == "}":
            depth = max(0, depth - 1)
        elif not math and depth == 0:
            if c == "\n":
                break
            if c in ".!?;" and (i + 1 == len(rest) or rest[i + 1].isspace()):
                break
        i += 1
    return rest[:i]


def _unwrap(answer: str) -> str:
    """Drop markdown bold, code ticks, math delimiters and a trailing full stop around an answer."""
    previous = None
    while answer != previous:
        previous = answer
        answer = answer.strip().rstrip(".").strip().strip("*").strip()  # also a bold mark the phrase left behind
        for left, right in _WRAPPERS:
            if len(answer) > len(left) + len(right) and answer.startswith(left) and answer.endswith(right):
                answer = answer[len(left):-len(right)]
                break
    return answer


def _after_phrase(text: str, end: int) -> str | None:
    rest = text[end:]
    rest = rest.lstrip(" \t:：")
    if rest.startswith("**") and rest[2:3].isspace():  # the bold that closes "**Final Answer:** 12"
        rest = rest[2:].lstrip(" \t")
    if rest.startswith("\n"):  # "Final Answer:\n12": the answer on the next line
        rest = rest.lstrip()
    answer = _unwrap(_clause(rest))
    boxed = _last_boxed(answer)
    if boxed is not None:
        answer = boxed
    if not answer or len(answer) > MAX_STATED_CHARS or _NOT_AN_ANSWER.match(answer):
        return None
    return answer


def stated_answer(text: str) -> str | None:
    """The final answer ``text`` (a model reply) states in plain text, or None when it states none.

    Recognised: the last ``\\boxed{...}`` (nested braces kept: ``\\boxed{\\frac{1}{2}}`` gives ``\\frac{1}{2}``);
    otherwise the last "final answer: X", "**Final Answer**: X", "the answer is X" or "the final answer is X", with
    X read to the end of its sentence or line and markdown bold, code ticks, ``$...$`` and a trailing full stop
    removed. Nothing else counts: a reply that only mentions a number states no answer, nor does a reply that is an
    action (a fenced code block, a JSON tool call), nor a hypothetical ("if the answer is 5, ...").
    """
    if not isinstance(text, str) or not text.strip():
        return None
    text = text[-MAX_REPLY_CHARS:]
    if _is_action(text):
        return None
    boxed = _last_boxed(text)
    if boxed is not None:
        return _unwrap(boxed) or None
    for m in reversed(list(_PHRASE.finditer(text))):
        sentence_start = max(text.rfind(s, 0, m.start()) for s in (".", "!", "?", "\n")) + 1
        if _HYPOTHETICAL.search(text[sentence_start:m.start()]):
            continue
        answer = _after_phrase(text, m.end())
        if answer is not None:
            return answer
    return None
