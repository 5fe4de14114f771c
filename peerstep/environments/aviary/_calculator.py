"""``aviary-calculator``: Aviary's own ``CalculatorEnv`` on a few arithmetic problems written here, graded by
its own rule, with no download."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from peerstep.environments._dataset import register_dataset
from peerstep.environments.aviary._dataset import AviaryDataset
from peerstep.environments.aviary._errors import _require_calculator
from peerstep.grading import NumericChecker

if TYPE_CHECKING:
    import aviary.core as av


class CalculatorRow(NamedTuple):
    task_id: str
    problem: str
    answer: float


CALCULATOR_ROWS: tuple[CalculatorRow, ...] = (
    CalculatorRow("calc-0", "A crate holds 24 bottles. How many bottles are in 17 crates?", 408),
    CalculatorRow("calc-1", "What is 1234 * 56 - 789?", 68315),
    CalculatorRow("calc-2", "A train travels at 85 km per hour for 3.5 hours. How many kilometres does it travel?",
                  297.5),
    CalculatorRow("calc-3", "Maria had 250 dollars, spent 37% of it, then earned 48 dollars. "
                            "How many dollars does she have now?", 205.5),
    CalculatorRow("calc-4", "What is (17 + 26) * 19 / 4?", 204.25),
    CalculatorRow("calc-5", "A field is 12.5 m long and 8 m wide. What is its area in square metres?", 100),
)


class AviaryCalculatorChecker:
    """Aviary ``CalculatorEnv``'s own rule: the answer is a float ``a`` with ``|a - g| / (|g| + rel_tol) < rel_tol``.

    So that peerstep's grade of an answer is the reward Aviary gives it: "408 bottles" is wrong for both.
    """

    def __init__(self, rel_tol: float = 1e-4) -> None:
        self.rel_tol = rel_tol

    def __call__(self, prediction: str, gold: str) -> bool:
        try:
            answer, reference = float(prediction), float(gold)
        except (TypeError, ValueError):
            return False
        return abs(answer - reference) / (abs(reference) + self.rel_tol) < self.rel_tol

    def normalise(self, answer: str) -> str | None:
        """The one number the answer states, which this checker can read; None when it states none or several."""
        return NumericChecker().normalise(answer)

    def __repr__(self) -> str:
        return f"AviaryCalculatorChecker(rel_tol={self.rel_tol})"


def calculator_task_dataset(rows: Sequence[CalculatorRow] = CALCULATOR_ROWS,
                            config: dict[str, Any] | None = None) -> av.TaskDataset[Any]:
    """Aviary's ``CalculatorEnv`` (the GSM8K environment) on local rows: an Aviary ``TaskDataset``, no download.

    ``config`` is Aviary's ``CalculatorEnvConfig`` as a dict (rewards, ``done_on_failure``, tolerance).
    """
    task_dataset: av.TaskDataset[Any] = _calculator_class()(rows, config)
    return task_dataset


@register_dataset("aviary-calculator")
def aviary_calculator(done_on_failure: bool = False) -> AviaryDataset:
    """Aviary's calculator environment on ``CALCULATOR_ROWS``, for ``peerstep eval aviary-calculator``.

    Aviary's default ends an episode at the first failed or unknown tool call; peerstep's environments never end
    an episode for an agent's mistake (small models make malformed calls and recover), so that is off here unless
    asked for.
    """
    task_dataset = calculator_task_dataset(config={"done_on_failure": done_on_failure})
    rel_tol = float(getattr(getattr(task_dataset, "config", None), "rel_tol", 1e-4))
    return AviaryDataset(task_dataset, name="aviary-calculator", checker=AviaryCalculatorChecker(rel_tol))


@functools.cache
def _calculator_class() -> type[Any]:
    """Defined on first use, like ``_server._classes``; separate because it needs the ``gsm8k`` extra too."""
    _require_calculator()
    from aviary.core import TaskDataset
    from aviary.envs.gsm8k import CalculatorEnv, CalculatorEnvConfig

    class CalculatorTaskDataset(TaskDataset[CalculatorEnv]):
        """Aviary's ``CalculatorEnv`` over rows held in memory (``GSM8kDataset`` downloads its rows instead)."""

        def __init__(self, rows: Sequence[CalculatorRow], config: dict[str, Any] | None = None) -> None:
            self.rows = list(rows)
            self.config = CalculatorEnvConfig(**(config or {}))

        def __len__(self) -> int:
            return len(self.rows)

        def get_new_env_by_idx(self, idx: int) -> CalculatorEnv:
            row = self.rows[idx]
            return CalculatorEnv(problem_id=row.task_id, problem=row.problem, answer=row.answer, config=self.config)

    return CalculatorTaskDataset
