"""Numbers in answers: the one number parser of peerstep, and the ``numeric`` checker built on it.

A prediction may carry units or words ("9.81 m/s^2", "about 42 J", "He would need an additional $20.90."),
thousands separators ("1,000", "1 000" with a thin space, LaTeX's "1{,}000"), a currency sign or a percent sign,
scientific notation in any common spelling ("1.6e-19", "1.6 × 10^-19", "1.6*10**-19", "1.6 \\times 10^{-19}"), a
fraction ("3/4", "\\frac{3}{4}") or a ``\\boxed{}``. It states a number only when it states exactly one standalone
number: "3 or 4" states none (an ambiguous answer is wrong, not lucky), and a number glued to a letter, ``^`` or
``_`` is part of a unit or a name ("m/s^2", "CO2", "cm3").

Beside the parser, the few questions about how a number is *written* that the agent, the voters and the baselines
ask (``whole_number``, ``is_bare_number``, ``drop_zero_decimals``, ``decimals_of``, ``last_number_text``) live here
too, so no other package keeps a number regex of its own.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

from peerstep._errors import InputError
from peerstep.grading._limits import clip

__all__ = ["NumericChecker", "decimals_of", "drop_zero_decimals", "is_bare_number", "last_number_text", "number_text",
           "numbers", "numeric_match", "parse_number", "whole_number"]

MAX_EXPONENT = 400  # |exponent| above this is no answer anyone means, and 10**huge would take minutes to build

_SPACES = str.maketrans({"−": "-", "–": "-", "\u2009": "", "\u202f": "", "\u00a0": ""})
# a mantissa: digits with optional thousands commas and decimals, or a bare decimal fraction
_MANTISSA = r"(?:\d{1,3}(?:,\d{3})+(?:\.\d*)?|\d+(?:\.\d*)?|\.\d+)"
_SIGN = r"[-+]?"
_TIMES_TEN = re.compile(
    rf"(?P<m>{_SIGN}{_MANTISSA})\s*(?:[x×*·]|\\times|\\cdot)\s*10\s*(?:\^|\*\*)\s*\{{?\s*(?P<e>{_SIGN}\d+)\s*\}}?"
)
_NUMBER = re.compile(rf"(?P<n>{_SIGN}{_MANTISSA}(?:[eE]{_SIGN}\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?)")
_GLUED_BEFORE = re.compile(r"(?:[^\W\d]|[_^])$|\*\*$")
# how a number is written, for the helpers after ``whole_number`` (each keeps the exact rule its caller had)
_BARE_NUMBER = re.compile(r"\$?\s*-?[\d,]*\d(?:\.\d+)?\s*%?\.?")
_ZERO_DECIMALS = re.compile(r"^(-?\d+)\.0+$")
_DECIMALS = re.compile(r"\d[\d,]*(?:\.(\d+))?")
_EXACT_FORM = re.compile(r"\d\s*/\s*\d|frac|[eE][+-]?\d")
_LOOSE_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
# LaTeX spellings of plain numbers, rewritten before reading: \frac{1}{2} -> 1/2, 1{,}000 -> 1,000, \$ -> $, ...
_LATEX = [
    (re.compile(r"\\boxed\s*\{([^{}]*)\}"), r"\1"),
    (re.compile(r"\\[dt]?frac\s*\{\s*(-?\d+(?:\.\d+)?)\s*\}\s*\{\s*(\d+(?:\.\d+)?)\s*\}"), r"\1/\2"),
    (re.compile(r"\\(?:text|mathrm|textbf|mathbf|operatorname)\s*\{([^{}]*)\}"), r" \1 "),
    (re.compile(r"\^\s*\{?\s*\\circ\s*\}?"), " "),
    (re.compile(r"\{,\}"), ","),
    (re.compile(r"(?<=\d)\\[,;!: ](?=\d{3}\b)"), ""),
    (re.compile(r"\\left|\\right|\\[,;!: ]"), " "),
    (re.compile(r"\\([$%])"), r"\1"),
]


def _to_fraction(token: str) -> Fraction | None:
    t = token.replace(",", "").replace(" ", "")
    exponent = re.search(r"[eE]([-+]?\d+)", t)
    if exponent is not None and abs(int(exponent.group(1))) > MAX_EXPONENT:
        return None
    try:
        if "/" in t:
            num, den = t.split("/", 1)
            return Fraction(num) / Fraction(den)
        return Fraction(t)
    except (ValueError, ZeroDivisionError):
        return None


def _canonical(token: str) -> str:
    """A number token without thousands separators, a plus sign or a final point ("+1,000." -> "1000")."""
    token = token.replace(",", "").replace(" ", "").lstrip("+")
    return re.sub(r"\.(?=$|[eE/])", "", token)


def _plain(text: str) -> str:
    text = clip(text).translate(_SPACES)
    for pattern, replacement in _LATEX:
        text = pattern.sub(replacement, text)
    return text.replace("$", "").replace("%", "")


def _scan(text: str) -> tuple[str, list[tuple[int, int, Fraction, str]]]:
    """``text`` made plain, and its standalone numbers: (start, end, value, how it is written), in order."""
    text = _plain(text)
    found: list[tuple[int, int, Fraction, str]] = []

    def fold(match: re.Match[str]) -> str:
        mantissa, exponent = match.group("m"), int(match.group("e"))
        value = _to_fraction(mantissa)
        if value is not None and abs(exponent) <= MAX_EXPONENT:
            found.append((match.start(), match.end(), value * Fraction(10) ** exponent,
                          f"{_canonical(mantissa)}e{exponent}"))
        return " " * len(match.group(0))  # keep offsets so the glued-before test below still sees the context

    rest = _TIMES_TEN.sub(fold, text)
    for match in _NUMBER.finditer(rest):
        if _GLUED_BEFORE.search(rest[: match.start()]):
            continue
        value = _to_fraction(match.group("n"))
        if value is not None:
            found.append((match.start(), match.end(), value, _canonical(match.group("n"))))
    return text, sorted(found, key=lambda f: f[0])


def numbers(text: str) -> list[Fraction]:
    """Every standalone number ``text`` states, in order (scientific notation folded into one number each)."""
    return [value for _, _, value, _ in _scan(text)[1]]


def parse_number(text: str) -> Fraction | None:
    """The single number ``text`` states, or None when it states none or several (an ambiguous answer)."""
    found = _scan(text)[1]
    return found[0][2] if len(found) == 1 else None


def number_text(text: str) -> str | None:
    """The single number ``text`` states, as written but canonical ("$1,000." -> "1000"), or None (none/several)."""
    found = _scan(text)[1]
    return found[0][3] if len(found) == 1 else None


def whole_number(text: str) -> Fraction | None:
    """The number ``text`` is when it is nothing else ("1,000", "\\frac{1}{2}", "$20.90", "12%", "1.6e-19")."""
    plain, found = _scan(text)
    if len(found) != 1:
        return None
    start, end, value, _ = found[0]
    return value if not re.search(r"\w", plain[:start] + plain[end:]) else None


def is_bare_number(text: str) -> bool:
    """Whether ``text`` (stripped) is one plainly written number and nothing else: digits with optional thousands
    commas, decimals and a minus sign, an optional ``$`` before, an optional ``%`` and full stop after ("42", "$1,000.",
    "-2.5%"). Narrower than ``whole_number``: no LaTeX, fraction or scientific notation, which a reply that is
    "just the number" does not use."""
    return _BARE_NUMBER.fullmatch(text.strip()) is not None


def drop_zero_decimals(text: str) -> str:
    """``text`` written as the integer it is when it is a plain decimal whose decimals are all zeros
    ("441624171.0" -> "441624171", "-2.00" -> "-2"); anything else is returned unchanged ("2.50", "$5.0", "1e3")."""
    return _ZERO_DECIMALS.sub(r"\1", text)


def decimals_of(answer: str) -> int | None:
    """How many decimals the first number in ``answer`` is written with ("3.14" -> 2, "$1,000" -> 0); None when
    ``answer`` has no digits or is written as a fraction or in scientific notation ("1/2", "\\frac{1}{2}",
    "1.6e-19"), forms that say nothing about rounding and compare exactly."""
    m = _DECIMALS.search(answer)
    if m is None or _EXACT_FORM.search(answer):
        return None
    return len(m.group(1) or "")


def last_number_text(text: str) -> str | None:
    """The last run of digits in ``text`` read as a number, thousands commas dropped ("... so 1,250 in all." ->
    "1250"); None when ``text`` has no digit.

    A loose last resort for a model reply that states no answer (``stated_answer`` is None): unlike ``numbers`` it
    takes a number glued to a word ("CO2" -> "2") and reads only the digits of scientific notation or a fraction
    ("1.6e-19" -> "-19", "3/4" -> "4"). Grade with a checker, never with this."""
    found = _LOOSE_NUMBER.findall(text)
    return found[-1].replace(",", "") if found else None


def _check_tolerance(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise InputError(f"numeric checker: {name} must be a finite number >= 0, got {value!r}")
    return float(value)


def numeric_match(prediction: str, gold: str, *, rtol: float = 1e-6, atol: float = 0.0) -> bool:
    """True when the one number in ``prediction`` is within ``atol + rtol * |gold|`` of the gold number.

    The rule of ``math.isclose`` and ``numpy.isclose``, computed exactly (no float rounding of large integers). A
    gold answer that is not a number never matches: that is a broken task, and saying "wrong" is safer than
    guessing. Use ``atol`` when the gold can be zero or near it, since a relative tolerance of zero is zero.
    """
    ref = parse_number(gold)
    pred = parse_number(prediction)
    if ref is None or pred is None:
        return False
    return abs(pred - ref) <= Fraction(atol) + Fraction(rtol) * abs(ref)


class NumericChecker:
    """``numeric_match`` with fixed tolerances; they are validated here so a bad option fails at load time."""

    def __init__(self, rtol: float = 1e-6, atol: float = 0.0) -> None:
        self.rtol = _check_tolerance("rtol", rtol)
        self.atol = _check_tolerance("atol", atol)

    def __call__(self, prediction: str, gold: str) -> bool:
        return numeric_match(prediction, gold, rtol=self.rtol, atol=self.atol)

    def normalise(self, answer: str) -> str | None:
        """The one number ``answer`` states ("He would need an additional $20.90." -> "20.90"); None if none/several."""
        return number_text(answer)

    def __repr__(self) -> str:
        return f"NumericChecker(rtol={self.rtol}, atol={self.atol})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NumericChecker) and (self.rtol, self.atol) == (other.rtol, other.atol)

    def __hash__(self) -> int:
        return hash((NumericChecker, self.rtol, self.atol))
