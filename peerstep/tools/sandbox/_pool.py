"""A pool of pre-started sandboxes, so that a trajectory never waits for a cold start (about 0.6 s locally).

Released sandboxes are reset in the background (a fresh interpreter, an empty working dir) before they are handed
out again, so two trajectories never see each other's state and ``acquire`` stays fast.

A pool never holds more than ``max_open`` sandboxes (default ``MAX_POOL_SIZE``, 64, or ``PEERSTEP_MAX_SANDBOXES``):
each one is an interpreter of about 60-80 MB and a share of two CPU cores here; asking for more raises
``SandboxCapacityError`` at once rather than failing somewhere in the middle of a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable

from ._base import Sandbox, SandboxCapacityError, SandboxError

log = logging.getLogger(__name__)

MAX_POOL_SIZE = 64
START_CONCURRENCY = max(2, 2 * (os.cpu_count() or 1))  # cold starts in flight at once (each is CPU-bound)


def max_pool_size() -> int:
    """The largest pool allowed: ``PEERSTEP_MAX_SANDBOXES`` if set, else ``MAX_POOL_SIZE``."""
    setting = os.environ.get("PEERSTEP_MAX_SANDBOXES", "").strip()
    return int(setting) if setting else MAX_POOL_SIZE


def check_pool_size(size: int, max_open: int | None = None) -> None:
    """Raise ``SandboxCapacityError`` when ``size`` sandboxes (e.g. one per trajectory) are more than allowed."""
    limit = max_pool_size() if max_open is None else max_open
    if size > limit:
        raise SandboxCapacityError(
            f"{size} sandboxes at once is more than the limit of {limit} (one per trajectory); use fewer "
            "trajectories, or raise the limit with PEERSTEP_MAX_SANDBOXES if the machine has the memory and cores"
        )


class SandboxPool:
    """``async with pool.acquire() as sb:`` hands out a ready sandbox; ``close()`` stops them all."""

    def __init__(self, factory: Callable[[], Sandbox], size: int = 2, max_open: int | None = None) -> None:
        if size < 0:
            raise ValueError("size must be >= 0")
        self.max_open = max_pool_size() if max_open is None else max_open
        check_pool_size(size, self.max_open)
        self.factory = factory
        self.size = size
        self._open = 0  # sandboxes made by this pool and not yet closed
        self._idle: asyncio.Queue[Sandbox] = asyncio.Queue()
        self._busy: set[Sandbox] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def start(self) -> None:
        """Pre-start ``size`` sandboxes concurrently. If one fails, all are closed (``async with`` would not call
        ``close`` after a failed start) and its error is raised."""
        sandboxes = [self._make() for _ in range(self.size - self._idle.qsize())]
        # a few at a time: 64 cold starts at once on 2 cores each took longer than the start timeout (30 s)
        gate = asyncio.Semaphore(START_CONCURRENCY)

        async def start(sb: Sandbox) -> None:
            async with gate:
                await sb.start()

        results = await asyncio.gather(*(start(sb) for sb in sandboxes), return_exceptions=True)
        failure = next((res for res in results if isinstance(res, BaseException)), None)
        if failure is not None:
            await self.close()
            await asyncio.gather(*(self._close(sb) for sb in sandboxes), return_exceptions=True)
            raise failure
        for sb in sandboxes:
            self._idle.put_nowait(sb)

    async def __aenter__(self) -> SandboxPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Sandbox]:
        """A ready sandbox: an idle one, or a newly started one when none is idle."""
        if self._closed:
            raise SandboxError("the sandbox pool is closed")
        try:
            sb = self._idle.get_nowait()
        except asyncio.QueueEmpty:
            sb = self._make()
            try:
                await sb.start()
            except BaseException:
                await self._close(sb)
                raise
        self._busy.add(sb)
        try:
            yield sb
        finally:
            self._busy.discard(sb)
            self._release(sb)

    def _make(self) -> Sandbox:
        if self._open >= self.max_open:
            raise SandboxCapacityError(
                f"this pool already has {self._open} sandboxes open, its limit (max_open); release one first"
            )
        self._open += 1
        return self.factory()

    async def _close(self, sb: Sandbox) -> None:
        self._open -= 1
        await sb.close()

    def _release(self, sb: Sandbox) -> None:
        if self._closed or self._idle.qsize() + len(self._tasks) >= self.size:
            task = asyncio.ensure_future(self._close(sb))
        else:
            task = asyncio.ensure_future(self._recycle(sb))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _recycle(self, sb: Sandbox) -> None:
        try:
            await sb.reset()
        except Exception:
            log.warning("sandbox reset failed; closing it", exc_info=True)
            await self._close(sb)
            return
        if self._closed:
            await self._close(sb)
        else:
            self._idle.put_nowait(sb)

    async def close(self) -> None:
        """Close every sandbox, idle, busy or being reset. Idempotent."""
        self._closed = True
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        sandboxes = [*self._busy]
        while not self._idle.empty():
            sandboxes.append(self._idle.get_nowait())
        await asyncio.gather(*(self._close(sb) for sb in sandboxes), return_exceptions=True)

    @property
    def idle(self) -> int:
        """How many ready sandboxes are waiting."""
        return self._idle.qsize()
