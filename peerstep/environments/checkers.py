"""Answer checkers: does a submitted answer match the gold answer? Each is a ``(prediction, gold) -> bool``.

Datasets and task files choose a checker by name with ``get_checker(name, **options)``:

``exact``
    Normalised text equality: Unicode NFKC, case folded, whitespace collapsed, one pair of surrounding quotes
    and a trailing full stop dropped. For answers whose form is the answer (a formula, a code, a word).
``numeric``
    One number compared with a tolerance, ``|p - g| <= atol + rtol * |g|`` (the rule of ``math.isclose`` and
    ``numpy.isclose``). The prediction may carry units or words ("9.81 m/s^2", "about 42 J"), thousands
    separators, scientific notation in any common spelling ("1.6e-19", "1.6 × 10^-19", "1.6*10**-19") or a
    fraction ("3/4"), but it must state exactly one standalone number: "3 or 4" is wrong, not lucky.
``math``
    Mathematical equivalence through math-verify (``peerstep.verify.answers_equivalent``): ``1/2`` = ``0.5``,
    ``\\frac{3}{4}`` = ``0.75``; text answers fall back to normalised equality.
``short_answer``
    Short factual answers (names, places, dates, quantities), for question answering; the rule is documented on
    ``short_answer_match``.
``python``
    A function the user supplies, as ``"package.module:function"`` or ``"path/to/file.py:function"`` (the
    function name defaults to ``check``). It is resolved when the checker is built, so a typo fails at load time
    with a clear message rather than as a silent 0 reward in the middle of an evaluation.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import math
import random
import re
import sys
import unicodedata
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

from peerstep._errors import InputError

__all__ = [
    "CHECKER_NAMES",
    "Checker",
    "ExactChecker",
    "MathChecker",
    "NumericChecker",
    "PythonChecker",
    "ShortAnswerChecker",
    "exact_match",
    "get_checker",
    "math_match",
    "numeric_match",
    "parse_number",
    "short_answer_match",
]

log = logging.getLogger(__name__)

Checker = Callable[[str, str], bool]

MAX_ANSWER_CHARS = 2000  # longer predictions are cut: no checker should spend seconds on a runaway answer

# ---------------------------------------------------------------------------------------------------------- exact


def _normalise_text(text: str) -> str:
    t = unicodedata.normalize("NFKC", text[:MAX_ANSWER_CHARS]).casefold().strip()
    t = re.sub(r"\s+", " ", t).rstrip(".").strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'`":
        t = t[1:-1].strip()
    return t.rstrip(".").strip()


def exact_match(prediction: str, gold: str) -> bool:
    """Normalised text equality (case, Unicode form, whitespace, surrounding quotes, trailing full stop)."""
    return _normalise_text(prediction) == _normalise_text(gold)


# -------------------------------------------------------------------------------------------------------- numeric

_MINUS = str.maketrans({"−": "-", "–": "-", "\u2009": "", "\u202f": "", "\u00a0": ""})
# a mantissa: digits with optional thousands commas and decimals, or a bare decimal fraction
_MANTISSA = r"(?:\d{1,3}(?:,\d{3})+(?:\.\d*)?|\d+(?:\.\d*)?|\.\d+)"
_SIGN = r"[-+]?"
# "1.6 × 10^-19", "1.6x10^{-19}", "1.6*10**-19", "1.6 \times 10^{-19}", "1.6·10⁻¹⁹" is not supported (rare)
_TIMES_TEN = re.compile(
    rf"(?P<m>{_SIGN}{_MANTISSA})\s*(?:[x×*·]|\\times|\\cdot)\s*10\s*(?:\^|\*\*)\s*\{{?\s*(?P<e>{_SIGN}\d+)\s*\}}?"
)
_NUMBER = re.compile(rf"(?P<n>{_SIGN}{_MANTISSA}(?:[eE]{_SIGN}\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?)")
# a number glued to a letter, '^' or '_' is part of a unit or a name ("m/s^2", "CO2", "cm3", "s-1")
_GLUED_BEFORE = re.compile(r"(?:[^\W\d]|[_^])$|\*\*$")


def _to_fraction(token: str) -> Fraction | None:
    t = token.replace(",", "").replace(" ", "")
    try:
        if "/" in t:
            num, den = t.split("/", 1)
            return Fraction(num) / Fraction(den)
        return Fraction(t)
    except (ValueError, ZeroDivisionError):
        return None


def _numbers(text: str) -> list[Fraction]:
    """The standalone numbers in ``text``, with scientific notation folded into one number each."""
    text = text.translate(_MINUS)
    found: list[tuple[int, Fraction]] = []

    def fold(match: re.Match[str]) -> str:
        mantissa = _to_fraction(match.group("m"))
        if mantissa is not None:
            found.append((match.start(), mantissa * Fraction(10) ** int(match.group("e"))))
        return " " * len(match.group(0))  # keep offsets so the glued-before test below still sees the context

    rest = _TIMES_TEN.sub(fold, text)
    for match in _NUMBER.finditer(rest):
        if _GLUED_BEFORE.search(rest[: match.start()]):
            continue
        value = _to_fraction(match.group("n"))
        if value is not None:
            found.append((match.start(), value))
    return [v for _, v in sorted(found, key=lambda p: p[0])]


def parse_number(text: str) -> Fraction | None:
    """The single number a prediction states, or None when it states none or several (an ambiguous answer)."""
    text = text[:MAX_ANSWER_CHARS].strip().replace("$", "").replace("%", "")
    text = re.sub(r"\\boxed\{([^{}]*)\}", r"\1", text)
    values = _numbers(text)
    return values[0] if len(values) == 1 else None


def _check_tolerance(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise InputError(f"numeric checker: {name} must be a finite number >= 0, got {value!r}")
    return float(value)


def numeric_match(prediction: str, gold: str, *, rtol: float = 1e-6, atol: float = 0.0) -> bool:
    """True when the one number in ``prediction`` is within ``atol + rtol * |gold|`` of the gold number.

    A gold answer that is not a number never matches: that is a broken task, and saying "wrong" is safer than
    guessing. Use ``atol`` when the gold can be zero or near it, since a relative tolerance of zero is zero.
    """
    ref = parse_number(gold)
    pred = parse_number(prediction)
    if ref is None or pred is None:
        return False
    return abs(float(pred) - float(ref)) <= atol + rtol * abs(float(ref))


# ----------------------------------------------------------------------------------------------------------- math


_FUNCTIONS = ("sin", "cos", "tan", "cot", "sec", "csc", "asin", "acos", "atan", "sinh", "cosh", "tanh", "exp",
              "log", "ln", "sqrt", "Abs", "abs", "pi")
_PLAIN_CHARS = re.compile(r"[\w\s+\-*/^().,]*")
_VARIABLE = re.compile(r"[A-Za-z](?:_?\d{1,2})?")
_HUGE_POWER = re.compile(r"(?:\*\*|\^)\s*\(?\s*[-+]?\d{3,}|!")
_ATTRIBUTE_DOT = re.compile(r"\.(?!\d)|(?<=[A-Za-z_)])\s*\.")  # a dot that is not a decimal point
MAX_EXPRESSION_CHARS = 200


def _plain_expression(text: str) -> Any:
    """``text`` as a sympy expression when it is a plain-text formula ("3*x**2*sin(x)", "x^2 + 2x"), else None.

    Why: math-verify reads plain text by extracting numbers, so "3*x**2*cos(x)" and "3*x**2*sin(x) + x**3*cos(x)"
    both read as 3 and compare equal. sympy's parser evaluates code, so the input is first restricted to
    arithmetic characters, single-letter variables and a short list of function names (no attributes, no dunder
    names, no huge literal exponents), and parsed unevaluated.
    """
    t = text.strip().rstrip(".").strip()
    if (not t or len(t) > MAX_EXPRESSION_CHARS or not _PLAIN_CHARS.fullmatch(t) or "__" in t
            or _HUGE_POWER.search(t) or _ATTRIBUTE_DOT.search(t)):
        return None
    names = re.findall(r"[A-Za-z_]\w*", t)
    if any(n not in _FUNCTIONS and not _VARIABLE.fullmatch(n) for n in names):
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


def math_match(prediction: str, gold: str) -> bool:
    """Mathematical equivalence by math-verify (``answers_equivalent``), falling back to numbers and then to text.

    A gold answer written as a plain-text formula with variables ("3*x**2*sin(x) + x**3*cos(x)") is compared
    as a function instead, by evaluation at random points against the prediction parsed the same way (or, when
    the prediction is LaTeX, by math-verify against the gold rendered as LaTeX): math-verify alone would compare
    the numbers it finds in the plain text and call many wrong formulas right.
    """
    from peerstep.verify._equivalence import math_verify_equivalent as answers_equivalent

    prediction = prediction[:MAX_ANSWER_CHARS]
    gold_expr = _plain_expression(gold)
    if gold_expr is not None and gold_expr.free_symbols:
        pred_expr = _plain_expression(prediction)
        if pred_expr is not None:
            return _same_function(gold_expr, pred_expr)
        if "\\" in prediction or "$" in prediction:
            import sympy

            return answers_equivalent(prediction, f"${sympy.latex(gold_expr)}$")
        return False
    pred_expr = _plain_expression(prediction)
    if pred_expr is not None and pred_expr.free_symbols and ("\\" in gold or "$" in gold):
        import sympy

        return answers_equivalent(f"${sympy.latex(pred_expr)}$", gold)
    return answers_equivalent(prediction, gold)


# --------------------------------------------------------------------------------------------------- short answer

_SMALL_NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                  "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
                  "twenty"]
_ORDINALS = ["zeroth", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
             "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth",
             "eighteenth", "nineteenth", "twentieth"]
_WORD_NUMBERS = {w: str(i) for i, w in enumerate(_SMALL_NUMBERS)} | {w: str(i) for i, w in enumerate(_ORDINALS)}
_MONTHS = {m: i + 1 for i, m in enumerate(["january", "february", "march", "april", "may", "june", "july", "august",
                                           "september", "october", "november", "december"])}
_MONTH_RE = "|".join(_MONTHS)
_DAY_MONTH_YEAR = re.compile(rf"\b(\d{{1,2}})\s+({_MONTH_RE})\s*,?\s+(\d{{3,4}})\b")
_MONTH_DAY_YEAR = re.compile(rf"\b({_MONTH_RE})\s+(\d{{1,2}})\s*,?\s+(\d{{3,4}})\b")
_ARTICLES = {"a", "an", "the"}
MAX_EXTRA_WORDS = 6


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _short_tokens(text: str) -> list[str]:
    t = _strip_accents(text[:MAX_ANSWER_CHARS]).casefold().translate(_MINUS)
    t = re.sub(r"(?<=\d),(?=\d{3}\b)", "", t)  # 7,088 -> 7088
    t = re.sub(r"(?<=\d)(st|nd|rd|th)\b", "", t)  # 16th -> 16
    # dates to one ISO token, so "13 August 1961" and "August 13, 1961" agree
    t = _DAY_MONTH_YEAR.sub(lambda m: f" {int(m[3]):04d}-{_MONTHS[m[2]]:02d}-{int(m[1]):02d} ", t)
    t = _MONTH_DAY_YEAR.sub(lambda m: f" {int(m[3]):04d}-{_MONTHS[m[1]]:02d}-{int(m[2]):02d} ", t)
    t = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", t)  # full stops go, decimal points stay
    t = re.sub(r"[^\w.\-]+", " ", t)
    words = [_WORD_NUMBERS.get(w, w) for w in t.replace("-", " - ").split()]
    # hyphens only matter inside ISO dates and negative numbers; elsewhere they are word separators
    joined = " ".join(words)
    joined = re.sub(r"(\d{4}) - (\d{2}) - (\d{2})", r"\1-\2-\3", joined)
    joined = re.sub(r"(?:^|(?<= ))- (?=\d)", "-", joined)
    return [w for w in joined.split() if w != "-" and w not in _ARTICLES]


def _is_number(token: str) -> bool:
    return re.fullmatch(r"-?\d+(?:\.\d+)?|\d{4}-\d{2}-\d{2}", token) is not None


def short_answer_match(prediction: str, gold: str) -> bool:
    """Normalised containment for short factual answers (names, places, dates, quantities).

    Both sides are normalised: accents removed and case folded ("Reykjavík" = "reykjavik"), articles and
    punctuation dropped, thousands separators and ordinal suffixes removed ("7,088" = "7088", "16th" = "16"),
    number words up to twenty read as digits ("ten" = "10", "fourth" = "4"), and dates read in either order
    ("13 August 1961" = "August 13, 1961"). The answer is right when the gold's words appear, in order and
    contiguously, in the prediction, provided that the prediction adds at most ``MAX_EXTRA_WORDS`` words (so
    "Michael Collins, the command module pilot" passes but an essay that names every candidate does not) and
    states no number the gold does not (so "1921 or 1922" fails for 1921). A partial answer ("Collins" for
    "Michael Collins") fails.
    """
    pred, ref = _short_tokens(prediction), _short_tokens(gold)
    if not ref or not pred:
        return False
    if len(pred) > len(ref) + MAX_EXTRA_WORDS:
        return False
    if any(_is_number(w) and w not in ref for w in pred):
        return False
    n = len(ref)
    return any(pred[i:i + n] == ref for i in range(len(pred) - n + 1))


# --------------------------------------------------------------------------------------------------------- python


class PythonChecker:
    """A user function ``(prediction, gold) -> bool`` loaded from ``"pkg.mod:fn"`` or ``"file.py[:fn]"``.

    A relative file path is read relative to ``base_dir`` (a task file's folder), so a task file and its checker
    can travel together. The function may return a bool, or a number read as correct when it is at least 1.0
    (the convention of graded scorers such as reasoning-gym's). If it raises on some prediction, that prediction
    is wrong (the model's answer, not the user's code, is usually what is malformed) and the error is logged.
    """

    DEFAULT_FUNCTION = "check"

    def __init__(self, function: str, base_dir: str | Path | None = None) -> None:
        if not isinstance(function, str) or not function.strip():
            raise InputError("python checker: give the function as 'package.module:function' or 'file.py:function'")
        self.spec = function.strip()
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self.function = self._resolve()

    def _split(self) -> tuple[str, str]:
        if self.spec.endswith(".py"):
            return self.spec, self.DEFAULT_FUNCTION
        target, sep, name = self.spec.rpartition(":")
        if not sep or not name.isidentifier():
            if self.spec.replace(".", "").replace("_", "").isalnum():
                raise InputError(f"python checker {self.spec!r}: name the function too, e.g. "
                                 f"'{self.spec}:check' (module:function)")
            raise InputError(f"python checker {self.spec!r}: expected 'package.module:function' or "
                             f"'path/to/file.py:function'")
        return target, name

    def _resolve(self) -> Callable[..., Any]:
        target, name = self._split()
        if target.endswith(".py") or "/" in target or "\\" in target:
            module = self._load_file(target)
        else:
            module = self._import(target)
        fn = getattr(module, name, None)
        if fn is None:
            public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
            raise InputError(f"python checker {self.spec!r}: {target} has no function {name!r}"
                             + (f" (it has: {', '.join(public[:10])})" if public else ""))
        if not callable(fn):
            raise InputError(f"python checker {self.spec!r}: {name!r} in {target} is not a function")
        try:
            inspect.signature(fn).bind("prediction", "gold")
        except TypeError:
            raise InputError(f"python checker {self.spec!r}: {name} must accept two arguments "
                             f"(prediction, gold)") from None
        except ValueError:
            pass  # builtins without a signature: trust them
        return fn

    def _import(self, module_name: str) -> Any:
        if not all(part.isidentifier() for part in module_name.split(".")):
            raise InputError(f"python checker {self.spec!r}: {module_name!r} is not a module name")
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise InputError(f"python checker {self.spec!r}: no module named {exc.name or module_name!r} "
                             f"(is it installed, or on PYTHONPATH?)") from None
        except Exception as exc:  # the user's module failed while importing: say so instead of a traceback
            raise InputError(f"python checker {self.spec!r}: importing {module_name} failed: "
                             f"{type(exc).__name__}: {exc}") from None

    def _load_file(self, target: str) -> Any:
        path = Path(target).expanduser()
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        if not path.is_file():
            raise InputError(f"python checker {self.spec!r}: no such file {path}")
        module_name = f"_peerstep_checker_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise InputError(f"python checker {self.spec!r}: cannot load {path} as Python")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses and pickling look modules up here
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise InputError(f"python checker {self.spec!r}: running {path} failed: "
                             f"{type(exc).__name__}: {exc}") from None
        return module

    def __call__(self, prediction: str, gold: str) -> bool:
        try:
            result = self.function(prediction, gold)
        except Exception as exc:  # a malformed prediction makes a naive checker raise: that answer is wrong
            log.warning("python checker %s raised %s: %s; the answer counts as wrong",
                        self.spec, type(exc).__name__, exc)
            return False
        if isinstance(result, bool):
            return result
        if isinstance(result, int | float):
            return bool(result >= 1.0)
        log.warning("python checker %s returned %r, not a bool or number; the answer counts as wrong",
                    self.spec, result)
        return False

    def __repr__(self) -> str:
        return f"PythonChecker({self.spec!r})"


# ---------------------------------------------------------------------------------------------------------- class
# form: the named checkers as small objects, so that options are visible (repr) and picklable


class ExactChecker:
    """``exact_match`` as a checker object."""

    def __call__(self, prediction: str, gold: str) -> bool:
        return exact_match(prediction, gold)

    def __repr__(self) -> str:
        return "ExactChecker()"


class NumericChecker:
    """``numeric_match`` with fixed tolerances; they are validated here so a bad option fails at load time."""

    def __init__(self, rtol: float = 1e-6, atol: float = 0.0) -> None:
        self.rtol = _check_tolerance("rtol", rtol)
        self.atol = _check_tolerance("atol", atol)

    def __call__(self, prediction: str, gold: str) -> bool:
        return numeric_match(prediction, gold, rtol=self.rtol, atol=self.atol)

    def __repr__(self) -> str:
        return f"NumericChecker(rtol={self.rtol}, atol={self.atol})"


class MathChecker:
    """``math_match`` as a checker object."""

    def __call__(self, prediction: str, gold: str) -> bool:
        return math_match(prediction, gold)

    def __repr__(self) -> str:
        return "MathChecker()"


class ShortAnswerChecker:
    """``short_answer_match`` as a checker object."""

    def __call__(self, prediction: str, gold: str) -> bool:
        return short_answer_match(prediction, gold)

    def __repr__(self) -> str:
        return "ShortAnswerChecker()"


_FACTORIES: dict[str, Callable[..., Checker]] = {
    "exact": ExactChecker,
    "numeric": NumericChecker,
    "math": MathChecker,
    "short_answer": ShortAnswerChecker,
    "python": PythonChecker,
}
CHECKER_NAMES = tuple(_FACTORIES)


def get_checker(name: str, **options: Any) -> Checker:
    """The checker called ``name``, built with ``options`` (``rtol``/``atol`` for numeric, ``function`` and
    ``base_dir`` for python). Unknown names and options raise ``InputError`` naming what is accepted."""
    factory = _FACTORIES.get(name)
    if factory is None:
        raise InputError(f"unknown checker {name!r}; known: {', '.join(CHECKER_NAMES)}")
    accepted = [p for p in inspect.signature(factory).parameters if p != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        allowed = ", ".join(accepted) if accepted else "none"
        raise InputError(f"checker {name!r} does not take option(s) {', '.join(unknown)}; it takes: {allowed}")
    try:
        return factory(**options)
    except TypeError as exc:
        raise InputError(f"checker {name!r}: {exc}") from None
