"""Tools from typed, documented functions: schema, validation, timeouts, caps, errors."""

from __future__ import annotations

import asyncio
import time

import pytest

from peerstep.tools import Tool, calculator_tool, tool


def convert(value: float, unit: str = "m", precise: bool = False) -> str:
    """Convert a length to metres.

    Args:
        value: The length to convert.
        unit: Its unit, one of m, km, cm.
        precise: Keep every digit.

    Returns:
        The length in metres.
    """
    factor = {"m": 1, "km": 1000, "cm": 0.01}[unit]
    return f"{value * factor} m"


def test_schema_is_generated_from_signature_and_docstring() -> None:
    schema = Tool(convert).schema()
    fn = schema["function"]
    assert fn["name"] == "convert"
    assert fn["description"] == "Convert a length to metres."
    params = fn["parameters"]
    assert params["required"] == ["value"]
    assert params["properties"]["value"] == {"type": "number", "description": "The length to convert."}
    assert params["properties"]["unit"]["default"] == "m"
    assert params["properties"]["unit"]["description"] == "Its unit, one of m, km, cm."
    assert params["properties"]["precise"]["type"] == "boolean"
    assert params["additionalProperties"] is False


def test_undocumented_function_is_refused() -> None:
    def nodoc(x: int) -> int:
        return x

    with pytest.raises(ValueError, match="docstring"):
        Tool(nodoc)


async def test_call_validates_and_runs() -> None:
    t = Tool(convert)
    ok = await t({"value": 2, "unit": "km"})
    assert ok.ok and ok.output == "2000.0 m"
    bad = await t({"value": "lots"})
    assert not bad.ok and "invalid arguments for convert" in bad.output and "value" in bad.output
    extra = await t({"value": 1, "colour": "red"})
    assert not extra.ok and "colour" in extra.output
    raw = await t("value=1")
    assert not raw.ok and "must be a JSON object" in raw.output


async def test_a_one_parameter_tool_takes_a_bare_argument() -> None:
    def shout(text: str) -> str:
        """Upper-case a text."""
        return text.upper()

    t = Tool(shout)
    assert (await t("hi")).output == "HI"
    assert (await t({"text": "hi"})).output == "HI"


async def test_exception_becomes_observation() -> None:
    t = Tool(convert)
    res = await t({"value": 1, "unit": "furlong"})
    assert not res.ok and res.output.startswith("Error: KeyError")


async def test_async_tool_timeout() -> None:
    @tool(timeout=0.2)
    async def slow(seconds: float) -> str:
        """Sleep.

        Args:
            seconds: how long
        """
        await asyncio.sleep(seconds)
        return "woke"

    started = time.perf_counter()
    res = await slow({"seconds": 30})
    assert res.timed_out and not res.ok and "did not finish within 0.2 s" in res.output
    assert time.perf_counter() - started < 10  # the call returned instead of waiting 30 s


async def test_output_is_capped() -> None:
    @tool(max_output_chars=100)
    def flood(n: int) -> str:
        """Print a lot.

        Args:
            n: how many characters
        """
        return "x" * n

    res = await flood({"n": 10_000})
    assert res.truncated and res.output.startswith("x" * 100) and "10000 characters" in res.output
    assert len(res.output) < 200


async def test_calculator_tool_refuses_injection() -> None:
    calc = calculator_tool()
    res = await calc({"expression": "__import__('os').system('id')"})
    assert not res.ok and "not allowed" in res.output
    good = await calc({"expression": "48123 * 9177 - 12% * 5,000"})
    assert good.ok and good.output == "441624171"
