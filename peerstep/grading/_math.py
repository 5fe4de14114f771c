"""The ``math`` checker: mathematical equivalence, the default for a task without its own checker.

Numbers are compared as numbers (``1,000`` = ``1000.0``, ``\\frac{1}{2}`` = ``0.5``); other answers go to
math-verify (the Hugging Face library used to grade math benchmarks: ``2^{10}`` = ``1024``, ``\\{1, 2\\}`` =
``\\{2, 1\\}``), and plain-text formulas with variables are compared as functions ("x^2+2x" = "x*(x+2)"), since
math-verify reads plain text by extracting its numbers. Words fall back to normalised text equality.
"""

from __future__ import annotations

import logging
import math
import random
import re
import threading
from fractions import Fraction
from functools import lru_cache
from typing import Any

from peerstep.grading._limits import MAX_EXPRESSION_CHARS, MAX_MATH_CHARS, clip
from peerstep.grading._numbers import numbers, whole_number
from peerstep.grading._protocol import stripped
from peerstep.grading._text import exact_match

__all__ = ["MathChecker", "answers_equivalent", "math_match"]

log = logging.getLogger(__name__)

MATH_RTOL = Fraction(1, 10**6)  # two numbers this close are the same answer (float rounding, "0.333333" for 1/3)
MATH_ATOL = Fraction(1, 10**9)  # ... and a number this close to a gold of exactly zero

_FUNCTIONS = ("sin", "cos", "tan", "cot", "sec", "csc", "asin", "acos", "atan", "sinh", "cosh", "tanh", "exp",
              "log", "ln", "sqrt", "Abs", "abs", "pi")
_PLAIN_CHARS = re.compile(r"[\w\s+\-*/^().,]*")
_VARIABLE = re.compile(r"[A-Za-z](?:_?\d{1,2})?")
_HUGE_POWER = re.compile(r"(?:\*\*|\^)\s*\(?\s*[-+]?\d{3,}|!")
_ATTRIBUTE_DOT = re.compile(r"\.(?!\d)|(?<=[A-Za-z_)])\s*\.")  # a dot that is not a decimal point
_TEXT_ONLY = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}")  # "\text{Paris}" is "Paris"
_WORD = re.compile(r"(?<!\\)\b[A-Za-z]{2,}\b")  # a word, not a LaTeX command (\frac) or a variable


# ----------------------------------------------------------------------------------------------- math-verify


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@lru_cache(maxsize=4096)
def _parse(text: str, timeouts: bool) -> tuple[Any, ...]:
    from math_verify import parse

    return tuple(parse(text, parsing_timeout=5 if timeouts else None))


_POWER = re.compile(r"\^|\*\*")
_BIG_FACTORIAL = re.compile(r"(?:[)}]|\d{4,})\s*!")
MAX_LITERAL_EXPONENT = 1000  # 2^{1000} is an answer; 10^{99999999} is an attack


def _exponent(text: str, start: int) -> str:
    """The exponent that begins at ``start`` (just after ``^`` or ``**``): a braced or parenthesised group, or a
    run of digits, letters and points."""
    text = text[start:].lstrip()
    if text[:1] in ("{", "("):
        close = {"{": "}", "(": ")"}[text[0]]
        depth = 0
        for i, c in enumerate(text):
            depth += c == text[0]
            depth -= c == close
            if depth == 0:
                return text[1:i]
        return text[1:]
    match = re.match(r"[-+]?[\w.]*", text)
    return match.group(0) if match else ""


def _too_big(text: str) -> bool:
    """Would evaluating ``text`` build a gigantic number (``10^{10^{10}}``, ``(10^{10})!``, ``10^{99999999}``)?

    sympy would then hold the interpreter for minutes, and math-verify's timeout works only in the main thread.
    """
    if _BIG_FACTORIAL.search(text):
        return True
    for match in _POWER.finditer(text):
        exponent = _exponent(text, match.end())
        if _POWER.search(exponent) or "!" in exponent:
            return True  # a power tower
        digits = re.fullmatch(r"\s*[-+]?\s*(\d+)(?:\.\d*)?\s*", exponent)
        if digits is not None and len(digits.group(1)) > len(str(MAX_LITERAL_EXPONENT)):
            return True
        if digits is not None and int(digits.group(1)) > MAX_LITERAL_EXPONENT:
            return True
    return False


def _delimited(text: str) -> str:
    """``text`` as math-verify should see it: a bare formula ("{1, 2}", "[1,2]", "2^10") in ``$...$``.

    Without delimiters math-verify reads only the last number of a text, so "{1, 2}" would be 2 and "1 and 2"
    would equal it. Prose (a word of two or more letters that is not a LaTeX command) is left as it is.
    """
    if "$" in text or "\\(" in text or "\\[" in text or "\\boxed" in text or _WORD.search(text):
        return text
    return f"${text}$"


def _math_verify(prediction: str, gold: str) -> bool:
    """math-verify's verdict. Its timeouts use ``signal.alarm``, which only works in the main thread, so elsewhere
    it runs without them; that is why answers longer than ``MAX_MATH_CHARS`` never reach it."""
    if len(prediction) > MAX_MATH_CHARS or len(gold) > MAX_MATH_CHARS or _too_big(prediction) or _too_big(gold):
        return False
    from math_verify import verify

    prediction, gold = _delimited(prediction), _delimited(gold)
    timeouts = _in_main_thread()
    try:
        gold_parsed, pred_parsed = _parse(gold, timeouts), _parse(prediction, timeouts)
        if not gold_parsed or not pred_parsed:
            return False
        return bool(verify(list(gold_parsed), list(pred_parsed), timeout_seconds=5 if timeouts else None))
    except Exception as exc:  # math-verify and sympy raise many kinds on odd input: not equivalent
        log.debug("math-verify failed on %r vs %r: %s", prediction[:80], gold[:80], exc)
        return False


# --------------------------------------------------------------------------------------------------- numbers


def _same_number(a: Fraction, gold: Fraction) -> bool:
    """Within a relative 1e-6 of the gold; a gold of zero takes an absolute 1e-9 (1.6e-19 is not 1.602e-19)."""
    return abs(a - gold) <= (MATH_RTOL * abs(gold) if gold else MATH_ATOL)


# --------------------------------------------------------------------------------------------------- formulas


def _plain_expression(text: str) -> Any:
    """``text`` as a sympy expression when it is a plain-text formula ("3*x**2*sin(x)", "x^2 + 2x"), else None.

    sympy's parser evaluates code, so the input is first restricted to arithmetic characters, single-letter
    variables and a short list of function names (no attributes, no dunder names, no huge literal exponents), and
    parsed unevaluated.
    """
    t = text.strip().rstrip(".").strip()
    if (not t or len(t) > MAX_EXPRESSION_CHARS or not _PLAIN_CHARS.fullmatch(t) or "__" in t
            or _HUGE_POWER.search(t) or _ATTRIBUTE_DOT.search(t) or _too_big(t)):
        return None
    names = re.findall(r"[A-Za-z_]\w*", t)
    if not names or any(n not in _FUNCTIONS and not _VARIABLE.fullmatch(n) for n in names):
        return None
    import sympy
    from sympy.parsing.sympy_parser import (
        convert_xor,
        implicit_multiplication_application,
        parse_expr,
        standard_transformations,
    )

    local: dict[str, Any] = {n: sympy.Symbol(n) for n in names if _VARIABLE.fullmatch(n) and n not in ("E", "I")}
    local.update({"ln": sympy.log, "abs": sympy.Abs, "E": sympy.E, "I": sympy.I})
    try:
        expr = parse_expr(t, local_dict=local, evaluate=False,
                          transformations=(*standard_transformations, implicit_multiplication_application,
                                           convert_xor))
    except Exception:  # sympy's parser raises many kinds (SyntaxError, TypeError, TokenError...): not a formula
        return None
    return expr if isinstance(expr, sympy.Expr) else None  # "1,2" is a tuple, "x = 1" an equation: not formulas


def _same_function(a: Any, b: Any) -> bool:
    """Numerically equal at several random points (a sympy identity test can hang; evaluation does not)."""
    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    rng = random.Random(12345)
    agreed = 0
    for _ in range(6):
        point = {s: rng.uniform(0.3, 2.7) for s in symbols}
        try:
            va, vb = complex(a.evalf(20, subs=point)), complex(b.evalf(20, subs=point))
        except (TypeError, ValueError, ArithmeticError):
            continue  # a pole or an undefined value at this point: try another
        if not all(map(math.isfinite, (va.real, va.imag, vb.real, vb.imag))):
            continue
        if abs(va - vb) > 1e-8 * max(1.0, abs(va), abs(vb)):
            return False
        agreed += 1
    return agreed >= 3


def _latex(expr: Any) -> str:
    import sympy

    return f"${sympy.latex(expr)}$"


# ------------------------------------------------------------------------------------------------------ checker


def math_match(prediction: str, gold: str) -> bool:
    """Mathematical equivalence: numbers as numbers, formulas as functions, the rest by math-verify, then text.

    - a gold that is one number matches a prediction stating that one number, with words or units around it
      ("The answer is 1,000." for ``1000``); a prediction that states several numbers in prose ("3 or 4") is a
      hedge and wrong, whichever one is right;
    - a gold written as a plain-text formula with variables ("3*x**2*sin(x) + x**3*cos(x)") is compared as a
      function, by evaluation at random points, against the prediction parsed the same way (or, when the prediction
      is LaTeX, by math-verify against the gold rendered as LaTeX);
    - otherwise math-verify decides (``2^{10}`` = ``1024``, sets, intervals, LaTeX), after normalised text
      equality, which also decides answers that are words.
    """
    prediction, gold = clip(prediction).strip(), clip(gold).strip()
    if not prediction or not gold:
        return False
    if exact_match(_TEXT_ONLY.sub(r"\1", prediction), _TEXT_ONLY.sub(r"\1", gold)):
        return True
    gold_number = whole_number(gold)
    if gold_number is not None:
        stated = numbers(prediction)
        if len(stated) == 1 and _same_number(stated[0], gold_number):
            return True
        if len(stated) > 1 and _WORD.search(prediction):
            return False  # "3 or 4", "between 63 and 64": a hedge is wrong even when one of its numbers is right
        return _math_verify(prediction, gold)
    gold_expr = _plain_expression(gold)
    if gold_expr is not None and gold_expr.free_symbols:
        pred_expr = _plain_expression(prediction)
        if pred_expr is not None:
            return _same_function(gold_expr, pred_expr)
        if "\\" in prediction or "$" in prediction or "{" in prediction:  # LaTeX: "x^{2}+2x", "\frac{x}{2}"
            return _math_verify(prediction, _latex(gold_expr))
        return False
    pred_expr = _plain_expression(prediction)
    if pred_expr is not None and pred_expr.free_symbols and ("\\" in gold or "$" in gold):
        return _math_verify(_latex(pred_expr), gold)
    return _math_verify(prediction, gold)


def answers_equivalent(prediction: str | None, gold: str | None) -> bool:
    """``math_match``, where a missing answer (None) matches nothing: the default equivalence of votes."""
    if prediction is None or gold is None:
        return False
    return math_match(prediction, gold)


class MathChecker:
    """``math_match`` as a checker object; ``DEFAULT_CHECKER`` is one."""

    def __call__(self, prediction: str, gold: str) -> bool:
        return math_match(prediction, gold)

    def normalise(self, answer: str) -> str | None:
        return stripped(answer)

    def __repr__(self) -> str:
        return "MathChecker()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MathChecker)

    def __hash__(self) -> int:
        return hash(MathChecker)
