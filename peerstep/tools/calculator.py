"""A safe, exact calculator for expressions written by an untrusted model.

Models are unreliable at arithmetic, so agents get a calculator tool; but its input is untrusted text, so it must
never reach ``eval``. The expression is parsed with :mod:`ast` and walked here against a whitelist of numeric
literals, arithmetic operators and named math functions. Arithmetic is exact where it can be (integers, and decimal
literals as :class:`~fractions.Fraction`, so ``0.1+0.2`` is exactly ``0.3``), because a model copies digits verbatim
and a float artefact becomes a wrong answer. Every way to make Python burn CPU or memory (huge powers, factorials,
deep nesting, long input) is bounded *before* the work is done; a per-node CPU-time check is only a backstop.

Rules for ambiguous input: ``^`` is power, never XOR. A comma is a thousands separator only outside function-call
parentheses and only in the form 1,234 or 12,345,678 (a comma followed by exactly three digits); inside a call it
always separates arguments, so max(1,000) is max(1, 0). ``%`` directly after a number and followed by an operator,
a ``)``, a comma or the end means percent (12% is 0.12, "12% of 5000" is 600); otherwise it is the remainder
(10 % 3, 10%3). Only real numbers exist: sqrt(-1) and log(0) are refused as domain errors, never complex.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation, localcontext
from fractions import Fraction

__all__ = ["CalculatorError", "calculate", "evaluate"]

Number = int | Fraction | float

MAX_LENGTH = 2_000  # characters of input
MAX_NODES = 500  # expression nodes in the parsed tree
MAX_DEPTH = 100  # nesting depth of the tree (and of parentheses)
MAX_DIGITS = 10_000  # decimal digits of any exact intermediate result (numerator or denominator)
MAX_ROUND_DIGITS = 100  # |ndigits| accepted by round()
_LN10, _LOG10_2 = math.log(10), math.log10(2)


class CalculatorError(ValueError):
    """The expression was refused or has no value; the message is one line saying what to change."""


def _check_size(log10: float) -> None:
    """Refuse a result whose magnitude is 10**log10 or more, i.e. one with more than MAX_DIGITS digits."""
    if not log10 < MAX_DIGITS:  # `not <` also refuses NaN from inf - inf
        size = f"about {math.floor(log10) + 1:,}" if math.isfinite(log10) else "astronomically many"
        raise CalculatorError(f"result too large: {size} digits, the limit is {MAX_DIGITS:,}; work with its size, "
                              "e.g. 100000*log10(2) ≈ the digit count of 2**100000")  # fmt: skip


def _checked(value: Number | complex) -> Number:
    """Refuse complex and oversized results, and turn integral fractions into ints."""
    if isinstance(value, complex):
        raise CalculatorError("result is not a real number (e.g. a fractional power of a negative number)")
    if isinstance(value, float):
        return value
    _check_size((max(value.numerator.bit_length(), value.denominator.bit_length()) - 1) * _LOG10_2)
    return value.numerator if value.denominator == 1 else value


def _as_int(value: Number, name: str) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise CalculatorError(f"{name} needs whole-number arguments, got {_format(value)}")


def _log10_factorial(n: int) -> float:
    return math.lgamma(n + 1) / _LN10 if n.bit_length() < 1000 else math.inf


def _log10_falling(n: int, k: int) -> float:
    """Digits of n*(n-1)*...*(n-k+1); lgamma is too coarse for huge n, where k*log10(n) is a safe upper bound."""
    if n < 10**15:
        return _log10_factorial(n) - _log10_factorial(n - k)
    return k * math.log10(n) if k.bit_length() < 64 else math.inf


def _div(a: Number, b: Number) -> Number:
    return a / b if isinstance(a, float) or isinstance(b, float) else Fraction(a) / b


def _pow(base: Number, exp: Number) -> Number | complex:
    """Exact powers when the exponent is an integer, after estimating the result size from the operands."""
    if isinstance(exp, float) or isinstance(base, float) or isinstance(exp, Fraction):
        return float(base) ** float(exp)
    if base not in (0, 1, -1):
        num, den = abs(base.numerator), base.denominator
        scale = max(math.log10(num), math.log10(den))
        _check_size(abs(exp) * scale if exp.bit_length() < 64 else math.inf)
    return Fraction(base) ** exp if exp < 0 else base**exp


def _real(fn: Callable[[float], float]) -> Callable[[Number], float]:
    return lambda x: fn(float(x))


def _logged(x: Number, fn: Callable[[float], float]) -> float:
    # Taking the log of numerator and denominator separately works for exact values too large for a float.
    return fn(x.numerator) - fn(x.denominator) if isinstance(x, Fraction) else fn(x)


def _log(x: Number, base: Number | None = None) -> float:
    if base is None:
        return _logged(x, math.log)
    divisor = _logged(base, math.log)
    if divisor == 0:
        raise ValueError("log base 1")
    return _logged(x, math.log) / divisor


def _sqrt(x: Number) -> Number:
    if not isinstance(x, float) and x >= 0:
        num, den = math.isqrt(x.numerator), math.isqrt(x.denominator)
        if num * num == x.numerator and den * den == x.denominator:
            return Fraction(num, den)
    return math.sqrt(x)


def _round(x: Number, ndigits: Number | None = None) -> Number:
    """Round half away from zero (round(2.5) is 3), exactly; float input gives a float back."""
    n = 0 if ndigits is None else _as_int(ndigits, "round")
    if abs(n) > MAX_ROUND_DIGITS:
        raise CalculatorError(f"round: the number of digits must be between -{MAX_ROUND_DIGITS} and {MAX_ROUND_DIGITS}")
    scaled = abs(Fraction(x)) * Fraction(10) ** n
    rounded = math.floor(scaled + Fraction(1, 2)) * (1 if x >= 0 else -1) / Fraction(10) ** n
    if ndigits is None:
        return int(rounded)
    return float(rounded) if isinstance(x, float) else rounded


def _factorial(x: Number) -> int:
    n = _as_int(x, "factorial")
    if n < 0:
        raise ValueError("negative factorial")
    _check_size(_log10_factorial(n))
    return math.factorial(n)


def _comb(n_: Number, k_: Number) -> int:
    n, k = _as_int(n_, "comb"), _as_int(k_, "comb")
    if 0 <= k <= n:
        k = min(k, n - k)
        _check_size(_log10_falling(n, k) - _log10_factorial(k))
    return math.comb(n, k)


def _perm(n_: Number, k_: Number | None = None) -> int:
    n = _as_int(n_, "perm")
    k = n if k_ is None else _as_int(k_, "perm")
    if 0 <= k <= n:
        _check_size(_log10_falling(n, k))
    return math.perm(n, k)


def _lcm(*args: Number) -> int:
    result = 1
    for value in args:  # pairwise, so an oversized result is refused after one cheap step
        result = math.lcm(result, _as_int(value, "lcm"))
        _checked(result)
    return result


_MANY = MAX_NODES
_FUNCTIONS: dict[str, tuple[int, int, Callable[..., Number]]] = {
    **{name: (1, 1, _real(getattr(math, name))) for name in
       ("exp", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "degrees", "radians")},
    "sqrt": (1, 1, _sqrt), "log": (1, 2, _log), "log10": (1, 1, lambda x: _logged(x, math.log10)),
    "log2": (1, 1, lambda x: _logged(x, math.log2)), "atan2": (2, 2, lambda y, x: math.atan2(float(y), float(x))),
    "hypot": (1, _MANY, lambda *xs: math.hypot(*(float(x) for x in xs))), "floor": (1, 1, math.floor),
    "ceil": (1, 1, math.ceil), "round": (1, 2, _round), "abs": (1, 1, abs), "min": (1, _MANY, lambda *xs: min(xs)),
    "max": (1, _MANY, lambda *xs: max(xs)), "factorial": (1, 1, _factorial), "comb": (2, 2, _comb),
    "perm": (1, 2, _perm), "gcd": (1, _MANY, lambda *xs: math.gcd(*(_as_int(x, "gcd") for x in xs))),
    "lcm": (1, _MANY, _lcm),
}  # fmt: skip
_DOMAINS = {"sqrt": "x >= 0 (complex results are not supported)", "log": "x > 0 and a base > 0 other than 1",
            "log10": "x > 0", "log2": "x > 0", "asin": "-1 <= x <= 1", "acos": "-1 <= x <= 1",
            "factorial": "a non-negative whole number", "comb": "non-negative whole numbers",
            "perm": "non-negative whole numbers"}  # fmt: skip
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau, "inf": math.inf}
_BIN_OPS: dict[type[ast.operator], Callable[[Number, Number], Number | complex]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: _div,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: _pow,
}  # fmt: skip
_SYMBOLS = {ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>",
            ast.MatMult: "@", ast.Invert: "~", ast.Not: "not"}  # fmt: skip
_REFUSED: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access is not allowed", ast.Subscript: "subscripts (x[...]) are not allowed",
    ast.Lambda: "lambda functions are not allowed", ast.Starred: "starred arguments (*x) are not allowed",
    ast.Tuple: "tuples are not allowed; outside a function call a comma only works as a thousands separator (5,000)",
    ast.List: "lists are not allowed", ast.Set: "sets are not allowed", ast.Dict: "dicts are not allowed",
    ast.Compare: "comparisons are not allowed", ast.BoolOp: "and/or are not allowed",
    ast.IfExp: "conditional expressions are not allowed", ast.NamedExpr: "assignments (:=) are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    **dict.fromkeys((ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp), "comprehensions are not allowed"),
}  # fmt: skip

_UNICODE = str.maketrans("×÷−", "*/-")
_THOUSANDS = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?!\d|,\d)")
_ASSIGNMENT = re.compile(r"^[A-Za-z_]\w*\s*=(?!=)\s*")
_PERCENT_OF = re.compile(r"%\s*of\b")
_PERCENT = re.compile(r"(?<![\w.])(\d[\d_]*(?:\.[\d_]*)?(?:[eE][+-]?\d+)?|\.\d[\d_]*)%(?=\s*(?:$|[-+*/),]))")


def _normalize(text: str) -> str:
    """Rewrite human notation into Python: × ÷ − ^, thousands commas outside calls, and percent signs."""
    text = text.translate(_UNICODE).replace("^", "**").strip()
    # models often write "total = 245 * 28" or "245 * 28 =": keep only the expression
    text = _ASSIGNMENT.sub("", text).rstrip("= ").strip()
    out: list[str] = []
    parens: list[bool] = []  # one entry per open parenthesis: does it belong to a function call?
    calls, prev, i = 0, "", 0
    while i < len(text):
        ch = text[i]
        match = _THOUSANDS.match(text, i) if ch.isdigit() and not calls else None
        if match:
            out.append(match.group().replace(",", ""))
            i, prev = match.end(), "0"
            continue
        if ch == "(":
            parens.append(prev.isalnum() or prev == "_")
            calls += parens[-1]
            if len(parens) > MAX_DEPTH:
                raise CalculatorError(f"expression is nested too deeply (over {MAX_DEPTH} levels); split it into steps")
        elif ch == ")" and parens:
            calls -= parens.pop()
        out.append(ch)
        prev = prev if ch.isspace() else ch
        i += 1
    return _PERCENT.sub(r"(\1/100)", _PERCENT_OF.sub("% *", "".join(out)))


def _check_tree(tree: ast.Expression) -> None:
    """Refuse every construct outside the whitelist, and oversized or overly deep trees, before evaluating."""
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES or depth > MAX_DEPTH:
            raise CalculatorError("expression is too complex or nested too deeply; split the calculation into steps")
        if isinstance(node, ast.Constant):
            if isinstance(node.value, (str, bytes)):
                raise CalculatorError("string literals are not allowed; the calculator only works with numbers")
            if isinstance(node.value, complex):
                raise CalculatorError("complex numbers (the j suffix) are not supported")
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise CalculatorError(f"{node.value!r} is not allowed; only numbers are")
        elif isinstance(node, ast.Name):
            if node.id not in _CONSTANTS and node.id not in _FUNCTIONS:
                raise CalculatorError(f"names are not allowed: {node.id} (constants available: pi, e, tau, inf)")
        elif isinstance(node, ast.Call):
            if node.keywords:
                raise CalculatorError(f"keyword arguments are not allowed: {node.keywords[0].arg or '**'}=...; "
                                      "pass arguments by position, e.g. round(x, 2)")  # fmt: skip
            func = node.func
            if isinstance(func, ast.Name) and func.id not in _FUNCTIONS:
                raise CalculatorError(f"function is not allowed: {func.id}; allowed: {', '.join(sorted(_FUNCTIONS))}")
            if not isinstance(func, ast.Name) and type(func) not in _REFUSED:
                raise CalculatorError("only named functions can be called; write 2*(3+4), not 2(3+4)")
        elif isinstance(node, (ast.BinOp, ast.UnaryOp)):
            if type(node.op) in _SYMBOLS:
                raise CalculatorError(f"operator {_SYMBOLS[type(node.op)]} is not allowed")
        else:
            raise CalculatorError(_REFUSED.get(type(node), f"{type(node).__name__} expressions are not allowed"))
        children = [child for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr)]
        stack.extend((child, depth + 1) for child in reversed(children))  # report the leftmost problem first


def _eval(node: ast.expr, source: str, deadline: float) -> Number:
    """Evaluate a tree that passed _check_tree; one Python frame per level, so depth stays bounded."""
    if time.thread_time() >= deadline:
        raise CalculatorError("the calculation exceeded its CPU time limit; split it into smaller steps")
    if isinstance(node, ast.Constant):
        if isinstance(node.value, int):
            return _checked(node.value)
        text = ast.get_source_segment(source, node) or repr(node.value)
        try:  # the literal's own digits, so 0.1 means one tenth exactly
            exact = Decimal(text)
        except InvalidOperation:
            raise CalculatorError(f"unreadable number: {text}") from None
        if not exact.is_finite() or abs(exact.adjusted()) > MAX_DIGITS:
            raise CalculatorError(f"number {text} is out of range (more than {MAX_DIGITS:,} digits)")
        return _checked(Fraction(exact))
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise CalculatorError(f"{node.id} is a function; call it with parentheses, e.g. {node.id}(2)")
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, source, deadline)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        left = _eval(node.left, source, deadline)
        return _checked(_BIN_OPS[type(node.op)](left, _eval(node.right, source, deadline)))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name, args = node.func.id, []
        for arg in node.args:
            args.append(_eval(arg, source, deadline))
        low, high, fn = _FUNCTIONS[name]
        if not low <= len(args) <= high:
            expected = str(low) if low == high else f"{low} or {high}" if high == low + 1 else f"at least {low}"
            raise CalculatorError(f"{name} takes {expected} argument(s), got {len(args)}")
        try:
            return _checked(fn(*args))
        except ValueError as exc:
            if isinstance(exc, CalculatorError):
                raise
            raise CalculatorError(f"math domain error: {name} needs {_DOMAINS.get(name, 'a finite number')}") from None
    raise CalculatorError(f"{type(node).__name__} expressions are not allowed")


def evaluate(expression: str, *, cpu_seconds: float = 0.5) -> Number:
    """Evaluate ``expression`` and return an int, a Fraction (exact non-integers) or a float (inexact results).

    All size bounds are checked before any expensive step; ``cpu_seconds`` of thread CPU time is a backstop
    checked at every node. Raises CalculatorError with a one-line reason on anything refused or undefined.
    """
    if len(expression) > MAX_LENGTH:
        raise CalculatorError(f"expression is too long ({len(expression):,} characters, limit {MAX_LENGTH:,})")
    source = _normalize(expression)
    if not source:
        raise CalculatorError("the expression is empty; write something like 2*(3+4)")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        detail = "" if exc.msg == "invalid syntax" else f" ({exc.msg})"
        shown = " ".join(source.split())[:80]
        raise CalculatorError(f"invalid syntax{detail} in: {shown}; write e.g. 2*(3+4)^2") from None
    except (ValueError, MemoryError, RecursionError):
        raise CalculatorError("the expression could not be parsed; split it into smaller steps") from None
    _check_tree(tree)
    try:
        return _eval(tree.body, source, time.thread_time() + cpu_seconds)
    except CalculatorError:
        raise
    except ZeroDivisionError:
        raise CalculatorError("division by zero") from None
    except OverflowError:
        raise CalculatorError("a value is too large for floating point (beyond about 1e308)") from None
    except RecursionError:
        raise CalculatorError("expression is nested too deeply; split it into steps") from None
    except (ArithmeticError, ValueError, TypeError) as exc:  # defensive: callers only ever see CalculatorError
        raise CalculatorError(f"cannot evaluate this expression: {exc}") from None


def _format(value: Number) -> str:
    """Integers in full, terminating fractions as exact decimals, others as p/q with an approximation."""
    if isinstance(value, float):
        return f"{value:.15g}"
    if isinstance(value, int):
        return str(Decimal(value))  # str(int) refuses more than 4300 digits; Decimal does not
    den = value.denominator
    twos = (den & -den).bit_length() - 1
    rest, fives = den >> twos, 0
    while rest % 5 == 0 and fives <= 30:
        rest, fives = rest // 5, fives + 1
    places = max(twos, fives)
    if rest == 1 and places <= 30:
        digits = str(Decimal(abs(value.numerator) * 10**places // den)).rjust(places + 1, "0")
        return f"{'-' if value < 0 else ''}{digits[:-places]}.{digits[-places:]}"
    with localcontext() as ctx:
        ctx.prec = 13
        approx = Decimal(value.numerator) / Decimal(den)
    return f"{Decimal(value.numerator)}/{Decimal(den)} (≈ {approx:g})"


def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression exactly where possible and return the result as text.

    Use this for any arithmetic instead of working it out yourself. Write one expression with numbers,
    + - * / // % ** (or ^ for power), parentheses and these functions: sqrt, exp, log(x) or log(x, base), log10,
    log2, sin, cos, tan, asin, acos, atan, atan2(y, x), sinh, cosh, tanh, floor, ceil, round(x) or round(x, digits),
    abs, min, max, factorial, gcd, lcm, comb(n, k), perm(n, k), hypot, degrees, radians; constants pi, e, tau, inf.
    Angles are in radians; round() rounds halves away from zero. Whole numbers and decimals are exact: 0.1+0.2 gives
    0.3 and 7/3 gives 7/3 (≈ 2.333333333333). Outside function calls 5,000 means five thousand (inside a call a comma
    separates arguments); 12% means 0.12 and "12% of 5000" works, while 10 % 3 is the remainder 1. sqrt(-1) and
    log(0) are errors. No variables, text, comparisons or complex numbers.

    Examples: "48123 * 9177 - 0.12 * 5000" -> "441624171"; "round(sqrt(2) * 100, 2)" -> "141.42";
    "5,000 * 12%" -> "600".

    Args:
        expression: One arithmetic expression, at most 2000 characters, e.g. "(3 + 4) * 2^10 / 7".
    """
    return _format(evaluate(expression))
