"""Messages and tools between Aviary's classes and peerstep's OpenAI format, losslessly, both ways."""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

from peerstep.environments._base import Message
from peerstep.environments.aviary._errors import _require_aviary
from peerstep.tools._base import Tool, ToolResult

if TYPE_CHECKING:
    import aviary.core as av


# --- messages --------------------------------------------------------------------------------------


def to_openai_message(message: av.Message) -> Message:
    """An Aviary message as an OpenAI chat dict; Aviary's ``info`` is kept under peerstep's ``info`` key.

    Tool-call arguments become JSON strings (OpenAI's wire form); multimodal content becomes the
    list of content blocks Aviary stores JSON-encoded.
    """
    _require_aviary()
    from aviary.core import ToolRequestMessage, ToolResponseMessage

    out: Message = {"role": message.role, "content": message.deserialized_content}
    if isinstance(message, ToolRequestMessage):
        out["tool_calls"] = [{"id": call.id, "type": call.type,
                              "function": {"name": call.function.name,
                                           "arguments": json.dumps(call.function.arguments)}}
                             for call in message.tool_calls]
    elif isinstance(message, ToolResponseMessage):
        out["tool_call_id"] = message.tool_call_id
        out["name"] = message.name
    if message.info is not None:
        out["info"] = copy.deepcopy(message.info)
    return out


def to_aviary_message(message: Message) -> av.Message:
    """An OpenAI chat dict as the matching Aviary message class.

    ``role: "tool"`` gives a ``ToolResponseMessage``; an assistant message carrying a ``tool_calls``
    list (even an empty one) gives a ``ToolRequestMessage``; anything else a plain ``Message``.
    Arguments that are not valid JSON follow Aviary's own rule: the call is renamed ``INVALID``.
    """
    _require_aviary()
    from aviary.core import Message as AviaryMessage
    from aviary.core import ToolCall, ToolCallFunction, ToolRequestMessage, ToolResponseMessage

    role = message.get("role", "user")
    content = message.get("content")
    info = copy.deepcopy(message.get("info"))
    if role == "tool":
        return ToolResponseMessage(content=content if content is not None else "", name=message.get("name") or "",
                                   tool_call_id=message.get("tool_call_id") or "", info=info)
    if role == "assistant" and message.get("tool_calls") is not None:
        calls = []
        for call in message["tool_calls"]:
            fn = call.get("function") or {}
            calls.append(ToolCall(
                id=call.get("id") or ToolCall.generate_id(),
                function=ToolCallFunction.model_validate({"name": fn.get("name", ""),
                                                          "arguments": fn.get("arguments")}),
            ))
        return ToolRequestMessage(content=content, tool_calls=calls, info=info)
    return AviaryMessage(role=role, content=content, info=info)


# --- tools -----------------------------------------------------------------------------------------


class AviaryTool(Tool):
    """A peerstep ``Tool`` whose schema is an Aviary tool's, byte for byte.

    peerstep's agent needs tools for the system prompt and the ``tools`` request field; Aviary runs
    its tools itself inside ``Environment.step`` (injecting its own state), so this tool is a
    description, and calling it directly says so instead of bypassing the environment.
    """

    def __init__(self, aviary_tool: av.Tool) -> None:
        info = aviary_tool.info

        def run_by_the_environment() -> str:
            """Run by the Aviary environment in its ``step``."""
            return ""

        super().__init__(run_by_the_environment, name=info.name, description=info.description)
        self.aviary_tool = aviary_tool
        self._schema: dict[str, Any] = aviary_tool.model_dump(exclude_none=True, by_alias=True)

    @property
    def parameters(self) -> dict[str, Any]:
        params = self._schema["function"].get("parameters")
        return copy.deepcopy(params) if params is not None else {"type": "object", "properties": {}}

    def schema(self) -> dict[str, Any]:
        return copy.deepcopy(self._schema)

    async def __call__(self, arguments: dict[str, Any] | str) -> ToolResult:
        return ToolResult(ok=False, output=f"Error: {self.name} is run by the Aviary environment in its step; "
                                           "send it as a tool call in an action instead.")


def to_aviary_tool(tool: Tool) -> av.Tool:
    """A peerstep tool as an Aviary ``Tool`` with the same OpenAI schema, callable by Aviary's ``exec_tool_calls``."""
    _require_aviary()
    from aviary.core import FunctionInfo
    from aviary.core import Tool as AviaryToolModel

    if isinstance(tool, AviaryTool):
        return tool.aviary_tool
    function = tool.schema()["function"]
    parameters = copy.deepcopy(function.get("parameters"))
    if parameters is not None:
        parameters.setdefault("required", [])  # Aviary's schema model requires the key; OpenAI's does not

    async def run(**arguments: Any) -> str:
        return (await tool(arguments)).output

    return AviaryToolModel(tool_fn=run, info=FunctionInfo(name=function["name"],
                                                          description=function.get("description") or "",
                                                          parameters=parameters))
