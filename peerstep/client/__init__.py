"""The model client: one OpenAI-compatible chat interface (the ``openai`` SDK, retries, streaming, token counts).

Reading tool calls a model wrote as text (``_parsing``) lives here too: peerstep's agent and the tool-call
front of ``peerstep serve`` both need it. A low layer on purpose: engines hand out clients, agents and verifiers
use them, and nothing here knows about either. ``peerstep.testing.model`` has a scripted stand-in and the
contract every client keeps.
"""

from peerstep.client._openai import (
    STREAM_INTERRUPTED,
    Completion,
    IncompleteStreamError,
    ModelClient,
    SamplingParams,
    TokenCallback,
    missing_version_hint,
)
from peerstep.client._parsing import ParsedCall, ParseResult, cut_after, expected_format, parse_tool_calls

__all__ = ["STREAM_INTERRUPTED", "Completion", "IncompleteStreamError", "ModelClient", "ParseResult", "ParsedCall",
           "SamplingParams", "TokenCallback", "cut_after", "expected_format", "missing_version_hint",
           "parse_tool_calls"]
