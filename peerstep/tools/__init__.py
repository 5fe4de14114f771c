"""Tools the agent can call: built from typed, documented functions."""

from peerstep.tools._base import Tool, ToolResult, tool
from peerstep.tools._schema import check_arguments, describe_parameters


def calculator_tool() -> Tool:
    from peerstep.tools.calculator import calculate

    return Tool(calculate, name="calculate", timeout=5.0)


def default_tools() -> list[Tool]:
    """The tools a question gets when none are named: currently the calculator."""
    return [calculator_tool()]


__all__ = ["Tool", "ToolResult", "calculator_tool", "check_arguments", "default_tools", "describe_parameters", "tool"]
