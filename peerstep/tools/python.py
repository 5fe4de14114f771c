"""The ``python`` tool: model-written code runs in a sandbox owned by one trajectory.

The sandbox starts lazily on the first call (a question that never needs code costs no
kernel), keeps state across calls, and is closed with the environment. Timeouts, crashes and
floods come back as text notes from the sandbox (``ExecResult.to_observation``), so the tool
itself never raises for something the code did.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from peerstep.tools._base import Tool
from peerstep.tools.sandbox import Sandbox, SandboxPool, make_sandbox


class PythonSession:
    """A lazily started sandbox plus the ``python`` tool bound to it.

    With a ``pool`` (pre-started sandboxes shared by the trajectories of a run) the first call takes a
    warm sandbox instead of paying a cold start; on close the sandbox goes back to be reset.
    """

    def __init__(self, factory: Callable[[], Sandbox] | None = None, timeout_s: float = 30.0,
                 max_output_chars: int = 8000, pool: SandboxPool | None = None) -> None:
        self.factory = factory or (lambda: make_sandbox(timeout_s=timeout_s))
        self.pool = pool
        self.timeout_s = timeout_s
        self.max_output_chars = max_output_chars
        self.sandbox: Sandbox | None = None
        self._lease: contextlib.AbstractAsyncContextManager[Sandbox] | None = None

    async def _ensure(self) -> Sandbox:
        if self.sandbox is None:
            if self.pool is not None:
                lease = self.pool.acquire()
                self.sandbox = await lease.__aenter__()
                self._lease = lease
            else:
                sandbox = self.factory()
                await sandbox.start()
                self.sandbox = sandbox
        return self.sandbox

    async def python(self, code: str) -> str:
        """Run Python code in a persistent sandboxed interpreter and see its output.

        Variables and imports persist between calls; numpy, sympy and scipy are available; there is no network.
        Use print() to show results; the value of a final bare expression is shown too.

        Args:
            code: The Python source to run.
        """
        sandbox = await self._ensure()
        result = await sandbox.run(code, timeout=self.timeout_s)
        return result.to_observation(self.max_output_chars)

    def tool(self) -> Tool:
        # the sandbox enforces its own timeout and reports it; the tool's timeout is only a backstop
        return Tool(self.python, name="python", timeout=self.timeout_s + 60,
                    max_output_chars=self.max_output_chars + 500)

    async def close(self, *_: Any) -> None:
        sandbox, self.sandbox = self.sandbox, None
        lease, self._lease = self._lease, None
        if lease is not None:
            await lease.__aexit__(None, None, None)  # back to the pool, which resets it
        elif sandbox is not None:
            await sandbox.close()
