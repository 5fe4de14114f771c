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
    start: int | None = Field(default=None, description="offset in the reply text where this call starts")
    end: int | None = Field(default=None, description="offset in the reply text just after this call")

    def openai(self) -> dict[str, Any]:
        args = self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": args}}


class ParseResult(BaseModel):
    calls: list[ParsedCall] = Field(default_factory=list)
    error: str | None = None  # set when the reply tried to call a tool but could not be parsed


def _decode_objects(text: str, base: int = 0) -> list[tuple[Any, int, int]]:
    """Every top-level JSON value that starts at a '{' or '[' in ``text``: (value, start, end), offsets + ``base``."""
    decoder = json.JSONDecoder()
    found: list[tuple[Any, int, int]] = []
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
        found.append((value, j + base, end + base))
        i = end
    return found


def _call_name(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):  # OpenAI shape written as text
        value = value["function"]
    name = next((value[k] for k in _NAME_KEYS if isinstance(value.get(k), str)), None)
    # the tool list shows signatures ("- calculate(expression: string): ..."), and small models copy one as the
    # name (seen with the 0.5B model: "calculate(expression: string)", three calls in a row): the name is before "("
    if name is not None and "(" in name and name.split("(", 1)[0].strip().isidentifier():
        name = name.split("(", 1)[0].strip()
    return name


def _as_call(value: Any, known: set[str]) -> ParsedCall | None:
    name = _call_name(value)
    if name is None and isinstance(value, dict) and len(value) == 1 and next(iter(value)) in known:
        # the tool's name as the only key, its argument(s) as the value: {"submit_answer": 1677} (the 1.5B model,
        # twice in a row after computing 1677 on the math set, until its answer was forced at the step limit). One
        # known name and nothing else is unambiguous; a bare value goes to the tool as text, which binds it to a
        # one-parameter tool's parameter or answers with what the tool takes
        key = next(iter(value))
        return ParsedCall(name=key, arguments=_object_or_text(value[key]), source="json_text")
    if name is None or (known and name not in known):
        return None
    if isinstance(value.get("function"), dict):
        value = value["function"]
    args: Any = next((value[k] for k in _ARG_KEYS if k in value), {})
    if isinstance(args, str):
        # an unparseable string is handed to the tool as-is; the tool reports the bad arguments
        with contextlib.suppress(json.JSONDecodeError):
            args = json.loads(args)
    return ParsedCall(name=name, arguments=_object_or_text(args), source="json_text")


def _object_or_text(args: Any) -> dict[str, Any] | str:
    """Arguments as the call model holds them: a JSON object, or else its text, which the tool rejects with a
    clear message (seen on vLLM: ``{"name": "submit_answer", "arguments": 1710}`` crashed the trajectory)."""
    return args if isinstance(args, (dict, str)) else json.dumps(args)


def _calls_in(text: str, known: set[str], base: int = 0) -> list[ParsedCall]:
    calls = []
    for value, start, end in _decode_objects(text, base):
        for item in value if isinstance(value, list) else [value]:
            if (call := _as_call(item, known)) is not None:
                call.start, call.end = start, end
                calls.append(call)
    return calls


def _only_calls(body: str, known: set[str]) -> bool:
    """True when ``body`` is one or more JSON tool calls of known tools and nothing else."""
    stripped = body.strip()
    found = _decode_objects(stripped)
    if not found or not known:
        return False
    rest = stripped
    for _, start, end in reversed(found):
        rest = rest[:start] + rest[end:]
    return not rest.strip() and all(_calls_in(stripped[a:b], known) for _, a, b in found)


# the opening of a JSON tool call, parseable or not
_CALL_START = re.compile(r'\{\s*"(?:name|tool|tool_name|function)"\s*:')
# a Python-style triple-quoted string, which small models put inside JSON for code
_TRIPLE = re.compile(r'("""|\'\'\')(.*?)\1', re.DOTALL)


def _recover(text: str, start: int, known: set[str]) -> ParsedCall | None:
    """The call starting at ``start`` if the only thing wrong with it is a triple-quoted string (unambiguous)."""
    fixed = _TRIPLE.sub(lambda m: json.dumps(m.group(2).strip("\n")), text[start:])
    if fixed == text[start:]:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(fixed)
    except json.JSONDecodeError:
        return None
    call = _as_call(value, known)
    if call is not None:
        call.source = "json_text_recovered"
        call.start = start
        call.end = None  # offsets in the repaired text do not map back; the whole reply is kept
    return call


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


def outside_fences(text: str) -> str:
    """``text`` without its fenced blocks (closed, or cut off by the stop sequence): what the reply said besides
    its code."""
    return _FENCE.sub("", text)


def expected_format(tool_names: list[str]) -> str:
    """The call format, as a schematic example: small models copy concrete examples into their answers."""
    example = '{"name": "<tool name>", "arguments": {"<argument name>": <value>}}'
    text = f"To call a tool, reply with one JSON object: {example}. Available tools: {', '.join(tool_names)}."
    if "python" in tool_names:
        text += " To run Python, you may instead write the code in a ```python fenced block."
    return text


def parse_tool_calls(
    text: str,
    native: list[dict[str, Any]] | None = None,
    tool_names: list[str] | None = None,
) -> ParseResult:
    """Extract tool calls from a reply. ``tool_names`` restricts JSON matches to known tools.

    Text calls are taken in the order they were written. When the first thing in the reply that
    looks like a call cannot be read, nothing after it runs: what follows was written without its
    result (a reply once held an unparseable ``python`` call, an invented output, then a
    ``submit_answer`` of that invention). A call broken only by a triple-quoted string is repaired.
    """
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
                                    arguments=_object_or_text(args), source="native"))
        return ParseResult(calls=calls)

    fences = list(_FENCE.finditer(text))
    # A "python" block that holds nothing but a JSON call of a known tool is that call, not a program (seen when a
    # prompt showed both formats: the 1.5B model wrapped {"name": "calculate", ...} in a python fence).
    code_fences = [m for m in fences if m.group(1).lower() in ("python", "py", "python3")
                   and not _only_calls(m.group(2) or "", known)]
    in_code = [(m.start(), m.end()) for m in code_fences]

    def inside(pos: int, spans: list[tuple[int, int]]) -> bool:
        return any(a <= pos < b for a, b in spans)

    calls = [c for c in _calls_in(text, known) if not inside(c.start or 0, in_code)]
    parsed_spans = [(v_start, v_end) for _, v_start, v_end in _decode_objects(text)]
    # the first call-looking thing that did not parse as a call of a known tool
    broken: int | None = None
    unknown: str | None = None
    for m in _CALL_START.finditer(text):
        if inside(m.start(), in_code) or any(c.start == m.start() for c in calls):
            continue
        span = next(((a, b) for a, b in parsed_spans if a <= m.start() < b), None)
        if span is not None:
            if any(span[0] <= (c.start or 0) < span[1] for c in calls):
                continue  # part of a parsed call (e.g. a list of calls, or the OpenAI shape)
            unknown = _call_name(json.loads(text[span[0]:span[1]])) if span[0] == m.start() else None
            if unknown is None:
                continue  # a dict inside some other JSON value
        broken = m.start()
        break
    tagged = [m for m in _TAGGED.finditer(text) if not _calls_in(m.group(1), known)]
    if tagged and (broken is None or tagged[0].start() < broken):
        broken, unknown = tagged[0].start(), None
    if code_fences and "python" in known:
        # Consecutive python blocks are one program written in steps (step 3 uses step 1's variables): they run
        # together, in order, as one cell. A JSON call between them ends the program.
        first_json = min((c.start or 0 for c in calls), default=len(text))
        blocks = [b for b in code_fences if b.start() < first_json] or code_fences[:1]
        code = "\n\n".join(b.group(2).strip() for b in blocks)
        calls.append(ParsedCall(name="python", arguments={"code": code}, source="code_block",
                                start=blocks[0].start(), end=blocks[-1].end()))
    calls.sort(key=lambda c: c.start or 0)
    if broken is not None and (not calls or broken < (calls[0].start or 0)):
        recovered = _recover(text, broken, known) if unknown is None else None
        if recovered is not None:
            return ParseResult(calls=[recovered])
        why = f"unknown tool {unknown!r}" if unknown else "the JSON could not be parsed"
        return ParseResult(error=f"Your tool call was not understood ({why}), so nothing in that reply was run. "
                                 f"{expected_format(names)}")
    return ParseResult(calls=calls)
