"""Finding tool calls in model replies: every shape the small models produce, and the failures."""

from __future__ import annotations

import pytest

from peerstep.agent import parse_tool_calls

TOOLS = ["calculate", "submit_answer", "python"]


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "calculate", "arguments": {"expression": "2+2"}}',
        'Let me compute.\n```json\n{"name": "calculate", "arguments": {"expression": "2+2"}}\n```\nDone.',
        '```\n{"name": "calculate", "arguments": {"expression": "2+2"}}\n```',
        '<tool_call>\n{"name": "calculate", "arguments": {"expression": "2+2"}}\n</tool_call>',
        '{"name": "calculate", "arguments": "{\\"expression\\": \\"2+2\\"}"}',  # arguments as a JSON string
        '{"function": {"name": "calculate", "arguments": {"expression": "2+2"}}}',  # OpenAI shape as text
        '{"name": "calculate", "parameters": {"expression": "2+2"}}',  # 'parameters' instead of 'arguments'
        'First {"not": "a call"} then {"name": "calculate", "arguments": {"expression": "2+2"}}',
    ],
)
def test_json_calls_in_text(text: str) -> None:
    result = parse_tool_calls(text, None, TOOLS)
    assert result.error is None
    assert [(c.name, c.arguments, c.source) for c in result.calls] == [("calculate", {"expression": "2+2"},
                                                                        "json_text")]


def test_several_calls_in_order() -> None:
    text = ('{"name": "calculate", "arguments": {"expression": "1+1"}}\n'
            '{"name": "submit_answer", "arguments": {"answer": "2"}}')
    assert [c.name for c in parse_tool_calls(text, None, TOOLS).calls] == ["calculate", "submit_answer"]


def test_list_of_calls() -> None:
    text = '[{"name": "calculate", "arguments": {"expression": "1"}}, {"name": "calculate", "arguments": {}}]'
    assert len(parse_tool_calls(text, None, TOOLS).calls) == 2


def test_native_calls_win_and_keep_ids() -> None:
    native = [{"id": "abc", "type": "function", "function": {"name": "calculate", "arguments": '{"expression": "3"}'}}]
    result = parse_tool_calls('{"name": "submit_answer", "arguments": {"answer": "x"}}', native, TOOLS)
    assert [(c.id, c.name, c.arguments, c.source) for c in result.calls] == [("abc", "calculate",
                                                                              {"expression": "3"}, "native")]


def test_native_call_with_broken_arguments_is_passed_through() -> None:
    native = [{"id": "abc", "type": "function", "function": {"name": "calculate", "arguments": '{"expr'}}]
    assert parse_tool_calls("", native, TOOLS).calls[0].arguments == '{"expr'


def test_python_block_becomes_python_call() -> None:
    text = "I'll compute it.\n```python\nx = 48123 * 9177\nprint(x - 600)\n```"
    result = parse_tool_calls(text, None, TOOLS)
    assert [(c.name, c.arguments, c.source) for c in result.calls] == [
        ("python", {"code": "x = 48123 * 9177\nprint(x - 600)"}, "code_block")]


def test_python_block_ignored_without_python_tool() -> None:
    assert parse_tool_calls("```python\nprint(1)\n```", None, ["calculate"]).calls == []


def test_calls_are_taken_in_the_order_written() -> None:
    """A submit written after a code block was written before the code's output existed: the code goes first."""
    text = '```python\nprint(1)\n```\n{"name": "submit_answer", "arguments": {"answer": "1"}}'
    assert [c.name for c in parse_tool_calls(text, None, TOOLS).calls] == ["python", "submit_answer"]
    text = '{"name": "calculate", "arguments": {"expression": "1"}}\n```python\nprint(2)\n```'
    assert [c.name for c in parse_tool_calls(text, None, TOOLS).calls] == ["calculate", "python"]


def test_json_inside_a_code_block_is_code() -> None:
    text = '```python\nd = {"name": "calculate", "arguments": {}}\nprint(d)\n```'
    result = parse_tool_calls(text, None, TOOLS)
    assert result.error is None and [c.name for c in result.calls] == ["python"]


def test_a_broken_first_call_hides_the_calls_after_it() -> None:
    text = ('{"name": "calculate", "arguments": {"expression": 2+2}}\n'
            '{"name": "submit_answer", "arguments": {"answer": "4"}}')
    result = parse_tool_calls(text, None, TOOLS)
    assert result.calls == [] and result.error is not None and "nothing in that reply was run" in result.error


def test_a_broken_call_after_a_good_one_does_not_hide_it() -> None:
    text = ('{"name": "calculate", "arguments": {"expression": "2+2"}}\n'
            '{"name": "submit_answer", "arguments": {"answer": 4+}}')
    assert [c.name for c in parse_tool_calls(text, None, TOOLS).calls] == ["calculate"]


def test_unknown_tool_is_reported() -> None:
    result = parse_tool_calls('{"name": "browse", "arguments": {"url": "x"}}', None, TOOLS)
    assert result.calls == []
    assert result.error is not None and "unknown tool 'browse'" in result.error and "calculate" in result.error


def test_broken_json_is_reported_with_format() -> None:
    result = parse_tool_calls('{"name": "calculate", "arguments": {"expression": "1+', None, TOOLS)
    assert result.calls == []
    assert result.error is not None and "could not be parsed" in result.error
    assert '{"name": "<tool name>", "arguments": {"<argument name>": <value>}}' in result.error
    assert "2 * (3 + 4)" not in result.error  # small models copied the old concrete example into answers


def test_plain_text_is_no_call_and_no_error() -> None:
    result = parse_tool_calls("The answer is 42.", None, TOOLS)
    assert result.calls == [] and result.error is None


def test_openai_round_trip() -> None:
    call = parse_tool_calls('{"name": "calculate", "arguments": {"expression": "2"}}', None, TOOLS).calls[0]
    wire = call.openai()
    assert wire["type"] == "function" and wire["function"] == {"name": "calculate",
                                                               "arguments": '{"expression": "2"}'}


def test_consecutive_python_blocks_run_as_one_program() -> None:
    """Small models write a program in steps, later blocks using earlier variables: they run together, and the
    text between them (including invented outputs) is cut."""
    text = ("Step 1:\n```python\na = 48123 * 9177\nprint(a)\n```\nStep 2:\n```python\nb = 0.12 * 5000\n```\n"
            "Step 3:\n```python\nprint(a - b)\n```\nOutput:\n```\n39489761\n```\nSo \\boxed{39489761}")
    result = parse_tool_calls(text, None, TOOLS)
    assert [(c.name, c.arguments) for c in result.calls] == [
        ("python", {"code": "a = 48123 * 9177\nprint(a)\n\nb = 0.12 * 5000\n\nprint(a - b)"})]
    assert "39489761" not in text[: result.calls[0].end]


def test_a_json_call_ends_the_program() -> None:
    text = ('```python\nprint(1)\n```\n{"name": "submit_answer", "arguments": {"answer": "1"}}\n'
            '```python\nprint(2)\n```')
    calls = parse_tool_calls(text, None, TOOLS).calls
    assert [(c.name, c.arguments) for c in calls][:2] == [("python", {"code": "print(1)"}),
                                                         ("submit_answer", {"answer": "1"})]


def test_a_python_fence_holding_only_a_json_call_is_that_call() -> None:
    text = '```python\n{"name": "calculate", "arguments": {"expression": "(149 * 66 - 914) // 47"}}\n```'
    result = parse_tool_calls(text, None, ["calculate", "python", "submit_answer"])
    assert result.error is None
    assert [(c.name, c.arguments) for c in result.calls] == [("calculate", {"expression": "(149 * 66 - 914) // 47"})]


def test_a_python_fence_with_a_dict_in_real_code_stays_code() -> None:
    text = '```python\nd = {"name": "calculate", "arguments": {}}\nprint(d)\n```'
    result = parse_tool_calls(text, None, ["calculate", "python"])
    assert [c.name for c in result.calls] == ["python"] and "print(d)" in result.calls[0].arguments["code"]
    unknown = '```python\n{"name": "weather", "arguments": {}}\n```'  # not a known tool: the block is code
    assert [c.name for c in parse_tool_calls(unknown, None, ["calculate", "python"]).calls] == ["python"]


@pytest.mark.parametrize("arguments", ["1710", "[1, 2]", "null", "true"])
def test_arguments_that_are_not_an_object_are_passed_as_text(arguments: str) -> None:
    """The tool then answers with a clear error; the parse never raises (a bare int crashed a trajectory on vLLM)."""
    text = f'{{"name": "submit_answer", "arguments": {arguments}}}'
    calls = parse_tool_calls(text, None, TOOLS).calls
    assert [(c.name, c.arguments) for c in calls] == [("submit_answer", arguments)]
    native = [{"id": "c1", "function": {"name": "submit_answer", "arguments": arguments}}]
    assert parse_tool_calls("", native, TOOLS).calls[0].arguments == arguments


def test_a_name_copied_with_its_signature_is_the_tool() -> None:
    """The prompt lists "- calculate(expression: string): ..."; the 0.5B model wrote that whole signature as the name
    three times in a row (an eval episode that never ran a tool). The name is what precedes "("."""
    text = '{"name": "calculate(expression: string)", "arguments": {"expression": "8 * 12 - 6"}}'
    result = parse_tool_calls(text, None, ["calculate", "submit_answer"])
    assert result.error is None and [(c.name, c.arguments) for c in result.calls] == [
        ("calculate", {"expression": "8 * 12 - 6"})]
    other = parse_tool_calls('{"name": "weather(city: string)", "arguments": {}}', None, ["calculate"])
    assert other.error is not None and "unknown tool 'weather'" in other.error  # still unknown, named plainly


@pytest.mark.parametrize(("text", "call"), [
    ('```json\n{\n  "submit_answer": 1677\n}\n```', ("submit_answer", "1677")),
    ('{"calculate": {"expression": "2+2"}}', ("calculate", {"expression": "2+2"})),
    ('{"python": "print(1)"}', ("python", "print(1)")),
])
def test_the_tool_name_as_the_only_key_is_a_call_of_that_tool(text: str, call: tuple[str, object]) -> None:
    """The 1.5B model wrote {"submit_answer": 1677} after computing 1677, twice, and the loop ran to its step limit."""
    result = parse_tool_calls(text, None, TOOLS)
    assert result.error is None and [(c.name, c.arguments) for c in result.calls] == [call]


@pytest.mark.parametrize("text", ['{"answer": 1677}', '{"submit_answer": 1, "note": "x"}', '{"weather": "Paris"}'])
def test_other_one_key_objects_are_not_calls(text: str) -> None:
    assert parse_tool_calls(text, None, TOOLS).calls == []
