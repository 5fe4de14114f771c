"""The ``exact`` checker: normalised text equality, for answers whose form is the answer (a formula, a code)."""

from __future__ import annotations

import re
import unicodedata

from peerstep.grading._limits import clip
from peerstep.grading._protocol import stripped

__all__ = ["ExactChecker", "exact_match", "normalise_text"]


def normalise_text(text: str) -> str:
    """Unicode NFKC, case folded, whitespace collapsed, one pair of surrounding quotes and a final full stop dropped."""
    t = unicodedata.normalize("NFKC", clip(text)).casefold().strip()
    t = re.sub(r"\s+", " ", t).rstrip(".").strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'`":
        t = t[1:-1].strip()
    return t.rstrip(".").strip()


def exact_match(prediction: str, gold: str) -> bool:
    """Normalised text equality (case, Unicode form, whitespace, surrounding quotes, trailing full stop)."""
    return normalise_text(prediction) == normalise_text(gold)


class ExactChecker:
    """``exact_match`` as a checker object."""

    def __call__(self, prediction: str, gold: str) -> bool:
        return exact_match(prediction, gold)

    def normalise(self, answer: str) -> str | None:
        return stripped(answer)

    def __repr__(self) -> str:
        return "ExactChecker()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExactChecker)

    def __hash__(self) -> int:
        return hash(ExactChecker)
