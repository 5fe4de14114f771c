"""Run untrusted Python for the agent: a persistent interpreter behind one small interface.

``make_sandbox()`` picks the backend: bubblewrap locally (default), E2B when configured, and an unconfined kernel
only on explicit request; backends are found by name in ``peerstep.registry.SANDBOXES``. Code failures are results
(``ExecResult``); only infrastructure failures raise ``SandboxError``.
"""

from ._base import ExecResult, Sandbox, SandboxCapacityError, SandboxError, SandboxLimits
from ._bwrap import BwrapSandbox
from ._e2b import E2BSandbox
from ._local import LocalUnsafeSandbox
from ._pool import MAX_POOL_SIZE, SandboxPool, check_pool_size
from ._select import make_sandbox

__all__ = [
    "MAX_POOL_SIZE",
    "BwrapSandbox",
    "E2BSandbox",
    "ExecResult",
    "LocalUnsafeSandbox",
    "Sandbox",
    "SandboxCapacityError",
    "SandboxError",
    "SandboxLimits",
    "SandboxPool",
    "check_pool_size",
    "make_sandbox",
]
