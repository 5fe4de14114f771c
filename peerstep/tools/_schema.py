"""Tool arguments checked against the tool's OpenAI JSON schema, before a call reaches a tool or an environment.

One check for every path: peerstep's own tools (``Tool.__call__``) and an Aviary environment's tools
(``AviaryEnvironment.step``) both use ``check_arguments``. A model that invents an argument, leaves out a
required one, sends the wrong JSON type or sends arguments that are not a JSON object gets an observation
naming the arguments the tool takes, e.g. ``Error: calculator got an unexpected argument 'expression'. It
takes: expr (string, required).`` -- never a Python ``TypeError`` from deep inside the tool (seen with
Aviary's ``calculator(expr)``: the model submitted the error text as its answer).

It checks what such calls get wrong (required, unknown and mistyped properties at the top level, ``enum``,
and the alternatives of ``anyOf``/``oneOf``/a type list) and accepts whatever it does not understand, so a
schema construct it does not know can never reject a good call; a peerstep tool's own pydantic model still
validates everything after it. Two conversions the model plainly means are made, and the converted
arguments are what the tool receives: a number where a string is expected becomes its JSON text
(``submit_answer(answer=42)``), and a numeric string where a number is expected becomes the number.
Arguments given as one bare string (peerstep's parser hands over text that was not JSON) go to a tool's
only parameter, as small models mean them; for a tool with several parameters they are reported.
"""

from __future__ import annotations

import json
import math
from typing import Any

_TYPE_NAMES = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
               "array": "a list", "object": "an object", "null": "null"}


def _json_kind(value: Any) -> str:
    """The JSON type of a decoded value, in the schema's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _types(prop: dict[str, Any]) -> list[str] | None:
    """The JSON types a property allows, or None when the schema does not say (or says it in a way not read here)."""
    kind = prop.get("type")
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list) and all(isinstance(k, str) for k in kind):
        return list(kind)
    alternatives = prop.get("anyOf") or prop.get("oneOf")
    if isinstance(alternatives, list) and alternatives:
        found: list[str] = []
        for alt in alternatives:
            alt_types = _types(alt) if isinstance(alt, dict) else None
            if alt_types is None:
                return None  # an alternative of unknown type: anything may be right
            found += [t for t in alt_types if t not in found]
        return found
    return None


def _convert(value: Any, kind: str) -> tuple[bool, Any]:
    """``value`` as JSON type ``kind``: (fits, the value to pass on)."""
    actual = _json_kind(value)
    if actual == kind or (kind == "number" and actual == "integer"):
        return True, value
    if kind == "integer" and actual == "number" and math.isfinite(value) and float(value).is_integer():
        return True, int(value)
    if kind == "string" and actual in ("integer", "number"):
        return True, json.dumps(value)
    if kind in ("integer", "number") and actual == "string":
        try:
            number = json.loads(value.strip())
        except (json.JSONDecodeError, ValueError):
            return False, value
        if _json_kind(number) in ("integer", "number"):
            return _convert(number, kind)
    return False, value


def _fit(value: Any, prop: dict[str, Any]) -> tuple[str | None, Any]:
    """(None, the value to pass on) when ``value`` fits ``prop``; else (what it should be, value)."""
    enum = prop.get("enum")
    if isinstance(enum, list) and value not in enum:
        return "one of " + ", ".join(json.dumps(e) for e in enum), value
    kinds = _types(prop)
    if kinds is None:
        return None, value
    for kind in kinds:  # an exact match first: a string stays a string when both are allowed
        if _json_kind(value) == kind or (kind == "number" and _json_kind(value) == "integer"):
            return None, value
    for kind in kinds:
        fits, converted = _convert(value, kind)
        if fits:
            return None, converted
    return " or ".join(_TYPE_NAMES.get(k, k) for k in kinds), value


def _type_text(prop: dict[str, Any]) -> str:
    enum = prop.get("enum")
    if isinstance(enum, list) and enum:
        return "one of " + ", ".join(json.dumps(e) for e in enum)
    kinds = _types(prop)
    if not kinds:
        return "any"
    kinds = [k for k in kinds if k != "null"] or kinds
    if kinds == ["array"] and isinstance(prop.get("items"), dict) and isinstance(prop["items"].get("type"), str):
        return f"list of {prop['items']['type']}"
    return " or ".join(kinds)


def describe_parameters(parameters: dict[str, Any] | None) -> str:
    """The arguments a tool takes, for a model: ``expr (string, required), digits (integer, default 2)``."""
    properties = (parameters or {}).get("properties") or {}
    if not properties:
        return "no arguments"
    required = set((parameters or {}).get("required") or [])
    parts = []
    for name, prop in properties.items():
        prop = prop if isinstance(prop, dict) else {}
        if name in required:
            note = "required"
        elif "default" in prop:
            note = f"default {json.dumps(prop['default'])}"
        else:
            note = "optional"
        parts.append(f"{name} ({_type_text(prop)}, {note})")
    return ", ".join(parts)


def _quoted(names: list[str]) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _joined(problems: list[str]) -> str:
    return problems[0] if len(problems) == 1 else ", ".join(problems[:-1]) + " and " + problems[-1]


def _short(value: Any) -> str:
    """A value as the model wrote it: a string quoted, anything else as JSON; cut to 80 characters."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = text if len(text) <= 80 else text[:77] + "..."
    return repr(text) if isinstance(value, str) else text


def check_arguments(tool_name: str, parameters: dict[str, Any] | None,
                    arguments: dict[str, Any] | str) -> tuple[dict[str, Any] | None, str | None]:
    """Check a call's ``arguments`` against the tool's OpenAI ``parameters`` schema.

    Returns ``(arguments to pass on, None)`` when they fit (converted as the module docstring says), or
    ``(None, message)``: an observation for the model that says what is wrong and which arguments the tool takes.
    """
    schema = parameters or {}
    properties: dict[str, Any] = schema.get("properties") or {}
    takes = f"It takes: {describe_parameters(schema)}."
    if isinstance(arguments, str):
        if len(properties) == 1:
            # Small models write a one-parameter call's argument bare, e.g. {"name": "calculate", "arguments":
            # "4837 * 293"} (seen on the 1.5B model under LeaP). It names only one thing, so it is that parameter.
            arguments = {next(iter(properties)): arguments}
        else:
            return None, (f"Error: the arguments for {tool_name} must be a JSON object of named arguments, "
                          f"got {_short(arguments)}. {takes}")
    if not isinstance(arguments, dict):
        return None, (f"Error: the arguments for {tool_name} must be a JSON object of named arguments, "
                      f"got {_short(arguments)}. {takes}")
    problems: list[str] = []
    extra = schema.get("additionalProperties")
    unknown = [k for k in arguments if k not in properties]
    if unknown and not (extra is True or isinstance(extra, dict)):
        # JSON Schema allows unknown properties by default, but a function called with one raises (Aviary's
        # schemas do not say additionalProperties: false); only an explicit allowance lets them through
        problems.append(f"got {'an unexpected argument' if len(unknown) == 1 else 'unexpected arguments'} "
                        f"{_quoted(unknown)}")
    missing = [k for k in schema.get("required") or [] if k not in arguments]
    if missing:
        problems.append(f"is missing the required argument{'s' if len(missing) > 1 else ''} {_quoted(missing)}")
    checked: dict[str, Any] = {}
    for key, value in arguments.items():
        prop = properties.get(key)
        if not isinstance(prop, dict):
            checked[key] = value
            continue
        wanted, checked[key] = _fit(value, prop)
        if wanted is not None:
            problems.append(f"got {_short(value)} for {key!r}, which must be {wanted}")
    if problems:
        return None, f"Error: {tool_name} {_joined(problems)}. {takes}"
    return checked, None
