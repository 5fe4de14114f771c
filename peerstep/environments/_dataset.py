"""Datasets of episodes: what the eval runner iterates over.

A dataset is a fixed, ordered list of tasks (reproducible from its seed). ``make(i)`` builds a
fresh environment for task ``i`` every time it is called, because each trajectory of a
parallel strategy needs its own environment (its own sandbox, its own answer state).
Datasets are found by name through a registry, like environments.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from peerstep.environments._base import Environment
from peerstep.grading import Checker, grade


class TaskInfo(BaseModel):
    """What the eval report needs to know about one task, without building its environment."""

    task_id: str
    question: str
    gold: str | None = None
    tags: dict[str, Any] = Field(default_factory=dict)


class EnvironmentDataset(ABC):
    """An ordered, finite collection of tasks; ``make(i)`` returns a new environment for task ``i``."""

    name: str = "dataset"

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def info(self, index: int) -> TaskInfo:
        """The task's id, question text and gold answer (if any)."""

    @abstractmethod
    def make(self, index: int) -> Environment:
        """A fresh environment for task ``index``."""

    def factory(self, index: int) -> Callable[[], Environment]:
        return lambda: self.make(index)

    def checker(self, index: int) -> Checker:
        """The rule that grades task ``index`` (its environment's ``checker``); override to avoid building one."""
        return self.make(index).checker

    def grade(self, index: int, answer: str | None) -> bool:
        """Is ``answer`` correct for task ``index``? Graded by the task's checker, the rule of its reward.

        Parallel strategies decide one answer from several trajectories; it is graded here with the same
        rule the environment uses for its reward.
        """
        return grade(answer, self.info(index).gold, self.checker(index))


def register_dataset(name: str) -> Callable[[Callable[..., EnvironmentDataset]], Callable[..., EnvironmentDataset]]:
    """Decorator: make a dataset constructible with ``load_dataset(name, **kwargs)`` (``peerstep.registry``)."""
    from peerstep.registry import DATASETS

    return DATASETS.register(name)


def dataset_names() -> list[str]:
    from peerstep.registry import DATASETS

    return DATASETS.names()


def load_dataset(name: str, **kwargs: Any) -> EnvironmentDataset:
    """The dataset called ``name``, built with those of ``kwargs`` its factory accepts (``seed``, ``limit``,
    ``python``...): the CLI passes the same options to every dataset, and not every dataset has a seed."""
    from peerstep.registry import DATASETS

    factory = DATASETS.get(name)
    accepted = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    return factory(**{k: v for k, v in kwargs.items() if takes_any or k in accepted})
