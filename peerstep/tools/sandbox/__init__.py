"""Run untrusted Python for the agent: a persistent interpreter behind one small interface.

``make_sandbox()`` picks the backend: bubblewrap locally (default), E2B when configured, and an unconfined kernel
only on explicit request. Code failures are results (``ExecResult``); only infrastructure failures raise
``SandboxError``.
"""

from ._base import ExecResult, Sandbox, SandboxError, SandboxLimits
from ._bwrap import BwrapSandbox
from ._e2b import E2BSandbox
from ._local import LocalUnsafeSandbox
from ._pool import SandboxPool
from ._select import BACKENDS, make_sandbox

__all__ = [
    "BACKENDS",
    "BwrapSandbox",
    "E2BSandbox",
    "ExecResult",
    "LocalUnsafeSandbox",
    "Sandbox",
    "SandboxError",
    "SandboxLimits",
    "SandboxPool",
    "make_sandbox",
]
