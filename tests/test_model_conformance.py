"""The model-client contract (``peerstep.testing.model.check_model_client``), on the public fake, on the real
``ModelClient`` over real HTTP to the scripted server (``peerstep.testing.server``), and on fakes that break it: the
check must be able to fail. On a real engine it runs in ``tests/e2e``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from peerstep.agent import Completion, SamplingParams
from peerstep.client import ModelClient
from peerstep.testing.model import ScriptedClient, check_model_client
from peerstep.testing.server import ScriptedServer


async def test_the_scripted_model_keeps_the_contract() -> None:
    assert await check_model_client(ScriptedClient(["ready", "ready now"])) == {}


def _ready(_messages: list[dict[str, Any]], _seed: int) -> str:
    return "ready, and streamed in several words"


async def test_the_real_client_keeps_the_contract_over_http() -> None:
    """Every check, on the real client talking HTTP to a scripted OpenAI-compatible server on 127.0.0.1: the model
    list, a plain reply (one completion, a finish reason, counted tokens) and a streamed one (server-sent events that
    add up to the reply). Nothing here needs a real model."""
    with ScriptedServer(reply=_ready) as server:
        client = ModelClient(server.base_url, "scripted", max_retries=0)
        try:
            assert await check_model_client(client) == {}
        finally:
            await client.close()
        assert server.requests == 2  # one plain and one streamed chat request reached the server
    assert client.requests == 2 and client.completion_tokens == 24  # the server's usage, counted from both


async def test_the_real_client_over_http_fails_the_check_for_a_model_not_served() -> None:
    with ScriptedServer(reply=_ready, model="another-model") as server:
        client = ModelClient(server.base_url, "scripted", max_retries=0)
        try:
            failures = await check_model_client(client)
        finally:
            await client.close()
    assert set(failures) == {"list_models"} and "another-model" in failures["list_models"]


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
