"""The agent side: the model client, tool-call parsing, prompts, approvals and one trajectory's steps."""

from peerstep.agent._approval import ApprovalDecision, ApprovalPolicy, ApprovalRequest, ApprovalRule, Approver
from peerstep.agent._config import AgentConfig, Budget
from peerstep.agent._prompts import PROGRAM_PROMPT
from peerstep.agent._state import TrajectoryState
from peerstep.agent._trajectory import Trajectory
from peerstep.client import Completion, ModelClient, SamplingParams
from peerstep.client._parsing import ParsedCall, ParseResult, parse_tool_calls

__all__ = ["PROGRAM_PROMPT", "AgentConfig", "ApprovalDecision", "ApprovalPolicy", "ApprovalRequest", "ApprovalRule",
           "Approver", "Budget", "Completion", "ModelClient", "ParseResult", "ParsedCall", "SamplingParams",
           "Trajectory", "TrajectoryState", "parse_tool_calls"]
