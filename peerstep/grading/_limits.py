"""Every length cap of the grader, in one place.

An answer is clipped once, on the way into a checker (``clip``), so every checker sees the same text. The tighter
caps below do not clip again: an answer longer than them is simply not sent to the expensive parser (math-verify,
sympy), since cutting a formula in the middle would compare a different formula.
"""

from __future__ import annotations

MAX_ANSWER_CHARS = 2000  # what any checker sees of a prediction or gold: no checker spends seconds on a runaway answer
MAX_MATH_CHARS = 300  # longer answers skip math-verify (sympy can take minutes on a pathological input)
MAX_EXPRESSION_CHARS = 200  # longer answers are not read as plain-text formulas
MAX_REPLY_CHARS = 50_000  # how much of a model reply ``stated_answer`` reads (its end: the answer comes last)
MAX_STATED_CHARS = 200  # a "final answer: ..." longer than this is prose, not a stated answer


def clip(text: str) -> str:
    """``text`` cut to ``MAX_ANSWER_CHARS``: what every checker compares."""
    return text[:MAX_ANSWER_CHARS]
