"""The answer policy of the reason/act loop, pinned with a scripted model: an answer is never lost."""

from __future__ import annotations

from pathlib import Path

from peerstep import AgentConfig, Budget, arun
from peerstep.agent._prompts import PROGRAM_PROMPT
from peerstep.environments import QuestionEnvironment
from peerstep.steplog import StepKind, StepLog
from tests.scripted import ScriptedClient

CALC = '{"name": "calculate", "arguments": {"expression": "48123 * 9177 - 600"}}'


def sent_texts(client: ScriptedClient) -> list[str]:
    """Every user/tool message the loop sent to the model (not the question itself)."""
    out: list[str] = []
    for request in client.requests_seen:
        for msg in request["messages"][2:]:
            if msg["role"] in ("user", "tool") and msg["content"] not in out:
                out.append(msg["content"])
    return out


def records(log: StepLog, kind: StepKind) -> list:  # type: ignore[type-arg]
    with StepLog(log.path, log.run_id) as reader:
        return list(reader.records(kind=kind))


async def test_boxed_answer_after_a_tool_result_is_submitted(tmp_path: Path) -> None:
    client = ScriptedClient([CALC, "So the result is \\boxed{441624171}."])
    log = StepLog.create(directory=tmp_path)
    result = await arun(QuestionEnvironment("What is 48123 * 9177 minus 12% of 5,000?", gold="441624171"), client,
                        log=log)
    assert result.answer == "441624171" and result.reward == 1.0 and result.correct is True
    assert result.steps == 2  # no third call to "confirm" what the model already said
    calls = [r.tool for r in records(log, StepKind.TOOL_CALL)]
    assert [(c.name, c.source) for c in calls] == [("calculate", "json_text"), ("submit_answer", "stated_answer")]
    reasons = records(log, StepKind.REASON)
    assert reasons[-1].data["stated_answer"] == "441624171"
    final = records(log, StepKind.FINAL)[0]  # what the model stated and computed is kept with the outcome
    assert final.data["stated_answer"] == "441624171" and final.data["last_result"] == "441624171"
    assert final.data["source"] == "stated_answer"


async def test_stated_answer_without_tools_is_accepted_by_default(tmp_path: Path) -> None:
    client = ScriptedClient(["6 times 7 is 42, so the answer is 42."])
    result = await arun(QuestionEnvironment("What is 6*7?", gold="42"), client,
                        log=StepLog.create(directory=tmp_path))
    assert result.answer == "42" and result.reward == 1.0 and result.steps == 1


async def test_check_policy_asks_once_for_a_tool_check_quoting_the_answer(tmp_path: Path) -> None:
    client = ScriptedClient([
        "The answer is 42.",
        '{"name": "calculate", "arguments": {"expression": "6*7"}}',
        "Checked: the answer is 42.",
    ])
    config = AgentConfig(answer_policy="check")
    result = await arun(QuestionEnvironment("What is 6*7?", gold="42"), client, agent=config,
                        log=StepLog.create(directory=tmp_path))
    assert result.answer == "42" and result.steps == 3
    ask = client.requests_seen[1]["messages"][-1]["content"]
    assert "You wrote 42" in ask and "calculate call with the whole calculation" in ask


async def test_confirm_policy_quotes_the_answer_then_accepts_it(tmp_path: Path) -> None:
    client = ScriptedClient(["\\boxed{4727}", "\\boxed{4727}"])
    config = AgentConfig(answer_policy="confirm")
    result = await arun(QuestionEnvironment("How many boxes?", gold="4727"), client, agent=config,
                        log=StepLog.create(directory=tmp_path))
    assert result.answer == "4727" and result.steps == 2
    assert client.requests_seen[1]["messages"][-1]["content"] == (
        "You wrote 4727. If that is your final answer, call submit_answer with it.")


async def test_forced_answer_falls_back_to_the_last_stated_answer(tmp_path: Path) -> None:
    """A server that ignores the named tool_choice, and a forced reply with no answer in it: the answer the
    model stated before is submitted, not the forced reply's text (a fresh guess)."""
    client = ScriptedClient(["Final answer: 4727", "Let me think about this again from the start."])
    config = AgentConfig(answer_policy="confirm", budget=Budget(max_steps=1))
    log = StepLog.create(directory=tmp_path)
    result = await arun(QuestionEnvironment("How many boxes?", gold="4727"), client, agent=config, log=log)
    assert result.answer == "4727" and result.reward == 1.0
    assert records(log, StepKind.TOOL_CALL)[-1].tool.source == "forced_fallback"


async def test_forced_answer_falls_back_to_the_last_computed_result(tmp_path: Path) -> None:
    client = ScriptedClient([CALC, "Hmm.", "I would need more time."])
    config = AgentConfig(budget=Budget(max_steps=2))
    result = await arun(QuestionEnvironment("What is 48123 * 9177 minus 12% of 5,000?", gold="441624171"),
                        client, agent=config, log=StepLog.create(directory=tmp_path))
    assert result.answer == "441624171"


async def test_a_restated_result_gets_a_neutral_question(tmp_path: Path) -> None:
    client = ScriptedClient([CALC, "48123 * 9177 - 600 = 441624171",
                             '{"name": "submit_answer", "arguments": {"answer": "441624171"}}'])
    result = await arun(QuestionEnvironment("What is 48123 * 9177 minus 12% of 5,000?", gold="441624171"),
                        client, log=StepLog.create(directory=tmp_path))
    assert result.answer == "441624171"
    ask = client.requests_seen[2]["messages"][-1]["content"]
    assert ask.startswith("You wrote 441624171. If that is your final answer, call submit_answer")


async def test_no_message_suggests_a_result_was_wrong(tmp_path: Path) -> None:
    client = ScriptedClient([CALC, "Let me see.", "Hmm, interesting.", "Still thinking.", "Done thinking."])
    config = AgentConfig(budget=Budget(max_steps=8))
    await arun(QuestionEnvironment("What is 48123 * 9177 minus 12% of 5,000?"), client, agent=config,
               log=StepLog.create(directory=tmp_path))
    for text in sent_texts(client):
        lowered = text.lower()
        assert "wrong" not in lowered and "only with a result you have computed" not in lowered
        assert "2 * (3 + 4)" not in text  # hints carry no concrete expression a small model could copy


async def test_idle_replies_force_the_answer(tmp_path: Path) -> None:
    client = ScriptedClient(["Let me see.", "Hmm.", "Well.", "[submit] 7"])
    log = StepLog.create(directory=tmp_path)
    await arun(QuestionEnvironment("What is 3+4?"), client, log=log)
    assert client.requests_seen[3]["tool_choice"] == {"type": "function", "function": {"name": "submit_answer"}}
    assert any("without a tool call" in (r.text or "") for r in records(log, StepKind.BUDGET))


async def test_unparseable_first_call_runs_nothing_after_it(tmp_path: Path) -> None:
    """The held-out failure: a broken python call, an invented result, then a submit of that invention."""
    reply = ('{"name": "python", "arguments": {"code": print(7482 - 263)}}\n'
             "Output: 7219\n"
             '{"name": "submit_answer", "arguments": {"answer": "7219"}}')
    client = ScriptedClient([reply, '{"name": "submit_answer", "arguments": {"answer": "done"}}'])
    log = StepLog.create(directory=tmp_path)
    result = await arun(QuestionEnvironment("q?", python=False,
                                            tools=[]), client, log=log)
    assert result.steps == 2 and result.answer == "done"
    assert "not understood" in client.requests_seen[1]["messages"][-1]["content"]
    assert [r.tool.name for r in records(log, StepKind.TOOL_CALL)] == ["submit_answer"]


async def test_a_triple_quoted_code_call_is_recovered(tmp_path: Path) -> None:
    from peerstep.agent import parse_tool_calls

    reply = ('{"name": "python", "arguments": {"code": """\nx = 7482 - 263\nprint(x)\n"""}}\n'
             '{"name": "submit_answer", "arguments": {"answer": "7219"}}')
    parsed = parse_tool_calls(reply, None, ["python", "submit_answer"])
    assert parsed.error is None
    assert [(c.name, c.arguments, c.source) for c in parsed.calls] == [
        ("python", {"code": "x = 7482 - 263\nprint(x)"}, "json_text_recovered")]


async def test_a_reply_that_recomputes_then_submits_the_computed_result_ends_now(tmp_path: Path) -> None:
    """Seen on the README demo: after the right result, one reply held a calculate call, a python call and a
    submit of that result; running them one per turn cost two more calls."""
    client = ScriptedClient([
        CALC,
        '{"name": "calculate", "arguments": {"expression": "(48123 * 9177) - 600"}}\n'
        '{"name": "python", "arguments": {"code": "print(48123 * 9177 - 600)"}}\n'
        '{"name": "submit_answer", "arguments": {"answer": "441624171.0"}}',
    ])
    result = await arun(QuestionEnvironment("What is 48123 * 9177 minus 12% of 5,000?", gold="441624171"),
                        client, log=StepLog.create(directory=tmp_path))
    assert result.answer == "441624171.0" and result.correct is True and result.steps == 2


async def test_a_submit_of_something_not_computed_still_waits_for_the_first_call(tmp_path: Path) -> None:
    client = ScriptedClient([
        CALC,
        '{"name": "calculate", "arguments": {"expression": "441624171 + 1"}}\n'
        '{"name": "submit_answer", "arguments": {"answer": "441624172"}}',
        '{"name": "submit_answer", "arguments": {"answer": "441624172"}}',
    ])
    result = await arun(QuestionEnvironment("q?"), client, log=StepLog.create(directory=tmp_path))
    assert result.steps == 3  # the guess was planned before its calculation ran: the calculation runs first


async def test_the_prompt_leads_with_a_program_when_python_is_offered(tmp_path: Path) -> None:
    """With Python offered the model is asked for one program computing from the question's numbers (the held-out
    measurement behind it is in the README); without it, the generic tool prompt, naming only offered tools."""
    with_python = ScriptedClient(["\\boxed{1}"])
    await arun(QuestionEnvironment("What is 2 + 3?", gold="5", python=True), with_python,
               log=StepLog.create(directory=tmp_path))
    prompt = with_python.requests_seen[0]["messages"][0]["content"]
    assert prompt == PROGRAM_PROMPT  # the bare-program baseline's words: its program is the loop's first reply
    without = ScriptedClient(["\\boxed{1}"])
    await arun(QuestionEnvironment("What is 2 + 3?", gold="5", python=False), without,
               log=StepLog.create(directory=tmp_path))
    prompt = without.requests_seen[0]["messages"][0]["content"]
    assert "Python" not in prompt and "python" not in prompt and "- calculate(" in prompt


async def test_after_the_program_prompt_other_tools_are_listed_and_the_output_asks_for_the_answer(
        tmp_path: Path) -> None:
    """Tools a program does not cover (search here) follow the program prompt; the program's output comes back
    fenced, with the request to state the answer or fix a failed program."""
    from peerstep.tools import Tool, calculator_tool

    def lookup(query: str) -> str:
        """Look something up."""
        return "nothing"

    client = ScriptedClient(["```python\nprint(2 + 3)\n```", "\\boxed{5}"])
    env = QuestionEnvironment("What is 2 + 3?", gold="5", python=True,
                              tools=[calculator_tool(), Tool.from_function(lookup)])
    result = await arun(env, client, log=StepLog.create(directory=tmp_path),
                        agent=AgentConfig(answer_from_output=False))  # the output goes back to the model
    prompt = client.requests_seen[0]["messages"][0]["content"]
    assert prompt.startswith(PROGRAM_PROMPT) and "- lookup(" in prompt and "- calculate(" not in prompt
    shown = client.requests_seen[1]["messages"][-1]["content"]
    assert shown.startswith("```output\n5\n```") and "\\boxed{answer}" in shown and "fixed program" in shown
    assert result.answer == "5" and result.correct is True


def test_a_restated_result_is_recognised_by_the_graders_number_parser() -> None:
    """"1,000" from the tool and "1000.0" in the reply are one value (the grader's parser, not a second regex)."""
    from peerstep.agent._policy import decide

    kwargs = {"policy": "accept", "finish_tool": "submit_answer", "tool_names": ["python", "submit_answer"],
              "tools_used": 1, "nudged": [], "idle": 0}
    same = decide("So we get 1000.0 in total.", last_result="1,000", **kwargs)  # type: ignore[arg-type]
    assert same.key == "restated:1000" and same.message and "1,000" in same.message
    other = decide("So we get 1001 in total.", last_result="1,000", **kwargs)  # type: ignore[arg-type]
    assert other.key is None and other.message is None


async def test_a_reply_that_is_only_a_number_states_it(tmp_path: Path) -> None:
    client = ScriptedClient([CALC, "441624171"])
    result = await arun(QuestionEnvironment("What is 48123 * 9177 minus 12% of 5,000?", gold="441624171"), client,
                        log=StepLog.create(directory=tmp_path))
    assert result.answer == "441624171" and result.correct is True and result.steps == 2


async def test_a_bare_number_before_any_tool_is_not_taken(tmp_path: Path) -> None:
    client = ScriptedClient(["13504879.2", CALC, "441624171"])
    result = await arun(QuestionEnvironment("What is 48123 * 9177 minus 12% of 5,000?", gold="441624171"), client,
                        log=StepLog.create(directory=tmp_path))
    assert result.answer == "441624171" and result.correct is True and result.steps == 3


async def test_a_call_whose_arguments_are_a_number_gets_a_clear_error_not_a_crash(tmp_path: Path) -> None:
    client = ScriptedClient([CALC, '{"name": "submit_answer", "arguments": 441624171}',
                             '{"name": "submit_answer", "arguments": {"answer": "441624171"}}'])
    log = StepLog.create(directory=tmp_path)
    result = await arun(QuestionEnvironment("What is 48123 * 9177 minus 12% of 5,000?", gold="441624171"), client,
                        log=log)
    # the finishing tool takes the bare value as its answer; no trajectory error
    assert result.error is None and result.answer == "441624171" and result.correct is True
    assert not records(log, StepKind.ERROR)


async def test_a_one_parameter_call_with_a_bare_argument_binds_it(tmp_path: Path) -> None:
    client = ScriptedClient(['{"name": "calculate", "arguments": "6 * 7"}', CALC, "\\boxed{441624171}"])
    log = StepLog.create(directory=tmp_path)
    result = await arun(QuestionEnvironment("What is 48123 * 9177 minus 12% of 5,000?", gold="441624171"), client,
                        log=log)
    assert result.error is None and result.correct is True
    first = records(log, StepKind.OBSERVATION)[0]
    assert (first.text or "").strip() == "42"


def test_prompts_name_the_finishing_tool_on_offer() -> None:
    """The finishing tool in the system prompt, the forced answer and the repeat note is the environment's."""
    from peerstep.agent._prompts import force_final, repeat_note, system_prompt
    from peerstep.tools import calculator_tool

    tools = [calculator_tool()]
    assert system_prompt(tools).endswith("When you know the final answer, call submit_answer with the answer only.")
    assert system_prompt(tools, "complete").endswith("call complete with the answer only.")
    assert system_prompt(tools, None).endswith("When you know the final answer, state it.")
    assert "submit_answer" not in system_prompt(tools, None) + force_final(None) + repeat_note(None)
    assert force_final("submit_answer") == ("You have no budget left for more steps. Give your final answer now by "
                                            "calling submit_answer with your best answer.")
    assert "call finish now" in repeat_note("finish")


async def test_a_program_that_prints_one_number_is_the_answer_with_answer_from_output(tmp_path: Path) -> None:
    """One model call: the program the opening asked for printed one number, which is submitted as printed."""
    client = ScriptedClient(["```python\nprint(48123 * 9177 - 600)\n```", "\\boxed{1}"])
    log = StepLog.create(directory=tmp_path)
    result = await arun(QuestionEnvironment("What is 48123 * 9177 minus 12% of 5,000?", gold="441624171",
                                            python=True), client, log=log,
                        agent=AgentConfig())
    assert result.answer == "441624171" and result.correct is True and result.steps == 1
    assert len(client.requests_seen) == 1  # the scripted second reply was never asked for
    calls = [r.tool for r in records(log, StepKind.TOOL_CALL)]
    assert [(c.name, c.source) for c in calls] == [("python", "code_block"), ("submit_answer", "program_output")]
    final = records(log, StepKind.FINAL)[0]
    assert final.data["source"] == "program_output" and final.data["last_result"] == "441624171"


async def test_answer_from_output_leaves_everything_but_one_printed_number_to_the_model(tmp_path: Path) -> None:
    """Two lines, words, an error: the output goes back to the model, which answers or fixes as before; and with
    the option off, one printed number does too."""
    cases = [("```python\nprint(1)\nprint(2)\n```", True), ("```python\nprint('the answer is 5')\n```", True),
             ("```python\nprint(1/0)\n```", True), ("```python\nprint(5)\n```", False),
             ("First the total.\n```python\nprint(5)\n```", True)]  # words around it: a step, not the answer
    for reply, enabled in cases:
        client = ScriptedClient([reply, "\\boxed{5}"])
        result = await arun(QuestionEnvironment("What is 2 + 3?", gold="5", python=True), client,
                            log=StepLog.create(directory=tmp_path), agent=AgentConfig(answer_from_output=enabled))
        assert AgentConfig().answer_from_output  # on by default, as measured
        assert result.answer == "5" and result.steps == 2, reply
        assert client.requests_seen[1]["messages"][-1]["content"].startswith("```output\n")


def test_program_answer_takes_one_number_as_printed() -> None:
    from peerstep.agent._policy import program_answer

    assert program_answer("  20.9\n") == "20.9" and program_answer("$1,000") == "$1,000"
    assert program_answer("-33") == "-33" and program_answer("1.6e-19") == "1.6e-19"
    assert program_answer("441624171.0") == "441624171" and program_answer("-2.00") == "-2"
    assert program_answer("2.50") == "2.50" and program_answer("10.05") == "10.05"
    for text in ("", "1\n2", "x = 5", "5 apples and 3 pears", "[stderr]\nwarning", "(no output)"):
        assert program_answer(text) is None, text


async def test_a_submission_written_as_the_tool_name_and_its_value_ends_the_run(tmp_path: Path) -> None:
    """The math set, 1.5B model: after its program printed 1677 it wrote {"submit_answer": 1677} twice, which the
    loop read as "no tool call", and it ran on to its step limit (8 calls) before the answer was forced."""
    compute = '{"name": "calculate", "arguments": {"expression": "893 + 569 + 625 - 410"}}'
    client = ScriptedClient([compute, '```json\n{\n  "submit_answer": 1677\n}\n```'])
    log = StepLog.create(directory=tmp_path)
    result = await arun(QuestionEnvironment("893 + 569 + 625 - 410 =", gold="1677"), client, log=log)
    assert result.answer == "1677" and result.correct is True and result.steps == 2
    calls = [r.tool for r in records(log, StepKind.TOOL_CALL)]
    assert [c.name for c in calls] == ["calculate", "submit_answer"]
