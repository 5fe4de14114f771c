"""Answer comparison used by environments that know the gold answer.

Numbers are compared as numbers (``441,624,171`` == ``441624171.0``; relative tolerance
1e-6), everything else as case- and whitespace-normalised text. A prediction that carries
extra words around one number ("The answer is 42.") still matches when it contains exactly
one number equal to the gold.
"""

from __future__ import annotations

import re
from fractions import Fraction

_NUMBER = re.compile(r"[-−]?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?(?:/\d+)?|[-−]?\.\d+")


def _to_number(text: str) -> Fraction | None:
    t = text.strip().replace("−", "-").replace("$", "").replace("%", "").strip()
    t = re.sub(r"(?<=\d),(?=\d{3}\b)", "", t)
    try:
        return Fraction(t)
    except (ValueError, ZeroDivisionError):
        try:
            return Fraction(float(t))
        except (ValueError, OverflowError):
            return None


def numbers_in(text: str) -> list[Fraction]:
    out = []
    for match in _NUMBER.findall(text):
        value = _to_number(match)
        if value is not None:
            out.append(value)
    return out


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().strip(".").lower())


def answers_match(prediction: str, gold: str, rel_tol: float = 1e-6) -> bool:
    gold_num = _to_number(gold)
    if gold_num is not None:
        pred_num = _to_number(prediction)
        candidates = [pred_num] if pred_num is not None else numbers_in(prediction)
        if len(candidates) != 1:
            return False
        diff = abs(candidates[0] - gold_num)
        return bool(diff <= abs(gold_num) * Fraction(rel_tol) or diff < Fraction(1, 10**9))
    return normalise(prediction) == normalise(gold)
