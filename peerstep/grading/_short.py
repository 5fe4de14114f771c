"""The ``short_answer`` checker: normalised containment for short factual answers (names, places, dates)."""

from __future__ import annotations

import re
import unicodedata

from peerstep.grading._limits import clip
from peerstep.grading._protocol import stripped

__all__ = ["MAX_EXTRA_WORDS", "ShortAnswerChecker", "short_answer_match"]

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
_DASHES = str.maketrans({"−": "-", "–": "-", "\u2009": " ", "\u202f": " ", "\u00a0": " "})
MAX_EXTRA_WORDS = 6


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _short_tokens(text: str) -> list[str]:
    t = re.sub(r"(?<=\d)[\u2009\u202f\u00a0](?=\d{3}\b)", "", clip(text))  # 7 088 -> 7088
    t = _strip_accents(t).casefold().translate(_DASHES)
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


class ShortAnswerChecker:
    """``short_answer_match`` as a checker object."""

    def __call__(self, prediction: str, gold: str) -> bool:
        return short_answer_match(prediction, gold)

    def normalise(self, answer: str) -> str | None:
        return stripped(answer)

    def __repr__(self) -> str:
        return "ShortAnswerChecker()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ShortAnswerChecker)

    def __hash__(self) -> int:
        return hash(ShortAnswerChecker)
