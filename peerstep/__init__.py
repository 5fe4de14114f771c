"""peerstep: agentic, tool-using reasoning on LangGraph, with step logs for process supervision.

The public API is small; everything else lives in subpackages with one job each.
"""

from peerstep._api import Endpoint, EpisodeResult, asolve, run_episode, solve
from peerstep._errors import (
    EngineError,
    InputError,
    ModelFetchError,
    ModelNotFoundError,
    ModelServerError,
    PeerstepError,
)
from peerstep.agent import AgentConfig, Budget, ModelClient, SamplingParams
from peerstep.environments import Environment, QuestionEnvironment, ToolEnvironment, register_environment
from peerstep.steplog import StepKind, StepLog, StepRecord
from peerstep.tools import Tool, tool

__all__ = [
    "AgentConfig",
    "Budget",
    "Endpoint",
    "EngineError",
    "Environment",
    "EpisodeResult",
    "InputError",
    "ModelClient",
    "ModelFetchError",
    "ModelNotFoundError",
    "ModelServerError",
    "PeerstepError",
    "QuestionEnvironment",
    "SamplingParams",
    "StepKind",
    "StepLog",
    "StepRecord",
    "Tool",
    "ToolEnvironment",
    "asolve",
    "register_environment",
    "run_episode",
    "solve",
    "tool",
]
