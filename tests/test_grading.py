"""The grader: stated answers, normalised answers, and one verdict per answer wherever it is graded."""

from __future__ import annotations

import json
import re
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from peerstep._errors import InputError
from peerstep.environments import EnvironmentDataset, QuestionEnvironment, TaskInfo
from peerstep.environments.builtin import ScienceDataset, StaticTask, TaskListDataset
from peerstep.grading import (
    CHECKER_NAMES,
    DEFAULT_CHECKER,
    Checker,
    ExactChecker,
    MathChecker,
    NumericChecker,
    PythonChecker,
    ShortAnswerChecker,
    answers_equivalent,
    decimals_of,
    drop_zero_decimals,
    exact_match,
    get_checker,
    grade,
    is_bare_number,
    last_number_text,
    math_match,
    normalise_answer,
    numeric_match,
    parse_number,
    short_answer_match,
    stated_answer,
    whole_number,
)
from peerstep.verify import AnswerChecker, Candidate, PeerAgreement, TrajectoryView, majority_vote

# ------------------------------------------------------------------------------------------------- stated answer

STATED = [
    # boxed, the last one wins, nested braces kept
    ("the number of boxes is \\boxed{4727}.", "4727"),
    ("\\boxed{441624171}", "441624171"),
    ("So $x = \\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    ("First \\boxed{3}, but correcting myself: \\boxed{4}", "4"),
    ("The set is \\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
    ("**Final Answer**\n\\[\n\\boxed{12}\n\\]", "12"),
    ("\\boxed{\\text{Paris}}", "\\text{Paris}"),
    ("\\boxed{}  and then nothing", None),
    ("an unclosed \\boxed{12", None),
    # announced answers
    ("Final Answer: 42", "42"),
    ("final answer: 3.14", "3.14"),
    ("**Final Answer**: 9.81 m/s^2", "9.81 m/s^2"),
    ("**Final Answer:** **17**", "17"),
    ("So the final answer is 12 apples.", "12 apples"),
    ("Therefore, the answer is $\\frac{3}{4}$.", "\\frac{3}{4}"),
    ("The answer is **Paris**. It is the capital.", "Paris"),
    ("Thus the answer is 1,000.\nDone.", "1,000"),
    ("He needs $20.90. The answer is $20.90.", "$20.90"),
    ("Final Answer: The final answer is $12$. I hope it is correct.", "12"),
    ("Final answer:\n7", "7"),
    ("The answer is `x^2+2x`", "x^2+2x"),
    ("My final answer is 2.5e-3.", "2.5e-3"),
    ("The answer is {1, 2}.", "{1, 2}"),
    ("The answer is no.", "no"),
    ("the answer is: 5", "5"),
    ("I said the answer is 5, but the final answer is 6.", "6"),
    # no stated answer
    ("I think we need to compute 3*4", None),
    ("The result of the calculation is 4727.", None),
    ("4727", None),
    ("", None),
    ("   \n ", None),
    ("If the answer is 5, then the sum would be 10.", None),
    ("Let me check whether the answer is 12 by computing it.", None),
    ("The answer is not 5.", None),
    ("The answer is correct.", None),
    ("The answer is as follows:", None),
    ("The final answer is " + "very " * 60 + "long.", None),
    # actions, not answers
    ("```python\nprint(3 * 4)\n```\nThe answer is 12.", None),
    ("```\nx = 1\n```", None),
    ('{"name": "submit_answer", "arguments": {"answer": "12"}}', None),
    ('<tool_call>{"name": "calculate", "arguments": {"expression": "3*4"}}</tool_call> the answer is 12', None),
    ('```json\n{"name": "python", "parameters": {"code": "print(1)"}}\n```', None),
    # a prose fence is not an action
    ("```text\nworking\n```\nThe answer is 3.", "3"),
]


@pytest.mark.parametrize(("reply", "expected"), STATED)
def test_stated_answer(reply: str, expected: str | None) -> None:
    assert stated_answer(reply) == expected


def test_stated_answer_reads_the_end_of_a_huge_reply() -> None:
    reply = "blah " * 100_000 + "the answer is 7."
    assert stated_answer(reply) == "7"


# ----------------------------------------------------------------------------------------------------- normalise

NORMALISED = [
    (NumericChecker(), "Tom does not have enough money … He would need an additional $20.90.", "20.90"),
    (NumericChecker(), "  42 ", "42"),
    (NumericChecker(), "$1,000.", "1000"),
    (NumericChecker(), "1.6 × 10^-19 C", "1.6e-19"),
    (NumericChecker(), "\\frac{3}{4}", "3/4"),
    (NumericChecker(), "\\boxed{-7}", "-7"),
    (NumericChecker(), "9.81 m/s^2", "9.81"),
    (NumericChecker(), "12%", "12"),
    (NumericChecker(), "He has 3 apples and 4 pears", None),  # several numbers: ask for the one that is meant
    (NumericChecker(), "I don't know", None),
    (NumericChecker(), "1e999999999", None),  # an exponent no one means, and 10**huge would take minutes
    (NumericChecker(), "", None),
    (MathChecker(), "  \\frac{1}{2} ", "\\frac{1}{2}"),
    (MathChecker(), "   ", None),
    (ExactChecker(), " H2O ", "H2O"),
    (ShortAnswerChecker(), " Michael Collins\n", "Michael Collins"),
]


@pytest.mark.parametrize(("checker", "answer", "expected"), NORMALISED)
def test_normalise(checker: Checker, answer: str, expected: str | None) -> None:
    assert normalise_answer(checker, answer) == expected
    assert checker.normalise(answer) == expected  # type: ignore[attr-defined]


def test_normalise_answer_takes_any_callable() -> None:
    def plain(prediction: str, gold: str) -> bool:
        return prediction == gold

    assert normalise_answer(plain, "  yes \n") == "yes"
    assert normalise_answer(plain, "  ") is None
    assert isinstance(plain, Checker) and isinstance(DEFAULT_CHECKER, Checker)


# ---------------------------------------------------------------------------------------------------- checkers


@pytest.mark.parametrize(("prediction", "gold", "expected"), [
    ("H2O", "h2o", True), ("  'Fe'. ", "Fe", True), ("Ｆｅ", "Fe", True), ("Fe2", "Fe", False), ("", "Fe", False),
])
def test_exact(prediction: str, gold: str, expected: bool) -> None:
    assert exact_match(prediction, gold) is expected


@pytest.mark.parametrize(("prediction", "gold", "expected"), [
    ("9.81 m/s^2", "9.81", True),
    ("9.81 m s-2", "9.81", True),
    ("about 42 J", "42", True),
    ("1.6 × 10^-19 C", "1.602e-19", True),
    ("1.6*10**-19", "1.602e-19", True),
    (r"1.6 \times 10^{-19}", "1.602e-19", True),
    ("1,234.5", "1234.5", True),
    ("1\u202f234.5", "1234.5", True),
    ("1{,}234.5", "1234.5", True),
    ("3/4", "0.75", True),
    (r"\frac{3}{4}", "0.75", True),
    (r"\dfrac{-3}{4}", "-0.75", True),
    ("−40", "-40", True),
    (r"\boxed{12}", "12", True),
    (r"12\%", "12", True),
    (r"\$20.90", "20.9", True),
    ("CO2 weighs 44.01 g/mol", "44.01", True),
    ("3 or 4", "3", False),  # two numbers: ambiguous, never lucky
    ("3-4", "3", False),
    ("1,23", "123", False),
    ("no idea", "3", False),
    ("3", "three", False),  # a gold that is not a number never matches
    ("1.011", "1", False),
])
def test_numeric_default_tolerance(prediction: str, gold: str, expected: bool) -> None:
    assert numeric_match(prediction, gold, rtol=0.01) is expected


def test_numeric_tolerances() -> None:
    assert numeric_match("100.0000001", "100") and not numeric_match("100.001", "100")
    assert not numeric_match("0.004", "0", rtol=0.5)  # relative tolerance of zero is zero
    assert numeric_match("0.004", "0", atol=0.005)
    assert numeric_match("123456789012345678901", "123456789012345678901.0")  # exact, no float rounding
    assert not numeric_match("123456789012345678901", "123456789012345678902", rtol=0)
    assert NumericChecker(rtol=0.1)("109", "100") and not NumericChecker(rtol=0.1)("111", "100")
    for bad in (-0.1, float("nan"), float("inf"), "0.1", True):
        with pytest.raises(InputError, match="rtol"):
            NumericChecker(rtol=bad)  # type: ignore[arg-type]
    assert parse_number("6.02e23 per mol") == pytest.approx(6.02e23)
    assert parse_number("3 or 4") is None and parse_number("none") is None


# ------------------------------------------------------------------------- how a number is written (the shapes)
# The agent, the voters and the baselines ask these questions; they are answered here, with the exact rules their
# callers had, so no other package keeps a number regex.

def test_whole_number_is_the_text_being_one_number_and_nothing_else() -> None:
    assert whole_number("1,000") == 1000 and whole_number("\\frac{1}{2}") == Fraction(1, 2)
    assert whole_number("$20.90") == Fraction(209, 10) and whole_number("1.6e-19") == Fraction(16, 10**20)
    assert whole_number("12%") == 12
    for text in ("5 apples", "x = 5", "1 2", "", "(no output)"):
        assert whole_number(text) is None, text


@pytest.mark.parametrize(("text", "bare"), [
    ("42", True), (" 42.\n", True), ("$1,000", True), ("-2.5%", True), ("$ 20.90.", True),
    ("1.6e-19", False), ("\\boxed{42}", False), ("3/4", False), ("42 apples", False), ("x", False), ("", False),
    ("1 000", False), ("42!", False),
])
def test_is_bare_number(text: str, bare: bool) -> None:
    assert is_bare_number(text) is bare


@pytest.mark.parametrize(("text", "written"), [
    ("441624171.0", "441624171"), ("-2.00", "-2"), ("7", "7"), ("2.50", "2.50"), ("10.05", "10.05"),
    ("$5.0", "$5.0"), ("1,000.0", "1,000.0"), ("1e3", "1e3"), ("5.0 m", "5.0 m"), ("", ""),
])
def test_drop_zero_decimals_only_rewrites_a_plain_whole_float(text: str, written: str) -> None:
    assert drop_zero_decimals(text) == written


@pytest.mark.parametrize(("answer", "decimals"), [
    ("42", 0), ("3.14", 2), ("$1,000", 0), ("155467.20", 2), ("about 9.81 m/s^2", 2), ("1.5 or 2.25", 1),
    ("1/2", None), ("\\frac{1}{2}", None), ("1.6e-19", None), ("6.02E+23", None), ("Paris", None), ("", None),
])
def test_decimals_of(answer: str, decimals: int | None) -> None:
    assert decimals_of(answer) == decimals


@pytest.mark.parametrize(("reply", "number"), [
    ("First 12, then 1,250 in all.", "1250"),
    ("It drops to -3.5 degrees", "-3.5"),
    ("costs 20.", "20"),  # a trailing full stop is not a decimal point
    ("CO2", "2"),  # loose: glued numbers count, unlike ``numbers``
    ("1.6e-19", "-19"),  # loose: only the digits of scientific notation
    ("3/4", "4"),
    ("no digits here", None), ("", None),
])
def test_last_number_text_is_the_loose_last_resort(reply: str, number: str | None) -> None:
    assert last_number_text(reply) == number


@pytest.mark.parametrize(("prediction", "gold", "expected"), [
    ("1/2", "0.5", True),
    (r"\frac{3}{4}", "0.75", True),
    ("441,624,171", "441624171", True),
    ("The answer is 42.", "42", True),
    ("2^10", "1024", True),
    ("1.6 × 10^-19", "1.602e-19", False),  # tiny numbers are compared relatively, not within an absolute 1e-9
    ("1e-12", "0", True),
    ("63 or 64", "64", False),  # math-verify alone reads the last number of a text: a hedge would pass
    ("x**3*cos(x) + 3*x**2*sin(x)", "3*x**2*sin(x) + x**3*cos(x)", True),
    ("x^3 cos(x) + 3x^2 sin(x)", "3*x**2*sin(x) + x**3*cos(x)", True),
    ("$3x^2\\sin(x) + x^3\\cos(x)$", "3*x**2*sin(x) + x**3*cos(x)", True),
    ("3*x**2*cos(x)", "3*x**2*sin(x) + x**3*cos(x)", False),  # math-verify alone reads both as "3"
    ("$3x^2\\cos(x)$", "3*x**2*sin(x) + x**3*cos(x)", False),
    ("x + 1", "(x**2 - 1)/(x - 1)", True),
    ("x + 2", "(x**2 - 1)/(x - 1)", False),
    ("x^2+2x+1", "(x+1)^2", True),
    ("9^9^9", "x", False),
    ("x.n(5)", "x", False),
    ("[1, 2]", "[1,2]", True),
    ("(1, 2)", "(2, 1)", False),
    ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}", True),
    ("\\text{Paris}", "Paris", True),
    ("Paris", "paris", True),
])
def test_math(prediction: str, gold: str, expected: bool) -> None:
    assert math_match(prediction, gold) is expected


@pytest.mark.parametrize(("a", "b", "same"), [
    ("441,624,171", "441624171", True), ("0.5", "1/2", True), ("42", "43", False), ("", "1", False),
    (None, "1", False), ("1", None, False),
])
def test_answers_equivalent_is_math_match_that_takes_none(a: str | None, b: str | None, same: bool) -> None:
    assert answers_equivalent(a, b) is same


@pytest.mark.parametrize(("prediction", "gold", "expected"), [
    ("Michael Collins", "Michael Collins", True),
    ("michael collins, the command module pilot", "Michael Collins", True),
    ("Collins", "Michael Collins", False),
    ("August 13, 1961", "13 August 1961", True),
    ("13 Aug 1961", "13 August 1961", False),
    ("Reykjavik", "Reykjavík", True),
    ("16", "16th", True),
    ("the 16th president", "16th", True),
    ("10", "ten", True),
    ("7088 km", "7,088", True),
    ("7\u202f088 km", "7,088", True),
    ("New\u00a0York", "New York", True),
    ("1921 or 1922", "1921", False),
    ("It was one of several: Pisa, Florence, Rome, Venice, Milan, Naples, Turin, Genoa", "Pisa", False),
    ("", "Pisa", False),
])
def test_short_answer(prediction: str, gold: str, expected: bool) -> None:
    assert short_answer_match(prediction, gold) is expected


def test_get_checker_registry() -> None:
    assert set(CHECKER_NAMES) == {"exact", "numeric", "math", "short_answer", "python"}
    assert get_checker("numeric", rtol=0.05)("104", "100")
    assert get_checker("exact")("a", "A")
    assert get_checker("math") == DEFAULT_CHECKER and get_checker("numeric", rtol=0.1) == NumericChecker(rtol=0.1)
    with pytest.raises(InputError, match="unknown checker 'fuzzy'"):
        get_checker("fuzzy")
    with pytest.raises(InputError, match="does not take option"):
        get_checker("exact", rtol=0.1)


def test_python_checker_from_module_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mychecks_mod.py").write_text(
        "def close(prediction, gold):\n    return abs(float(prediction) - float(gold)) < 0.5\n"
        "def graded(prediction, gold):\n    return 0.5 if prediction else 1.0\n"
        "def one_arg(prediction):\n    return True\n"
        "NOT_CALLABLE = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    close = PythonChecker("mychecks_mod:close")
    assert close("3.2", "3") and not close("4", "3")
    assert not close("three", "3")  # the user's function raised on a malformed answer: wrong, not a crash
    assert not PythonChecker("mychecks_mod:graded")("x", "") and PythonChecker("mychecks_mod:graded")("", "")
    assert PythonChecker("mychecks_mod.py:close", base_dir=tmp_path)("3", "3")
    assert PythonChecker(str(tmp_path / "mychecks_mod.py") + ":close")("3", "3")
    assert close.normalise(" 3 ") == "3"
    cases = {
        "no_such_module_xyz:check": "no module named 'no_such_module_xyz'",
        "mychecks_mod:missing": "has no function 'missing'",
        "mychecks_mod:NOT_CALLABLE": "is not a function",
        "mychecks_mod:one_arg": "must accept two arguments",
        "mychecks_mod": "name the function too",
        "nothere.py:check": "no such file",
        "": "give the function",
    }
    for spec, message in cases.items():
        with pytest.raises(InputError, match=re.escape(message)):
            PythonChecker(spec, base_dir=tmp_path)
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(InputError, match=r"running .*broken\.py failed: RuntimeError: boom"):
        PythonChecker("broken.py:check", base_dir=tmp_path)
    assert "mychecks_mod" in sys.modules


def test_grade_is_false_without_an_answer_or_a_gold_or_when_the_answer_breaks_the_checker() -> None:
    def broken(prediction: str, gold: str) -> bool:
        raise ValueError("no")

    def unloadable(prediction: str, gold: str) -> bool:
        raise InputError("python checker 'x:check': no module named 'x'")

    assert grade("1", "1") and not grade(None, "1") and not grade("1", None)
    assert not grade("1", "1", broken)  # the answer made the checker raise: wrong
    with pytest.raises(InputError, match="no module"):
        grade("1", "1", unloadable)  # the checker cannot work at all: loud


@pytest.mark.parametrize("answer", [
    "1e999999999", "9" * 100_000, "x" * 1_000_000, "9^9^9^9^9", "(" * 5000 + "1" + ")" * 5000,
    "\\frac{" * 500 + "1" + "}{2}" * 500, "10^{99999999}", "1 × 10^99999999", "{" * 10_000,
])
def test_runaway_answers_are_graded_quickly(answer: str) -> None:
    start = time.monotonic()
    for checker in (DEFAULT_CHECKER, NumericChecker(), ExactChecker(), ShortAnswerChecker()):
        assert grade(answer, "1", checker) in (True, False)
        normalise_answer(checker, answer)
    stated_answer(f"The final answer is {answer}")
    stated_answer(f"\\boxed{{{answer}}}")
    assert time.monotonic() - start < 10


# ------------------------------------------------------------------------- one verdict, wherever it is graded
# Each row is graded four ways: the reward of an episode that submits it, the vote that groups it with the gold,
# the ``answer`` verifier and ``EnvironmentDataset.grade``. They must all give the row's verdict.

AGREEMENT: list[tuple[str, Checker, str, str, bool]] = [
    # math: the default checker, for a task without its own
    ("math", DEFAULT_CHECKER, "\\frac{1}{2}", "0.5", True),
    ("math", DEFAULT_CHECKER, "0.5", "\\frac{1}{2}", True),
    ("math", DEFAULT_CHECKER, "1,000", "1000", True),
    ("math", DEFAULT_CHECKER, "9.81 m/s^2", "9.81", True),
    ("math", DEFAULT_CHECKER, "12%", "12", True),
    ("math", DEFAULT_CHECKER, "12%", "0.12", True),  # math-verify reads a percent sign as /100
    ("math", DEFAULT_CHECKER, "{1, 2}", "{2, 1}", True),
    ("math", DEFAULT_CHECKER, "\\{1, 2\\}", "\\{2, 1\\}", True),
    ("math", DEFAULT_CHECKER, "{1, 3}", "{2, 1}", False),
    ("math", DEFAULT_CHECKER, "x^2+2x", "x*(x+2)", True),
    ("math", DEFAULT_CHECKER, "x^2+2x", "x*(x+3)", False),
    ("math", DEFAULT_CHECKER, "He would need an additional $20.90.", "20.90", True),
    ("math", DEFAULT_CHECKER, "3 or 4", "4", False),
    ("math", DEFAULT_CHECKER, "1 and 2", "{1, 2}", False),
    ("math", DEFAULT_CHECKER, "Paris", "paris", True),
    # numeric
    ("numeric", NumericChecker(), "\\frac{1}{2}", "0.5", True),
    ("numeric", NumericChecker(), "1,000", "1000", True),
    ("numeric", NumericChecker(), "9.81 m/s^2", "9.81", True),
    ("numeric", NumericChecker(), "12%", "12", True),
    ("numeric", NumericChecker(), "12%", "0.12", False),
    ("numeric", NumericChecker(), "{1, 2}", "{2, 1}", False),
    ("numeric", NumericChecker(), "x^2+2x", "x*(x+2)", False),
    ("numeric", NumericChecker(), "He would need an additional $20.90.", "20.90", True),
    ("numeric", NumericChecker(), "3 or 4", "4", False),
    ("numeric", NumericChecker(rtol=0.01), "1.6 × 10^-19 C", "1.602e-19", True),
    ("numeric", NumericChecker(), "1.6 × 10^-19 C", "1.602e-19", False),
    # exact
    ("exact", ExactChecker(), "\\frac{1}{2}", "0.5", False),
    ("exact", ExactChecker(), "1,000", "1000", False),
    ("exact", ExactChecker(), "  'Paris'. ", "paris", True),
    ("exact", ExactChecker(), "{1, 2}", "{2, 1}", False),
    ("exact", ExactChecker(), "x^2+2x", "x*(x+2)", False),
    # short answer
    ("short_answer", ShortAnswerChecker(), "1,000", "1000", True),
    ("short_answer", ShortAnswerChecker(), "12%", "12", True),
    ("short_answer", ShortAnswerChecker(), "9.81 m/s^2", "9.81", False),
    ("short_answer", ShortAnswerChecker(), "He would need an additional $20.90.", "20.90", True),
    ("short_answer", ShortAnswerChecker(), "Michael Collins, the command module pilot", "Michael Collins", True),
    ("short_answer", ShortAnswerChecker(), "1921 or 1922", "1921", False),
    ("short_answer", ShortAnswerChecker(), "\\frac{1}{2}", "0.5", False),
]


def _submit(answer: str) -> dict[str, Any]:
    return {"role": "assistant", "content": "",
            "tool_calls": [{"id": "c1", "type": "function",
                            "function": {"name": "submit_answer", "arguments": json.dumps({"answer": answer})}}]}


async def _reward(env: QuestionEnvironment, answer: str) -> float:
    await env.reset()
    for _ in range(3):  # an environment may ask once for the answer in its graded form; the same answer then counts
        _, reward, done, _ = await env.step(_submit(answer))
        if done:
            return reward
    raise AssertionError("the episode did not end on a submitted answer")


class _Dataset(EnvironmentDataset):
    """A dataset that only says how to make its environment: ``grade`` must find the checker there."""

    def __init__(self, gold: str, checker: Checker) -> None:
        self.gold, self._checker = gold, checker

    def __len__(self) -> int:
        return 1

    def info(self, index: int) -> TaskInfo:
        return TaskInfo(task_id="t", question="q", gold=self.gold)

    def make(self, index: int) -> QuestionEnvironment:
        return QuestionEnvironment("q", gold=self.gold, tools=[], checker=self._checker)


@pytest.mark.parametrize(("name", "checker", "prediction", "gold", "expected"), AGREEMENT,
                         ids=[f"{r[0]}:{r[2]}~{r[3]}" for r in AGREEMENT])
async def test_reward_vote_verifier_verdict_and_grade_agree(name: str, checker: Checker, prediction: str, gold: str,
                                                            expected: bool) -> None:
    assert checker(prediction, gold) is expected  # the row's verdict, from the checker itself
    env = QuestionEnvironment("q", gold=gold, tools=[], checker=checker)
    assert env.checker is checker
    assert await _reward(env, prediction) == (1.0 if expected else 0.0)  # reward
    vote = majority_vote([Candidate(trajectory_id=0, answer=gold), Candidate(trajectory_id=1, answer=prediction)],
                         equivalent=checker)
    assert (len(vote.groups) == 1) is expected  # vote grouping (the first answer plays the gold)
    alone = majority_vote([Candidate(trajectory_id=0, answer=prediction)], equivalent=checker)
    assert grade(alone.answer, gold, checker) is expected  # the aggregate verdict on the decided answer
    view = TrajectoryView(trajectory_id=0, question="q", answer=prediction, gold=gold, finished=True)
    assert (await AnswerChecker(checker).score(view)).score == (1.0 if expected else 0.0)  # verifier
    peers = TrajectoryView(trajectory_id=1, question="q", answer=prediction, peer_answers=[gold], finished=True)
    assert (await PeerAgreement(checker).score(peers)).score == (1.0 if expected else 0.0)
    listed = TaskListDataset([StaticTask("t", "q", gold, checker, tools=list)])
    assert listed.grade(0, prediction) is expected and listed.checker(0) is listed.make(0).checker is checker
    assert _Dataset(gold, checker).grade(0, prediction) is expected  # eval grade through the environment's checker


def test_every_environment_exposes_the_checker_of_its_reward() -> None:
    assert QuestionEnvironment("q").checker is DEFAULT_CHECKER
    science = ScienceDataset(seed=0, limit=2, python=False)
    assert isinstance(science.checker(0), NumericChecker) and science.make(0).checker is science.checker(0)


def test_aviary_calculator_grades_by_aviarys_own_rule() -> None:
    pytest.importorskip("aviary.envs.gsm8k")
    from peerstep.environments.aviary import AviaryCalculatorChecker, aviary_calculator

    ds = aviary_calculator()
    checker = ds.checker(0)
    assert isinstance(checker, AviaryCalculatorChecker) and ds.make(0).checker is checker
    assert ds.grade(0, "408") and ds.grade(0, "408.00001") and not ds.grade(0, "408 bottles")
    assert normalise_answer(checker, "408 bottles") == "408"
