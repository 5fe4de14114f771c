"""peerstep environments and datasets served to Aviary users: as Aviary ``Environment`` / ``TaskDataset``
subclasses, and ``AviaryServer``, Aviary's ``TaskDatasetServer`` in a background thread on 127.0.0.1."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from peerstep._errors import PeerstepError
from peerstep.environments._base import Environment
from peerstep.environments._dataset import EnvironmentDataset
from peerstep.environments.aviary._convert import to_aviary_message, to_aviary_tool, to_openai_message
from peerstep.environments.aviary._errors import (
    INSTALL_HINT,
    AviaryNotInstalledError,
    _require_aviary,
    describe_exception,
)

if TYPE_CHECKING:
    import aviary.core as av


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
        which Aviary's server sends to clients.
        """

        def __init__(self, factory: Callable[[], Environment], *, task_id: str | None = None,
                     gold: str | None = None) -> None:
            self.factory = factory
            self.task_id = task_id
            self.gold = gold
            self.env: Environment | None = None
            self.tools: list[AviaryToolModel] = []
            self.state = None
            self.last: dict[str, Any] = {}

        async def reset(self) -> tuple[list[AviaryMessage], list[AviaryToolModel]]:
            await self.close()
            self.env = self.factory()
            messages, tools = await self.env.reset()
            self.tools = [to_aviary_tool(t) for t in tools]
            self.last = {"reward": 0.0, "done": False, "truncated": False}
            return [to_aviary_message(m) for m in messages], list(self.tools)

        async def step(self, action: AviaryMessage) -> tuple[list[AviaryMessage], float, bool, bool]:
            if self.env is None:
                raise RuntimeError("step() before reset(): reset the environment first")
            observations, reward, done, truncated = await self.env.step(to_openai_message(action))
            self.last = {"reward": reward, "done": done, "truncated": truncated}
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

        def __init__(self, dataset: EnvironmentDataset) -> None:
            self.dataset = dataset

        def __len__(self) -> int:
            return len(self.dataset)

        def get_new_env_by_idx(self, idx: int) -> PeerstepAviaryEnv:
            if not 0 <= idx < len(self.dataset):
                raise IndexError(f"task {idx} is out of range; the dataset has {len(self.dataset)} tasks")
            info = self.dataset.info(idx)
            return PeerstepAviaryEnv(self.dataset.factory(idx), task_id=info.task_id, gold=info.gold)

    return _AviaryClasses(PeerstepAviaryEnv, PeerstepTaskDataset)


def peerstep_aviary_env(factory: Callable[[], Environment], *, task_id: str | None = None,
                        gold: str | None = None) -> av.Environment[None]:
    """A peerstep environment factory as an Aviary ``Environment`` (a ``PeerstepAviaryEnv``)."""
    env: av.Environment[None] = _classes().PeerstepAviaryEnv(factory, task_id=task_id, gold=gold)
    return env


def peerstep_task_dataset(dataset: EnvironmentDataset) -> av.TaskDataset[Any]:
    """A peerstep dataset as an Aviary ``TaskDataset`` (a ``PeerstepTaskDataset``)."""
    task_dataset: av.TaskDataset[Any] = _classes().PeerstepTaskDataset(dataset)
    return task_dataset


class AviaryServer:
    """Aviary's ``TaskDatasetServer`` for ``dataset`` in a background thread; stops cleanly on ``stop()``.

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
            from aviary.core import TaskDatasetServer
        except ImportError as exc:
            raise AviaryNotInstalledError(f"serving Aviary tasks needs fhaviary's server extra: {INSTALL_HINT}") \
                from exc
        task_server = TaskDatasetServer(self.dataset, host=self.host, port=self.port, api_key=self.api_key)
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

    def __enter__(self) -> AviaryServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
