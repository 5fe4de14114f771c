"""Agent configuration: sampling, budgets and how tool calls are requested."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from peerstep.agent._approval import ApprovalPolicy, ApprovalRule
from peerstep.client import ModelClient, SamplingParams

DEFAULT_STOP = ("```output",)


class Budget(BaseModel):
    """Limits per trajectory. Hitting any of them forces a final answer (one more, constrained call)."""

    max_steps: int = Field(default=10, ge=1, description="Model calls before the answer is forced.")
    max_tokens: int = Field(default=4096, ge=1, description="Generated tokens before the answer is forced.")
    wall_time_s: float = Field(default=600.0, gt=0, description="Seconds before the answer is forced.")


class AgentConfig(BaseModel):
    sampling: SamplingParams = Field(
        default_factory=lambda: SamplingParams(max_tokens=512, stop=list(DEFAULT_STOP)),
        description="The default stop sequence ends a reply where a code model starts inventing the output of the "
        "code it just wrote; the real output comes from the tool.",
    )
    budget: Budget = Field(default_factory=Budget)
    tool_choice: Literal["auto", "required"] | None = Field(
        default=None,
        description="'required' asks the server to constrain decoding to a tool call (vLLM structured output; on "
        "llama.cpp, the JSON-schema grammar of peerstep's tool-call front); "
        "'auto' lets the model write calls as text, which peerstep parses. None: the default the engine declares "
        "when peerstep started it (ManagedEngine.tool_choice: 'auto' for llama.cpp and vLLM, the way today's loop "
        "was measured), 'auto' on a server given by URL (see with_server_defaults).",
    )
    native_tools: bool = Field(
        default=False,
        description="Send the tools' schemas in the request's `tools` field on every call (they are always sent when "
        "a call is forced). Off by default, by measurement: with the schemas in the request the chat template puts a "
        "tool block in the prompt and the 1.5B model answered 13 of 16 dev problems with one `calculate` expression "
        "instead of a program; first-reply accuracy fell from 12/16 to 3/16 (README, 'Held-out').",
    )
    system_prompt: str | None = Field(default=None, description="Replaces the built-in system prompt.")
    answer_policy: Literal["accept", "confirm", "check"] = Field(
        default="accept",
        description="What a reply that states a final answer without calling the finishing tool does: 'accept' "
        "submits it, 'confirm' asks once quoting it, 'check' asks once for a tool check when no tool was used "
        "(see peerstep.agent._policy).",
    )
    answer_from_output: bool = Field(
        default=True,
        description="When the opening asked for one program that prints only the final answer (Python offered, the "
        "built-in prompt) and the program ran and printed one number and nothing else, submit that number instead "
        "of asking the model to restate it (see peerstep.agent._policy). Measured with the 1.5B model: the same "
        "verdict on all 16 dev and all 40 held-out tasks, model calls per task 2.0 -> 1.0 and tokens 129 -> 114 "
        "held out (README, 'Held-out').",
    )
    context_tokens: int | None = Field(
        default=None, ge=512,
        description="The model's context window, when known: before each call, the oldest tool outputs of a "
        "conversation that would not fit (with room for the reply) are folded to a one-line placeholder, and a "
        "step says so, instead of the server refusing the request. None: unknown, nothing is folded.",
    )
    approve: ApprovalPolicy = Field(
        default_factory=ApprovalPolicy,
        description="Which tool calls wait for a person (see peerstep.agent._approval): an ApprovalPolicy, a spec "
        "such as 'python=ask,calculate=auto', a policy file, or (as before) a list of tool-name globs, each asked. "
        "A call asked without an approver pauses the run (LangGraph interrupt; needs a checkpointed run, the "
        "default) until it is resumed with a decision per call.",
    )

    def with_server_defaults(self, client: ModelClient) -> AgentConfig:
        """This config with what it leaves unset taken from the client's server (``ModelClient.tool_choice`` and
        ``context_tokens``, declared by an engine peerstep started): what every run does first, whichever entry
        point started it."""
        update: dict[str, Any] = {}
        if self.tool_choice is None:
            update["tool_choice"] = client.tool_choice or "auto"
        if self.context_tokens is None and client.context_tokens:
            update["context_tokens"] = client.context_tokens
        return self.model_copy(update=update) if update else self

    @field_validator("approve", mode="before")
    @classmethod
    def _policy(cls, value: Any) -> Any:
        """Older configs and stored run metas give a list of globs; the CLI and users may give a spec string."""
        if isinstance(value, str):
            return ApprovalPolicy.from_option(value)
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return ApprovalPolicy(rules=[ApprovalRule(tool=glob, action="ask") for glob in value])
        return value
