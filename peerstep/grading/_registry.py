"""Checkers by name (``get_checker``), the default checker, and ``grade``: the one place an answer meets its gold.

Checkers are found by name in ``peerstep.registry.CHECKERS``: register a factory there (a class or function taking
the checker's options as keywords) and ``get_checker(name, **options)`` builds it.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from peerstep._errors import InputError, PeerstepError
from peerstep.grading._math import MathChecker
from peerstep.grading._protocol import Checker
from peerstep.registry import CHECKERS

__all__ = ["CHECKER_NAMES", "DEFAULT_CHECKER", "get_checker", "grade"]

log = logging.getLogger(__name__)

CHECKER_NAMES: tuple[str, ...] = ("exact", "numeric", "math", "short_answer", "python")
"""The built-in checkers (the ``type`` of a task file's checker). ``get_checker`` takes any name registered in
``peerstep.registry.CHECKERS``: these and the user's own."""

DEFAULT_CHECKER: Checker = MathChecker()
"""What grades a task that has no checker of its own (a free-form question with a gold answer)."""


def get_checker(name: str, **options: Any) -> Checker:
    """The checker registered as ``name`` in ``CHECKERS``, built with ``options`` (``rtol``/``atol`` for numeric,
    ``function`` and ``base_dir`` for python). Unknown names and options raise ``InputError`` naming what is
    accepted."""
    factory = CHECKERS.get(name)
    accepted = [p for p in inspect.signature(factory).parameters if p != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        allowed = ", ".join(accepted) if accepted else "none"
        raise InputError(f"checker {name!r} does not take option(s) {', '.join(unknown)}; it takes: {allowed}")
    try:
        checker: Checker = factory(**options)
    except TypeError as exc:
        raise InputError(f"checker {name!r}: {exc}") from None
    return checker


def grade(answer: str | None, gold: str | None, checker: Checker = DEFAULT_CHECKER) -> bool:
    """Is ``answer`` right? ``checker(answer, gold)`` as a bool; False when either is missing or the checker raises
    on this answer (a ``PeerstepError``, such as a python checker that cannot be imported, propagates).

    The reward of an episode, the verdict on a parallel run's decision, the ``answer`` verifier and an eval's grade
    all call this with the task's checker, so they cannot disagree.
    """
    if answer is None or gold is None:
        return False
    try:
        return bool(checker(answer, gold))
    except PeerstepError:
        raise  # the checker itself is broken (a python checker that cannot be imported): that must be loud
    except Exception as exc:  # a checker that raises on some answer says "not right", loudly in the log
        log.warning("checker %r raised %s on %r: %s; the answer counts as wrong", checker, type(exc).__name__,
                    answer[:100], exc)
        return False
