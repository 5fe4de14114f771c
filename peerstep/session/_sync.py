"""``Session`` for sync code: scripts, and notebooks whose event loop is already running.

The session lives on an event loop of its own in a daemon thread, so ``send`` works the same whether or not the
calling thread runs a loop (``asyncio.run`` inside Jupyter's loop would refuse). In a notebook ``await``-ing the
async ``Session`` directly is better; this is for code that cannot.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from peerstep.session._session import Session
from peerstep.session._store import Turn

T = TypeVar("T")


class SyncSession:
    """``with SyncSession(base_url=...) as s: s.send("...")``; the options are ``Session``'s. Calls that need
    approval go to ``approver`` (a plain function is fine); without one they would wait forever, so a policy that
    asks needs an approver here."""

    def __init__(self, **options: Any) -> None:
        policy = options.get("approve")
        if policy is not None and options.get("approver") is None:
            from peerstep.agent._approval import ApprovalPolicy

            parsed = policy if isinstance(policy, ApprovalPolicy) else ApprovalPolicy.from_option(str(policy))
            if parsed.default == "ask" or any(rule.action == "ask" for rule in parsed.rules):
                from peerstep._errors import InputError

                raise InputError("the approval policy asks about some calls: pass approver= (a function that takes "
                                 "an ApprovalRequest and returns an ApprovalDecision), or use the async Session")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="peerstep-session", daemon=True)
        self._thread.start()
        self.session = Session(**options)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def open(self) -> SyncSession:
        self._call(self.session.__aenter__())
        return self

    def send(self, text: str) -> Turn:
        return self._call(self.session.send(text))

    def undo(self) -> Turn:
        return self._call(self.session.undo())

    @property
    def id(self) -> str:
        return self.session.id

    @property
    def turns(self) -> list[Turn]:
        return self.session.turns

    def close(self) -> None:
        if self._loop.is_running():
            try:
                self._call(self.session.aclose())
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=30)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()

    def __enter__(self) -> SyncSession:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
