"""Tools built from typed, documented Python functions.

The JSON schema the model sees is generated from the signature and the docstring (Google
style ``Args:`` section), never written by hand, and the same pydantic model validates the
arguments the model sends, so a malformed call gets a precise message back (first from ``check_arguments``,
which every tool path shares, then from the model). Every call runs
with a timeout and an output cap; whatever goes wrong becomes a ``ToolResult`` with
``ok=False`` — an observation for the model, never an exception for the agent loop.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from peerstep.tools._schema import check_arguments

ToolFunction = Callable[..., Any] | Callable[..., Awaitable[Any]]


class ToolResult(BaseModel):
    output: str
    ok: bool = True
    latency_s: float = 0.0
    timed_out: bool = False
    truncated: bool = False


def _docstring_parts(doc: str) -> tuple[str, dict[str, str]]:
    """Split a docstring into its description and ``{arg: description}`` from an ``Args:`` section."""
    doc = inspect.cleandoc(doc)
    match = re.search(r"^\s*(Args|Arguments|Parameters):\s*$", doc, flags=re.MULTILINE)
    if not match:
        return doc.strip(), {}
    description = doc[: match.start()].strip()
    args: dict[str, str] = {}
    current: str | None = None
    for line in doc[match.end():].splitlines():
        if re.match(r"^\S", line) and line.strip().endswith(":"):
            break  # next section, e.g. "Returns:"
        m = re.match(r"^\s+(\w+)\s*(\([^)]*\))?\s*:\s*(.*)$", line)
        if m:
            current = m.group(1)
            args[current] = m.group(3).strip()
        elif current and line.strip():
            args[current] += " " + line.strip()
    return description, args


class Tool:
    """A callable the model can request by name, with its OpenAI schema."""

    def __init__(
        self,
        fn: ToolFunction,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float = 30.0,
        max_output_chars: int = 8000,
    ) -> None:
        if not fn.__doc__ and description is None:
            raise ValueError(f"tool function {fn.__name__} needs a docstring: it is the description the model reads")
        self.fn = fn
        self.name = name or fn.__name__
        self.timeout = timeout
        self.max_output_chars = max_output_chars
        doc_description, arg_docs = _docstring_parts(fn.__doc__ or "")
        self.description = description or doc_description
        hints = get_type_hints(fn)
        fields: dict[str, Any] = {}
        for pname, param in inspect.signature(fn).parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ValueError(f"tool {self.name}: *args/**kwargs cannot be described to a model")
            annotation = hints.get(pname, str)
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[pname] = (annotation, Field(default, description=arg_docs.get(pname)))
        self.arguments_model: type[BaseModel] = create_model(
            f"{self.name}_arguments", __config__=ConfigDict(extra="forbid"), **fields
        )

    @classmethod
    def from_function(cls, fn: ToolFunction, **kwargs: Any) -> Tool:
        return cls(fn, **kwargs)

    @property
    def parameters(self) -> dict[str, Any]:
        schema = self.arguments_model.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        return schema

    def schema(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry for this tool."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}

    def signature_text(self) -> str:
        """A one-line human/LLM readable signature, e.g. ``calculate(expression: string)``."""
        props = self.parameters.get("properties", {})
        args = ", ".join(f"{k}: {v.get('type', 'any')}" for k, v in props.items())
        return f"{self.name}({args})"

    async def __call__(self, arguments: dict[str, Any] | str) -> ToolResult:
        started = time.perf_counter()
        checked, problem = check_arguments(self.name, self.parameters, arguments)
        if checked is None:
            return ToolResult(ok=False, output=problem or f"Error: invalid arguments for {self.name}.",
                              latency_s=time.perf_counter() - started)
        arguments = checked
        try:
            validated = self.arguments_model.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
            return ToolResult(ok=False, output=f"Error: invalid arguments for {self.name}: {problems}. "
                              f"Expected: {self.signature_text()}", latency_s=time.perf_counter() - started)
        kwargs = {k: getattr(validated, k) for k in type(validated).model_fields}
        try:
            if inspect.iscoroutinefunction(self.fn):
                value = await asyncio.wait_for(self.fn(**kwargs), self.timeout)
            else:
                value = await asyncio.wait_for(asyncio.to_thread(self.fn, **kwargs), self.timeout)
        except TimeoutError:
            return ToolResult(ok=False, timed_out=True, latency_s=time.perf_counter() - started,
                              output=f"Error: {self.name} did not finish within {self.timeout:g} s and was abandoned.")
        except Exception as exc:  # a tool's own failure is an observation for the model
            return ToolResult(ok=False, latency_s=time.perf_counter() - started,
                              output=f"Error: {type(exc).__name__}: {exc}")
        text = value if isinstance(value, str) else str(value)
        truncated = len(text) > self.max_output_chars
        if truncated:
            text = text[: self.max_output_chars] + f"\n[output truncated: {len(text)} characters, showing the first " \
                                                   f"{self.max_output_chars}]"
        return ToolResult(output=text, truncated=truncated, latency_s=time.perf_counter() - started)


def tool(fn: ToolFunction | None = None, **kwargs: Any) -> Any:
    """Decorator form of ``Tool.from_function``: ``@tool`` or ``@tool(timeout=5)``."""
    if fn is None:
        return lambda f: Tool(f, **kwargs)
    return Tool(fn, **kwargs)
