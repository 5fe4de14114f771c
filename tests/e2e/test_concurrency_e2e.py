"""One llama.cpp server, many streaming clients at once; and a served engine that dies (issue 10, items 1 and 9).

llama-cpp-python's server, left at its default, ends a stream in progress with ``[DONE]`` and no finish reason as
soon as another request arrives: concurrent clients then got empty replies that were recorded as answers. The
managed engine turns that off; these tests use real servers with the small model.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from peerstep.client import ModelClient, SamplingParams
from peerstep.engines import EngineConfig, LlamaCppEngine
from peerstep.models import SMALL_MODEL

pytestmark = pytest.mark.slow

CLIENTS = 8


@pytest.fixture(scope="module")
def small_llamacpp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaCppEngine]:
    engine = LlamaCppEngine(EngineConfig(model=SMALL_MODEL, context_length=2048),
                            state_dir=tmp_path_factory.mktemp("llamacpp-small"))
    engine.start(reuse=False)
    yield engine
    engine.stop()


async def test_concurrent_streaming_clients_each_get_a_whole_reply(small_llamacpp: LlamaCppEngine) -> None:
    # no retries: a stream cut off by the server must fail this test, not be papered over by a second attempt
    clients = [ModelClient(small_llamacpp.base_url, small_llamacpp.served_name, max_retries=0, timeout=300)
               for _ in range(CLIENTS)]
    streamed: list[list[str]] = [[] for _ in range(CLIENTS)]

    async def ask(i: int) -> tuple[str, str | None]:
        def on_token(_index: int, delta: str) -> None:
            streamed[i].append(delta)

        [completion] = await clients[i].chat(
            [{"role": "user", "content": f"Count from {i} to {i + 5}, separated by commas."}],
            sampling=SamplingParams(max_tokens=24), on_token=on_token)
        return completion.text, completion.finish_reason

    try:
        started = time.monotonic()
        replies = await asyncio.gather(*(ask(i) for i in range(CLIENTS)))
        seconds = time.monotonic() - started
    finally:
        for client in clients:
            await client.close()
    for i, (text, finish) in enumerate(replies):
        assert text.strip(), f"client {i} got an empty reply (finish reason {finish!r})"
        assert finish in ("stop", "length"), f"client {i}: finish reason {finish!r}"
        assert "".join(streamed[i]) == text  # what streamed in is the whole reply, delivered once
    assert seconds < 300


def _env(state: Path) -> dict[str, str]:
    return {**os.environ, "PEERSTEP_ENGINE_STATE": str(state), "COLUMNS": "200"}


def test_serve_says_so_and_fails_when_its_engine_is_killed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    serve = subprocess.Popen([sys.executable, "-m", "peerstep.cli", "serve", "--model", SMALL_MODEL],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(state))
    try:
        deadline = time.monotonic() + 120
        while not list(state.glob("*.json")):
            assert serve.poll() is None, serve.communicate()
            assert time.monotonic() < deadline, "peerstep serve did not start"
            time.sleep(0.2)
        engine_pid = json.loads(next(state.glob("*.json")).read_text())["pid"]
        os.kill(engine_pid, signal.SIGKILL)
        out, err = serve.communicate(timeout=60)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait(timeout=10)
    assert serve.returncode != 0, out + err  # a supervisor can tell
    assert "killed by SIGKILL" in out + err
