"""The grader: stated answers, normalised answers, and one verdict per answer wherever it is graded."""

from __future__ import annotations

import pytest

from peerstep.grading import stated_answer

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
