"""Tools from typed, documented functions: schema, validation, timeouts, caps, errors."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from peerstep.environments import QuestionEnvironment
from peerstep.tools import Tool, calculator_tool, check_arguments, describe_parameters, tool


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
    assert not bad.ok and "convert got 'lots' for 'value', which must be a number" in bad.output
    assert "It takes: value (number, required)" in bad.output
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


# --- arguments checked against the schema (check_arguments, shared with Aviary's tools) -----------------


def _call(name: str, arguments: object) -> dict[str, object]:
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"role": "assistant", "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": name, "arguments": raw}}]}


@pytest.mark.parametrize(("arguments", "problem"), [
    ({"expr": "2 + 3"}, "calculate got an unexpected argument 'expr' and is missing the required argument "
                        "'expression'."),
    ({}, "calculate is missing the required argument 'expression'."),
    ({"expression": ["2", "3"]}, "calculate got [\"2\", \"3\"] for 'expression', which must be a string."),
    ({"expression": "2 + 3", "precision": 2}, "calculate got an unexpected argument 'precision'."),
    ('"2 + 3" please', None),  # a bare string goes to the only parameter, as before
])
async def test_a_bad_call_of_a_peerstep_tool_is_an_observation_naming_its_arguments(
        arguments: object, problem: str | None) -> None:
    env = QuestionEnvironment("What is 2 + 3?", gold="5")
    await env.reset()
    observations, reward, done, truncated = await env.step(_call("calculate", arguments))
    (obs,) = observations
    assert obs["role"] == "tool" and obs["tool_call_id"] == "c1" and not done and not truncated and reward == 0.0
    if problem is None:
        assert obs["info"]["ok"] is False and "Error" in obs["content"]  # the calculator's own error, not a crash
        return
    assert obs["info"]["ok"] is False
    assert obs["content"] == f"Error: {problem} It takes: expression (string, required)."
    # the episode goes on: a right call runs, and the answer is graded
    observations, _, done, _ = await env.step(_call("calculate", {"expression": "2 + 3"}))
    assert observations[0]["content"] == "5" and not done
    _, reward, done, _ = await env.step(_call("submit_answer", {"answer": "5"}))
    assert done and reward == 1.0


def test_check_arguments_types_and_conversions() -> None:
    params = Tool(convert).parameters
    assert check_arguments("convert", params, {"value": 2}) == ({"value": 2}, None)
    assert check_arguments("convert", params, {"value": "2.5"}) == ({"value": 2.5}, None)  # meant as a number
    _, problem = check_arguments("convert", params, {"value": 1, "precise": "yes"})
    assert problem == ("Error: convert got 'yes' for 'precise', which must be true or false. It takes: value "
                       '(number, required), unit (string, default "m"), precise (boolean, default false).')
    _, problem = check_arguments("convert", params, [1, "km"])  # type: ignore[arg-type]
    assert problem is not None and problem.startswith(
        "Error: the arguments for convert must be a JSON object of named arguments, got [1, \"km\"].")
    _, problem = check_arguments("convert", params, "1 km")
    assert problem is not None and "must be a JSON object" in problem and "value (number, required)" in problem
    # a number where a string is expected is its JSON text (submit_answer(answer=42))
    answer = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    assert check_arguments("submit_answer", answer, {"answer": 42}) == ({"answer": "42"}, None)
    # what the checker cannot read is not refused; an explicit allowance lets unknown arguments through
    loose = {"type": "object", "properties": {"x": {"$ref": "#/$defs/X"}}, "additionalProperties": True}
    assert check_arguments("t", loose, {"x": {"a": 1}, "y": 2}) == ({"x": {"a": 1}, "y": 2}, None)
    assert describe_parameters({"type": "object", "properties": {}}) == "no arguments"
    assert describe_parameters({"properties": {"n": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                                               "k": {"enum": ["a", "b"]}}}) == \
        'n (integer, optional), k (one of "a", "b", optional)'
