"""What a checker is, and the canonical form of an answer for one."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["Checker", "normalise_answer", "stripped"]


@runtime_checkable
class Checker(Protocol):
    """Does ``prediction`` match ``gold``? Any ``(prediction: str, gold: str) -> bool`` callable is one.

    The built-in checker classes also have ``normalise(answer) -> str | None``: the canonical form of a submitted
    answer for that checker, or None when the answer cannot be graded as it stands (see ``normalise_answer``).
    """

    def __call__(self, prediction: str, gold: str, /) -> bool: ...


def stripped(answer: str) -> str | None:
    """The normal form of an answer for a text checker: the answer without surrounding space; None when empty."""
    answer = answer.strip()
    return answer or None


def normalise_answer(checker: Any, answer: str) -> str | None:
    """The canonical form of ``answer`` for ``checker``, or None when it states nothing that checker can grade.

    A numeric checker gives the one number the answer states ("Tom does not have enough money ... He would need an
    additional $20.90." -> "20.90") and None when it states no number or several, so the caller can ask once for
    just the number. A checker without a ``normalise`` method (any plain function) gets the stripped answer.
    """
    normalise = getattr(checker, "normalise", None)
    if callable(normalise):
        result = normalise(answer)
        return result if isinstance(result, str) and result.strip() else None
    return stripped(answer)
