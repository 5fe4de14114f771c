"""The model client: one OpenAI-compatible chat interface (the ``openai`` SDK, retries, streaming, token counts).

A low layer on purpose: engines hand out clients, agents and verifiers use them, and nothing here knows about
either. ``peerstep.testing.model`` has a scripted stand-in and the contract every client keeps.
"""

from peerstep.client._openai import (
    STREAM_INTERRUPTED,
    Completion,
    IncompleteStreamError,
    ModelClient,
    SamplingParams,
    TokenCallback,
)

__all__ = ["STREAM_INTERRUPTED", "Completion", "IncompleteStreamError", "ModelClient", "SamplingParams",
           "TokenCallback"]
