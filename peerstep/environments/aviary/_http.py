"""``PeerstepTaskDatasetServer``: Aviary's ``TaskDatasetServer`` with ``/start`` and ``/step`` answering a
``TaskRequestError`` with its own status (404, 400, 409) and a one-line reason.

Aviary maps every exception from a dataset or an environment to 500 with a traceback. These two routes are
rebuilt on Aviary's own request models, state (``envs``), lock and API-key dependency; any other exception still
goes through Aviary's mapping. Imported only when a server starts (it needs fhaviary's server extra, FastAPI).
No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations as live objects.
"""

import asyncio
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aviary.dataset_server import StartRequest, StepRequest, TaskDatasetServer, handle_exc_as_http_exc
from aviary.tools import MessagesAdapter
from fastapi import HTTPException
from fastapi.routing import APIRoute

from peerstep.environments.aviary._server import TaskRequestError

REPLACED_ROUTES = ("/start", "/step")


@contextmanager
def http_errors() -> Iterator[None]:
    """A ``TaskRequestError`` as its 4xx; anything else as Aviary's own server maps it (logged, 500)."""
    try:
        yield
    except TaskRequestError as exc:
        raise HTTPException(status_code=exc.status_code, detail=str(exc)) from None
    except Exception:
        with handle_exc_as_http_exc():
            raise


class PeerstepTaskDatasetServer(TaskDatasetServer[Any]):
    def _setup_routes(self) -> None:
        super()._setup_routes()
        routes = [r for r in self.router.routes if isinstance(r, APIRoute)]
        dependencies = next(r.dependencies for r in routes if r.path == "/start")  # Aviary's API-key check
        self.router.routes[:] = [r for r in self.router.routes
                                 if not (isinstance(r, APIRoute) and r.path in REPLACED_ROUTES)]

        @self.router.post("/start", dependencies=dependencies, response_model=None)
        async def start(req: StartRequest) -> dict[str, str]:
            with http_errors():
                env = await asyncio.to_thread(req.make_env, self.dataset)
            async with self.lock:
                env_id = str(uuid.uuid4())
                self.envs[env_id] = (env, time.time())
            return {"env_id": env_id}

        @self.router.post("/step", dependencies=dependencies, response_model=None)
        async def step(req: StepRequest) -> tuple[Any, ...]:
            async with self.lock:
                env = self._get_env(req.env_id)
            with http_errors():
                obs, *reward_done_truncated = await env.step(req.action)
            return MessagesAdapter.dump_python(obs, context={"include_info": True}), *reward_done_truncated
