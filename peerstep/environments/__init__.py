"""Environments: Aviary-style episodes with async reset/step, OpenAI-format messages, a registry."""

from peerstep.environments._answers import answers_match
from peerstep.environments._base import (
    Environment,
    Message,
    StepOutput,
    ToolEnvironment,
    environment_names,
    register_environment,
)
from peerstep.environments.question import QuestionEnvironment, submit_answer

__all__ = ["Environment", "Message", "QuestionEnvironment", "StepOutput", "ToolEnvironment", "answers_match",
           "environment_names", "register_environment", "submit_answer"]
