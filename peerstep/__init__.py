"""peerstep: agentic, tool-using reasoning on LangGraph, with step logs for process supervision.

The public API is small; everything else lives in subpackages with one job each.
"""

from peerstep._endpoint import Endpoint
from peerstep._errors import (
    EngineError,
    InputError,
    ModelFetchError,
    ModelNotFoundError,
    ModelServerError,
    PeerstepError,
)
from peerstep._runner import EpisodeResult, afork, aresume, arun, asolve, fork, resume, run, solve
from peerstep.agent import (
    AgentConfig,
    ApprovalDecision,
    ApprovalPolicy,
    ApprovalRequest,
    ApprovalRule,
    Approver,
    Budget,
    ModelClient,
    SamplingParams,
)
from peerstep.environments import Environment, QuestionEnvironment, ToolEnvironment, register_environment
from peerstep.graphs import ParallelConfig
from peerstep.peers import SharingConfig
from peerstep.registry import STRATEGIES
from peerstep.session import Session, SyncSession
from peerstep.steplog import StepKind, StepLog, StepRecord
from peerstep.tools import Tool, tool

__all__ = [
    "STRATEGIES",
    "AgentConfig",
    "ApprovalDecision",
    "ApprovalPolicy",
    "ApprovalRequest",
    "ApprovalRule",
    "Approver",
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
    "ParallelConfig",
    "PeerstepError",
    "QuestionEnvironment",
    "SamplingParams",
    "Session",
    "SharingConfig",
    "StepKind",
    "StepLog",
    "StepRecord",
    "SyncSession",
    "Tool",
    "ToolEnvironment",
    "afork",
    "aresume",
    "arun",
    "asolve",
    "fork",
    "register_environment",
    "resume",
    "run",
    "solve",
    "tool",
]
