"""peerstep environments and datasets served to Aviary users: as Aviary ``Environment`` / ``TaskDataset``
subclasses, and ``AviaryServer``, Aviary's ``TaskDatasetServer`` in a background thread on 127.0.0.1.

A served episode is written for an agent that knows nothing of peerstep (an LDP ``SimpleAgent``, say):

* its opening message starts with what to do, built from the tools offered (``task_instructions``), and carries
  the task id in its ``info`` (Aviary's client has no ``get_id`` over HTTP; ``info`` is what it receives);
* a reply without tool calls gets Aviary's own "No tool calls received. Please call one or more tools to
  proceed." (``NO_TOOL_CALLS``), not peerstep's text-call format;
* every tool observation, the finishing one included, has ``info`` with ``ok``, ``latency_s``, ``timed_out``
  and ``truncated``;
* a request the server cannot serve is a 4xx with a one-line reason (``TaskRequestError``): an unknown task
  index or id 404, a task index missing or task arguments other than ``task_id`` 400, a step before reset 409;
  malformed JSON or fields are FastAPI's 422, an unknown env id Aviary's 404, a wrong API key Aviary's 403.
  Aviary's own server answers every exception from a dataset or environment with 500, so ``AviaryServer``
  serves ``PeerstepTaskDatasetServer``, which maps ``TaskRequestError`` to its status first.

The gold answer is not sent: it stays in ``export_frame()``, on the server.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from peerstep._errors import InputError, PeerstepError
from peerstep.environments._base import Environment, Message, task_instructions
from peerstep.environments._dataset import EnvironmentDataset, dataset_names, load_dataset
from peerstep.environments.aviary._convert import to_aviary_message, to_aviary_tool, to_openai_message
from peerstep.environments.aviary._errors import (
    INSTALL_HINT,
    AviaryNotInstalledError,
    _require_aviary,
    describe_exception,
)

if TYPE_CHECKING:
    import aviary.core as av


class TaskRequestError(PeerstepError):
    """A request for a task or a step the served dataset cannot serve; ``status_code`` is its HTTP status."""

    status_code = 400


class TaskNotFoundError(TaskRequestError, IndexError):
    """No task at that index, or with that id."""

    status_code = 404


class EpisodeStateError(TaskRequestError, RuntimeError):
    """A step the episode is not ready for (before ``reset``)."""

    status_code = 409


def with_instructions(messages: list[Message], tools: list[Any], finish_tool: str | None,
                      task_id: str | None) -> list[Message]:
    """The opening messages with ``task_instructions`` in front of the first user text and the task id in its
    ``info``: one user message, not two in a row (some chat templates demand alternating roles)."""
    out = [dict(m) for m in messages]
    text = task_instructions(tools, finish_tool)
    first = next((i for i, m in enumerate(out) if m.get("role") == "user" and isinstance(m.get("content"), str)),
                 None)
    if first is None:
        out.insert(0, {"role": "user", "content": text})
        first = 0
    else:
        out[first]["content"] = f"{text}\n\n{out[first]['content']}"
    if task_id is not None:
        out[first]["info"] = {**(out[first].get("info") or {}), "task_id": task_id}
    return out


class _AviaryClasses(NamedTuple):
    PeerstepAviaryEnv: type[Any]
    PeerstepTaskDataset: type[Any]


@functools.cache
def _classes() -> _AviaryClasses:
    """Classes that subclass Aviary's, defined on first use so that this module imports without Aviary."""
    _require_aviary()
    from aviary.core import Environment as AviaryEnv
    from aviary.core import Frame, TaskDataset
    from aviary.core import Message as AviaryMessage
    from aviary.core import Tool as AviaryToolModel

    class PeerstepAviaryEnv(AviaryEnv[None]):
        """A peerstep environment as an Aviary ``Environment``: each ``reset`` builds a fresh one from ``factory``.

        Observations keep peerstep's ``info`` (``ok``, latency, timeouts) as Aviary's ``Message.info``,
        which Aviary's server sends to clients. With ``instructions`` (the default) the opening message says what
        to do and names the finishing tool and its argument, from the tools offered, and its ``info`` carries the
        task id. peerstep's own agent does not get these from its environments, because its system prompt
        already says all of it in the words it was measured with; here the client is any agent.
        """

        def __init__(self, factory: Callable[[], Environment], *, task_id: str | None = None,
                     gold: str | None = None, instructions: bool = True) -> None:
            self.factory = factory
            self.task_id = task_id
            self.gold = gold
            self.instructions = instructions
            self.env: Environment | None = None
            self.tools: list[AviaryToolModel] = []
            self.state = None
            self.last: dict[str, Any] = {}

        async def reset(self) -> tuple[list[AviaryMessage], list[AviaryToolModel]]:
            await self.close()
            self.env = self.factory()
            messages, tools = await self.env.reset()
            if self.instructions:
                finish = getattr(self.env, "finish_tool", None)
                messages = with_instructions(messages, tools, finish if isinstance(finish, str) else None,
                                             self.task_id)
            self.tools = [to_aviary_tool(t) for t in tools]
            self.last = {"reward": 0.0, "done": False, "truncated": False}
            return [to_aviary_message(m) for m in messages], list(self.tools)

        async def step(self, action: AviaryMessage) -> tuple[list[AviaryMessage], float, bool, bool]:
            if self.env is None:
                raise EpisodeStateError("step() before reset(): reset the environment first")
            observations, reward, done, truncated = await self.env.step(to_openai_message(action))
            self.last = {"reward": reward, "done": done, "truncated": truncated}
            if (done or truncated) and observations:
                # the episode is over, so the gold answer can no longer help the agent: the last observation carries
                # the outcome (Aviary's HTTP protocol has no export_frame), for clients that score or train on it
                submitted = getattr(self.env, "submitted", None)
                last = observations[-1]
                last["info"] = {**(last.get("info") or {}), "episode": {
                    "task_id": self.task_id, "gold": self.gold, "answer": submitted,
                    "correct": self.env.grade(submitted) if submitted is not None else None}}
            return [to_aviary_message(o) for o in observations], reward, done, truncated

        async def get_id(self) -> str:
            if self.task_id is None:
                raise ValueError("this environment was built without a task id")
            return self.task_id

        def export_frame(self) -> Frame:
            return Frame(state=dict(self.last), info={"task_id": self.task_id, "gold": self.gold,
                                                      "environment": type(self.env).__name__ if self.env else None})

        async def close(self) -> None:
            if self.env is not None:
                env, self.env = self.env, None
                await env.close()

    class PeerstepTaskDataset(TaskDataset[PeerstepAviaryEnv]):
        """A peerstep ``EnvironmentDataset`` as an Aviary ``TaskDataset`` (servable with ``TaskDatasetServer``)."""

        def __init__(self, dataset: EnvironmentDataset, *, instructions: bool = True) -> None:
            self.dataset = dataset
            self.instructions = instructions

        def __len__(self) -> int:
            return len(self.dataset)

        def get_new_env_by_idx(self, idx: int) -> PeerstepAviaryEnv:
            n = len(self.dataset)
            if not 0 <= idx < n:
                raise TaskNotFoundError(f"task index {idx} is out of range: {self.dataset.name!r} has {n} tasks, "
                                        f"indices 0 to {n - 1}")
            info = self.dataset.info(idx)
            return PeerstepAviaryEnv(self.dataset.factory(idx), task_id=info.task_id, gold=info.gold,
                                     instructions=self.instructions)

        def get_new_env(self) -> PeerstepAviaryEnv:
            raise TaskRequestError(f"{self.dataset.name!r} is a finite dataset of {len(self.dataset)} tasks: "
                                   "start one by task_idx (or task_kwargs {\"task_id\": ...})")

        def get_new_env_by_args(self, **kwargs: Any) -> PeerstepAviaryEnv:
            """``task_id=...``: the task with that id (Aviary's ``/start`` with ``task_kwargs``)."""
            if set(kwargs) != {"task_id"}:
                raise TaskRequestError(f"task_kwargs takes only task_id, got {sorted(kwargs)}")
            wanted = str(kwargs["task_id"])
            for idx in range(len(self.dataset)):
                if self.dataset.info(idx).task_id == wanted:
                    return self.get_new_env_by_idx(idx)
            raise TaskNotFoundError(f"no task with id {wanted!r} in {self.dataset.name!r}")

    return _AviaryClasses(PeerstepAviaryEnv, PeerstepTaskDataset)


def peerstep_aviary_env(factory: Callable[[], Environment], *, task_id: str | None = None,
                        gold: str | None = None, instructions: bool = True) -> av.Environment[None]:
    """A peerstep environment factory as an Aviary ``Environment`` (a ``PeerstepAviaryEnv``)."""
    env: av.Environment[None] = _classes().PeerstepAviaryEnv(factory, task_id=task_id, gold=gold,
                                                             instructions=instructions)
    return env


def peerstep_task_dataset(dataset: EnvironmentDataset, *, instructions: bool = True) -> av.TaskDataset[Any]:
    """A peerstep dataset as an Aviary ``TaskDataset`` (a ``PeerstepTaskDataset``)."""
    task_dataset: av.TaskDataset[Any] = _classes().PeerstepTaskDataset(dataset, instructions=instructions)
    return task_dataset


@functools.cache
def _server_class() -> type[Any]:
    """``PeerstepTaskDatasetServer`` (``_http``), imported on first use: it needs fhaviary's server extra."""
    from peerstep.environments.aviary._http import PeerstepTaskDatasetServer

    return PeerstepTaskDatasetServer


DEFAULT_PORT = 8041  # Aviary's own (aviary.dataset_server.DEFAULT_SERVER_PORT)
TASK_FILE_SUFFIXES = (".yaml", ".yml", ".jsonl")


def load_served_dataset(spec: str, *, seed: int = 0, python: bool = False) -> EnvironmentDataset:
    """``spec`` is a registered dataset name (``load_dataset``) or the path of a task file (``TaskFileDataset``, as
    ``peerstep run`` reads it). ``python`` offers the sandboxed Python tool where the dataset allows it."""
    if spec in dataset_names():
        return load_dataset(spec, seed=seed, python=python)
    path = Path(spec).expanduser()
    if path.suffix.lower() in TASK_FILE_SUFFIXES or path.is_file():
        from peerstep.environments.taskfile import TaskFileDataset

        return TaskFileDataset(path, python=python)
    raise InputError(f"{spec!r} is neither a dataset ({', '.join(dataset_names())}) nor a task file "
                     f"({', '.join(TASK_FILE_SUFFIXES)})")


class AviaryServer:
    """Aviary's ``TaskDatasetServer`` (``PeerstepTaskDatasetServer``: 4xx for bad requests) for ``dataset`` in a
    background thread; stops cleanly on ``stop()``.

    Binds 127.0.0.1 unless told otherwise (Aviary's own default is every interface). ``port=0``
    takes a free port, read back into ``port`` and ``url`` once the server is listening.
    """

    def __init__(self, dataset: av.TaskDataset[Any], *, host: str = "127.0.0.1", port: int = 0,
                 api_key: str | None = None, start_timeout: float = 30.0) -> None:
        _require_aviary()
        self.dataset = dataset
        self.host = host
        self.port = port
        self.api_key = api_key
        self.start_timeout = start_timeout
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> AviaryServer:
        try:
            import uvicorn

            server_class = _server_class()
        except ImportError as exc:
            raise AviaryNotInstalledError(f"serving Aviary tasks needs fhaviary's server extra: {INSTALL_HINT}") \
                from exc
        task_server = server_class(self.dataset, host=self.host, port=self.port, api_key=self.api_key)
        if task_server.app is None:
            raise PeerstepError("the TaskDatasetServer has no app to serve")
        config = uvicorn.Config(task_server.app, host=self.host, port=self.port, log_level="warning",
                                access_log=False, lifespan="off")
        self._server = server = uvicorn.Server(config)

        async def serve() -> None:
            try:
                await server.serve()
            finally:
                await task_server.close()  # environments a client left open

        def run() -> None:
            try:
                asyncio.run(serve())
            except BaseException as exc:  # reported by start() or stop(), in the caller's thread
                self._failure = exc

        self._thread = threading.Thread(target=run, name=f"aviary-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                why = describe_exception(self._failure) if self._failure else "it did not start in time"
                raise PeerstepError(f"the Aviary task server on {self.host}:{self.port} failed to start: {why}")
            time.sleep(0.02)
        self.port = server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
            if self._thread.is_alive():
                raise PeerstepError(f"the Aviary task server on port {self.port} did not stop within 30 s")
        self._thread = None

    def wait(self, poll_s: float = 0.5) -> None:
        """Block until the server stops (``stop()`` from another thread, or a failure); Ctrl-C interrupts it."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=poll_s)
        if self._failure is not None:
            raise PeerstepError(f"the Aviary task server stopped: {describe_exception(self._failure)}")

    def __enter__(self) -> AviaryServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
