"""``AviaryDataset``: an Aviary ``TaskDataset`` (local, or a client of a remote server) as a peerstep dataset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from peerstep.environments._dataset import EnvironmentDataset, TaskInfo
from peerstep.environments.aviary._environment import (
    _ID_ATTRIBUTES,
    _QUESTION_ATTRIBUTES,
    AviaryEnvironment,
    _first_attribute,
    aviary_gold,
)
from peerstep.environments.aviary._errors import _require_aviary
from peerstep.grading import DEFAULT_CHECKER, Checker

if TYPE_CHECKING:
    import aviary.core as av


class AviaryDataset(EnvironmentDataset):
    """An Aviary ``TaskDataset`` (local or a ``TaskDatasetClient``) as a peerstep dataset.

    ``infos`` gives each task's id, question and gold when the Aviary dataset cannot tell them
    without starting an episode (a remote client); otherwise they are read from a freshly built
    environment's attributes (``problem``/``question``, ``problem_id``, the gold answer). ``checker``
    grades answers for every task (see ``AviaryEnvironment``).
    """

    def __init__(self, task_dataset: av.TaskDataset[Any], *, name: str = "aviary",
                 infos: Sequence[TaskInfo] | None = None, finish_tool: str | None = None,
                 max_errors: int = 3, no_tool_calls: Literal["hint", "aviary"] = "hint",
                 checker: Checker = DEFAULT_CHECKER) -> None:
        _require_aviary()
        self.task_dataset = task_dataset
        self.name = name
        self._infos: dict[int, TaskInfo] = dict(enumerate(infos)) if infos is not None else {}
        self.finish_tool = finish_tool
        self.max_errors = max_errors
        self.no_tool_calls: Literal["hint", "aviary"] = no_tool_calls
        self._checker = checker

    @classmethod
    def remote(cls, server_url: str, *, name: str = "aviary-remote", api_key: str | None = None,
               infos: Sequence[TaskInfo] | None = None, request_timeout: float | None = 300.0) -> AviaryDataset:
        """The tasks a ``TaskDatasetServer`` at ``server_url`` serves (its ``/info`` is read now)."""
        _require_aviary()
        from aviary.core import TaskDatasetClient

        return cls(TaskDatasetClient(server_url, request_timeout=request_timeout, api_key=api_key),
                   name=name, infos=infos)

    def __len__(self) -> int:
        return len(self.task_dataset)

    def _check(self, index: int) -> None:
        if not 0 <= index < len(self):
            raise IndexError(f"task {index} is out of range; {self.name} has {len(self)} tasks")

    def info(self, index: int) -> TaskInfo:
        self._check(index)
        if index not in self._infos:
            env = self.task_dataset.get_new_env_by_idx(index)
            self._infos[index] = TaskInfo(task_id=_first_attribute(env, _ID_ATTRIBUTES) or str(index),
                                          question=_first_attribute(env, _QUESTION_ATTRIBUTES) or "",
                                          gold=aviary_gold(env), tags={"aviary_env": type(env).__name__})
        return self._infos[index]

    def checker(self, index: int) -> Checker:
        self._check(index)
        return self._checker

    def make(self, index: int) -> AviaryEnvironment:
        self._check(index)
        known = self._infos.get(index)
        return AviaryEnvironment(lambda: self.task_dataset.get_new_env_by_idx(index), finish_tool=self.finish_tool,
                                 gold=known.gold if known is not None else None, max_errors=self.max_errors,
                                 no_tool_calls=self.no_tool_calls, checker=self._checker)
