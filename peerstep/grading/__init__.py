"""Grading: does an answer match the gold answer, and what answer does a model reply state?

A leaf package: it imports nothing from the rest of peerstep but its errors and the registry (both in the
bottom layer), so environments, verifiers, strategies and the eval runner all grade with the same rules. A
checker is any ``(prediction, gold) -> bool``; the built-in ones, and any registered in
``peerstep.registry.CHECKERS``, are chosen by name with ``get_checker``:

``exact``
    Normalised text equality: Unicode NFKC, case folded, whitespace collapsed, one pair of surrounding quotes
    and a trailing full stop dropped. For answers whose form is the answer (a formula, a code, a word).
``numeric``
    One number compared with a tolerance, ``|p - g| <= atol + rtol * |g|`` (the rule of ``math.isclose``). The
    prediction may carry units or words ("9.81 m/s^2", "about 42 J"), thousands separators, a currency or percent
    sign, scientific notation in any common spelling or a fraction, but it must state exactly one standalone
    number: "3 or 4" is wrong, not lucky.
``math``
    Mathematical equivalence (``math_match``): ``\\frac{1}{2}`` = ``0.5``, ``1,000`` = ``1000``, ``x^2+2x`` =
    ``x*(x+2)``, sets in any order; text answers fall back to normalised equality. ``DEFAULT_CHECKER`` is one.
``short_answer``
    Short factual answers (names, places, dates, quantities), for question answering (``short_answer_match``).
``python``
    A function the user supplies, as ``"package.module:function"`` or ``"path/to/file.py:function"``.

Every built-in checker has ``normalise(answer)``: the canonical form of a submitted answer for it (a numeric
checker's is the one number stated, or None); ``normalise_answer`` works for any checker. ``stated_answer`` reads
the final answer a model states in plain text ("... is \\boxed{4727}", "the final answer is 12 apples.").

Numbers are read here and nowhere else: ``parse_number``, ``numbers`` and ``number_text`` (the one parser), and the
questions about how a number is written that the agent, the voters and the baselines ask: ``whole_number`` (the
text is one number and nothing else), ``is_bare_number`` (plainly written, as a bare reply), ``drop_zero_decimals``
("441624171.0" -> "441624171"), ``decimals_of`` (how precisely it is written) and ``last_number_text`` (a loose
last resort for a reply that states no answer).
"""

from peerstep.grading._extract import stated_answer
from peerstep.grading._limits import MAX_ANSWER_CHARS
from peerstep.grading._math import MathChecker, answers_equivalent, math_match
from peerstep.grading._numbers import (
    NumericChecker,
    decimals_of,
    drop_zero_decimals,
    is_bare_number,
    last_number_text,
    number_text,
    numbers,
    numeric_match,
    parse_number,
    whole_number,
)
from peerstep.grading._protocol import Checker, normalise_answer
from peerstep.grading._python import PythonChecker
from peerstep.grading._registry import CHECKER_NAMES, DEFAULT_CHECKER, get_checker, grade
from peerstep.grading._short import ShortAnswerChecker, short_answer_match
from peerstep.grading._text import ExactChecker, exact_match, normalise_text

__all__ = [
    "CHECKER_NAMES",
    "DEFAULT_CHECKER",
    "MAX_ANSWER_CHARS",
    "Checker",
    "ExactChecker",
    "MathChecker",
    "NumericChecker",
    "PythonChecker",
    "ShortAnswerChecker",
    "answers_equivalent",
    "decimals_of",
    "drop_zero_decimals",
    "exact_match",
    "get_checker",
    "grade",
    "is_bare_number",
    "last_number_text",
    "math_match",
    "normalise_answer",
    "normalise_text",
    "number_text",
    "numbers",
    "numeric_match",
    "parse_number",
    "short_answer_match",
    "stated_answer",
    "whole_number",
]
