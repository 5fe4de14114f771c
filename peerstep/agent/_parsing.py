"""Find the tool calls in a model's reply, however the model chose to write them.

Small models rarely emit structured ``tool_calls``: measured here, Qwen2.5-Coder 0.5B/1.5B
write ``{"name": ..., "arguments": {...}}`` as message text (bare, in a ```json fence, or
in ``<tool_call>`` tags), and write code in ```python fences far more reliably than in
JSON. All of these are accepted, in this order of trust: native calls, JSON calls in the
text, then a python code block (only if a ``python`` tool exists). A reply that tries to
call a tool but cannot be parsed yields a ``ParseError`` explaining the expected format, to
be sent back to the model as an observation.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from typing import Any

from pydantic import BaseModel, Field

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)
_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|\Z)", re.DOTALL)
_NAME_KEYS = ("name", "tool", "function", "tool_name")
_ARG_KEYS = ("arguments", "parameters", "args", "input")


class ParsedCall(BaseModel):
    id: str = Field(default_factory=lambda: "call_" + uuid.uuid4().hex[:12])
    name: str
    arguments: dict[str, Any] | str
    source: str  # native | json_text | code_block
    end: int | None = Field(default=None, description="offset in the reply text just after this call")

    def openai(self) -> dict[str, Any]:
        args = self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": args}}


class ParseResult(BaseModel):
    calls: list[ParsedCall] = Field(default_factory=list)
    error: str | None = None  # set when the reply tried to call a tool but could not be parsed


def _decode_objects(text: str, base: int = 0) -> list[tuple[Any, int]]:
    """Every top-level JSON value that starts at a '{' or '[' in ``text``, with its end offset (+ ``base``)."""
    decoder = json.JSONDecoder()
    found: list[tuple[Any, int]] = []
    i = 0
    while i < len(text):
        j = min((k for k in (text.find("{", i), text.find("[", i)) if k != -1), default=-1)
        if j == -1:
            break
        try:
            value, end = decoder.raw_decode(text, j)
        except json.JSONDecodeError:
            i = j + 1
            continue
        found.append((value, end + base))
        i = end
    return found


def _as_call(value: Any, known: set[str]) -> ParsedCall | None:
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):  # OpenAI shape written as text
        value = value["function"]
    name = next((value[k] for k in _NAME_KEYS if isinstance(value.get(k), str)), None)
    if name is None or (known and name not in known):
        return None
    args: Any = next((value[k] for k in _ARG_KEYS if k in value), {})
    if isinstance(args, str):
        # an unparseable string is handed to the tool as-is; the tool reports the bad arguments
        with contextlib.suppress(json.JSONDecodeError):
            args = json.loads(args)
    return ParsedCall(name=name, arguments=args, source="json_text")


def _calls_in(text: str, known: set[str], base: int = 0) -> list[ParsedCall]:
    calls = []
    for value, end in _decode_objects(text, base):
        for item in value if isinstance(value, list) else [value]:
            if (call := _as_call(item, known)) is not None:
                call.end = end
                calls.append(call)
    return calls


def cut_after(text: str, call: ParsedCall) -> str:
    """The reply up to the end of ``call``, with an open fence or tag closed.

    What the model wrote after its first call was written without the call's result (small models invent
    results and chain more calls on them); keeping it in the context would teach the model its own guesses.
    """
    if call.end is None:
        return text
    kept = text[: call.end].rstrip()
    if kept.count("```") % 2 == 1:
        kept += "\n```"
    if kept.count("<tool_call>") > kept.count("</tool_call>"):
        kept += "\n</tool_call>"
    return kept


def expected_format(tool_names: list[str]) -> str:
    example = '{"name": "calculate", "arguments": {"expression": "2 * (3 + 4)"}}'
    text = f"To call a tool, reply with one JSON object such as {example}. Available tools: {', '.join(tool_names)}."
    if "python" in tool_names:
        text += " To run Python, you may instead write the code in a ```python fenced block."
    return text


def parse_tool_calls(
    text: str,
    native: list[dict[str, Any]] | None = None,
    tool_names: list[str] | None = None,
) -> ParseResult:
    """Extract tool calls from a reply. ``tool_names`` restricts JSON matches to known tools."""
    names = list(tool_names or [])
    known = set(names)
    if native:
        calls = []
        for tc in native:
            fn = tc.get("function") or {}
            raw = fn.get("arguments") or "{}"
            try:
                args: dict[str, Any] | str = json.loads(raw) if isinstance(raw, str) else raw
            except json.JSONDecodeError:
                args = raw
            calls.append(ParsedCall(id=tc.get("id") or "call_" + uuid.uuid4().hex[:12], name=fn.get("name", ""),
                                    arguments=args, source="native"))
        return ParseResult(calls=calls)

    tagged = list(_TAGGED.finditer(text))
    fences = list(_FENCE.finditer(text))
    json_fences = [m for m in fences if m.group(1).lower() in ("json", "tool_call", "")]
    for region in (*tagged, *json_fences):
        body_group = 1 if region.re is _TAGGED else 2
        if calls := _calls_in(region.group(body_group), known, region.start(body_group)):
            return ParseResult(calls=calls)
    if calls := _calls_in(text, known):
        return ParseResult(calls=calls)

    code = [m for m in fences if m.group(1).lower() in ("python", "py", "python3")]
    if code and "python" in known:
        return ParseResult(calls=[ParsedCall(name="python", arguments={"code": code[0].group(2).strip()},
                                             source="code_block", end=code[0].end())])

    looks_like_call = bool(tagged) or bool(re.search(r'"(name|arguments)"\s*:', text))
    if looks_like_call:
        unknown = [c.name for c in _calls_in(text, set())]
        why = f"unknown tool {unknown[0]!r}" if unknown else "the JSON could not be parsed"
        return ParseResult(error=f"Your tool call was not understood ({why}). {expected_format(names)}")
    return ParseResult()
