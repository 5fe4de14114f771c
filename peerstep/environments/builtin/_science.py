"""The ``science`` dataset: tasks drawn from ``SCIENCE_TEMPLATES``, graded by value within 1%."""

from __future__ import annotations

import random
from collections.abc import Sequence

from peerstep.environments._dataset import register_dataset
from peerstep.environments._tasklist import DEFAULT_SIZE, StaticTask, TaskListDataset, _check_limit, _chosen
from peerstep.environments.builtin._science_templates import SCIENCE_TEMPLATES
from peerstep.grading import NumericChecker

SCIENCE_RTOL = 0.01


def _format_answer(value: float) -> str:
    """Six significant figures: more than the 1% tolerance needs, and no float noise like 0.30000000000000004."""
    return f"{value:.6g}"


@register_dataset("science")
class ScienceDataset(TaskListDataset):
    """Scientific calculation tasks from ``SCIENCE_TEMPLATES``; graded by value within 1% (see module docs)."""

    name = "science"

    def __init__(self, seed: int = 0, limit: int | None = None, python: bool = True,
                 templates: Sequence[str] | None = None) -> None:
        _check_limit(limit)
        names = _chosen(templates, SCIENCE_TEMPLATES, "science template(s)")
        count = DEFAULT_SIZE if limit is None else limit
        rng = random.Random(f"peerstep-science-{seed}")
        tasks = []
        for i in range(count):
            template = rng.choice(names)
            p = SCIENCE_TEMPLATES[template](rng)
            question = (f"{p.question} Give the answer in {p.unit}, to at least 3 significant figures; submit the "
                        f"number only.")
            tasks.append(StaticTask(
                task_id=f"science-{seed}-{i:04d}", question=question, gold=_format_answer(p.answer),
                checker=NumericChecker(rtol=SCIENCE_RTOL, atol=p.atol), python=python,
                tags={"template": template, "topic": p.topic, "unit": p.unit, "rtol": SCIENCE_RTOL, "atol": p.atol},
            ))
        super().__init__(tasks)
        self.seed = seed
