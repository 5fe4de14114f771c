"""Are two answers the same? Mathematical equivalence first, then numbers, then text.

``math-verify`` (the Hugging Face library used to grade math benchmarks) decides equivalence of
numbers and expressions: ``1/2`` and ``0.5``, ``\\frac{3}{4}`` and ``0.75``, ``441,624,171`` and
``441624171``. Its timeouts use ``signal.alarm``, which only works in the main thread, so off the
main thread it runs without them; answers are capped in length so that sympy never sees a
pathological input. When math-verify finds nothing to compare (words, names), normalised text
equality decides.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from typing import Any

from peerstep.environments._answers import answers_match as _numeric_or_text_match

MAX_ANSWER_CHARS = 300


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@lru_cache(maxsize=4096)
def _parse(text: str, timeouts: bool) -> tuple[Any, ...]:
    from math_verify import parse

    return tuple(parse(text, parsing_timeout=5 if timeouts else None))


def answers_equivalent(prediction: str | None, gold: str | None) -> bool:
    """True when ``prediction`` states the same answer as ``gold``.

    Plain-text formulas with variables are compared as functions (``checkers.math_match``): math-verify alone
    reads "3*x**2*cos(x)" as the number 3.
    """
    if prediction is None or gold is None:
        return False
    from peerstep.environments.checkers import math_match

    return math_match(prediction, gold)


def math_verify_equivalent(prediction: str | None, gold: str | None) -> bool:
    """Numbers, then math-verify: the core of ``answers_equivalent`` for everything but plain-text formulas."""
    if prediction is None or gold is None:
        return False
    pred, ref = prediction.strip()[:MAX_ANSWER_CHARS], gold.strip()[:MAX_ANSWER_CHARS]
    if not pred or not ref:
        return False
    if _numeric_or_text_match(pred, ref):
        return True
    from math_verify import verify

    timeouts = _in_main_thread()
    gold_parsed, pred_parsed = _parse(ref, timeouts), _parse(pred, timeouts)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(list(gold_parsed), list(pred_parsed), timeout_seconds=5 if timeouts else None))


def strip_answer(text: str) -> str:
    """Pull the answer out of a boxed or 'The answer is' phrasing, for display and voting."""
    boxed = re.findall(r"\\boxed\{([^{}]*)\}", text)
    if boxed:
        return boxed[-1].strip()
    m = re.search(r"answer is[:\s]*(.+?)\.?$", text.strip(), flags=re.IGNORECASE)
    return m.group(1).strip() if m else text.strip()
