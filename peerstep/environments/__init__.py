"""Environments: Aviary-style episodes with async reset/step, OpenAI-format messages, a registry."""

from peerstep.environments._base import (
    Environment,
    Message,
    StepOutput,
    ToolEnvironment,
    call_arguments,
    environment_names,
    observation,
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
           "ToolEnvironment", "call_arguments", "dataset_names", "environment_names", "load_dataset", "observation",
           "register_dataset", "register_environment", "submit_answer"]
