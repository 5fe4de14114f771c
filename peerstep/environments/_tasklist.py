"""Datasets over a fixed list of question tasks: ``StaticTask``, ``TaskListDataset``, and the argument checks
the generated datasets share.

Each task is a question with its reference answer, the checker that grades it and the tools it may use;
``make(i)`` builds a fresh ``QuestionEnvironment`` for task ``i``. The built-in datasets
(``peerstep.environments.builtin``), ``word-problems`` and task files are all such lists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from peerstep._errors import InputError
from peerstep.environments._base import Environment
from peerstep.environments._dataset import EnvironmentDataset, TaskInfo
from peerstep.environments.question import QuestionEnvironment
from peerstep.grading import Checker, grade
from peerstep.tools import Tool, calculator_tool

DEFAULT_SIZE = 200  # tasks in a generated dataset when no limit is given (math, science)


def _chosen(requested: Sequence[str] | None, known: Iterable[str], what: str) -> list[str]:
    """The requested subset (default: all), refusing unknown names with the list of known ones."""
    known = list(known)
    names = list(requested) if requested is not None else known
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise InputError(f"unknown {what} {', '.join(unknown) or '(none given)'}; known: {', '.join(known)}")
    return names


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InputError(f"limit must be a whole number >= 0 or None, got {limit!r}")


def _calculator_only() -> list[Tool]:
    return [calculator_tool()]


@dataclass(frozen=True)
class StaticTask:
    """One task: its text, reference answer, checker and which tools it may use."""

    task_id: str
    question: str
    gold: str | None
    checker: Checker
    tools: Callable[[], list[Tool]] = _calculator_only
    python: bool = False
    tags: dict[str, Any] = field(default_factory=dict)
    check_without_gold: bool = False  # a python checker may judge an answer with no gold (e.g. "name a prime")


class _TaskEnvironment(QuestionEnvironment):
    """A question whose checker may run even without a gold answer (user checkers that validate on their own)."""

    def __init__(self, question: str, *, check_without_gold: bool, **kwargs: Any) -> None:
        super().__init__(question, **kwargs)
        self.check_without_gold = check_without_gold

    @property
    def scored(self) -> bool:
        return self.gold is not None or self.check_without_gold

    def grade(self, answer: str | None) -> bool | None:
        if self.gold is None and self.check_without_gold:
            return answer is not None and grade(answer, "", self.checker)
        return super().grade(answer)

    async def submit(self, call: dict[str, Any]) -> tuple[dict[str, Any], float]:
        msg, reward = await super().submit(call)
        if self.gold is None and self.check_without_gold:
            reward = 1.0 if grade(self.answer, "", self.checker) else 0.0
        return msg, reward


class TaskListDataset(EnvironmentDataset):
    """A dataset over a list of ``StaticTask``: one fresh ``QuestionEnvironment`` per ``make``."""

    def __init__(self, tasks: Sequence[StaticTask]) -> None:
        self.tasks = list(tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def _task(self, index: int) -> StaticTask:
        if not 0 <= index < len(self.tasks):
            raise IndexError(f"task index {index} is out of range for {self.name!r} ({len(self.tasks)} tasks)")
        return self.tasks[index]

    def info(self, index: int) -> TaskInfo:
        t = self._task(index)
        return TaskInfo(task_id=t.task_id, question=t.question, gold=t.gold, tags=dict(t.tags))

    def make(self, index: int) -> Environment:
        t = self._task(index)
        if t.check_without_gold:
            return _TaskEnvironment(t.question, check_without_gold=True, gold=t.gold, tools=t.tools(),
                                    checker=t.checker, python=t.python)
        return QuestionEnvironment(t.question, gold=t.gold, tools=t.tools(), checker=t.checker, python=t.python)

    def checker(self, index: int) -> Checker:
        """The rule that gives task ``index`` its reward."""
        return self._task(index).checker

    def grade(self, index: int, answer: str | None) -> bool:
        """Grade with the task's own checker, without building an environment (no sandbox, no index)."""
        t = self._task(index)
        if t.gold is None and t.check_without_gold:
            return grade(answer, "", t.checker)
        return grade(answer, t.gold, t.checker)
