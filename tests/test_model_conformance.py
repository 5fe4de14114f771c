"""The model-client contract (``peerstep.testing.model.check_model_client``), on the public fake and on fakes
that break it: the check must be able to fail."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from peerstep.agent import Completion, SamplingParams
from peerstep.testing.model import ScriptedClient, check_model_client


async def test_the_scripted_model_keeps_the_contract() -> None:
    assert await check_model_client(ScriptedClient(["ready", "ready now"])) == {}


class CutOffStream(ScriptedClient):
    """A server that drops the stream before its last event: text, but no finish reason."""

    async def chat(self, messages: Sequence[dict[str, Any]], *, sampling: SamplingParams | None = None,
                   **kwargs: Any) -> list[Completion]:
        out = await super().chat(messages, sampling=sampling, **kwargs)
        return [c.model_copy(update={"finish_reason": None}) for c in out]


class LossyStream(ScriptedClient):
    async def chat(self, messages: Sequence[dict[str, Any]], *, sampling: SamplingParams | None = None,
                   on_token: Any = None, **kwargs: Any) -> list[Completion]:
        if on_token is not None:
            on_token(0, "rea")  # a token went missing on the way
        return await super().chat(messages, sampling=sampling, **kwargs)


async def test_the_check_catches_a_reply_without_finish_reason() -> None:
    assert "finish_reason" in await check_model_client(CutOffStream(["ready", "ready"]))


async def test_the_check_catches_streams_that_do_not_add_up() -> None:
    assert "streaming" in await check_model_client(LossyStream(["ready", "ready"]))


async def test_the_check_catches_a_dead_server() -> None:
    failures = await check_model_client(ScriptedClient([ConnectionError("gone"), ConnectionError("gone")]))
    assert "chat" in failures and "streaming" in failures
