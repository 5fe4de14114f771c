"""Environments: Aviary-style episodes with async reset/step, OpenAI-format messages, a registry."""

from peerstep.environments._base import (
    Environment,
    Message,
    StepOutput,
    ToolEnvironment,
    environment_names,
    register_environment,
)
from peerstep.environments._dataset import (
    EnvironmentDataset,
    TaskInfo,
    dataset_names,
    load_dataset,
    register_dataset,
)
from peerstep.environments.question import QuestionEnvironment, submit_answer

__all__ = ["Environment", "EnvironmentDataset", "Message", "QuestionEnvironment", "StepOutput", "TaskInfo",
           "ToolEnvironment", "dataset_names", "environment_names", "load_dataset",
           "register_dataset", "register_environment", "submit_answer"]
