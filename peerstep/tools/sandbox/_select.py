"""Choose a backend from an explicit name, then the environment, else the local default.

The unconfined kernel is never chosen implicitly: a typo or a missing tool must not silently remove isolation.
"""

from __future__ import annotations

import os
from typing import Any

from ._base import Sandbox, SandboxError

BACKENDS = ("bwrap", "e2b", "local-unsafe")


def resolve_backend(backend: str | None = None) -> str:
    """``backend``, else ``PEERSTEP_SANDBOX``, else "e2b" when ``E2B_API_KEY`` is set, else "bwrap"."""
    name = backend or os.environ.get("PEERSTEP_SANDBOX") or ("e2b" if os.environ.get("E2B_API_KEY") else "bwrap")
    name = name.strip().lower()
    if name not in BACKENDS:
        raise SandboxError(f"unknown sandbox backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return name


def make_sandbox(backend: str | None = None, **limits: Any) -> Sandbox:
    """Build (not start) a sandbox; ``limits`` are ``SandboxLimits`` fields or backend options."""
    name = resolve_backend(backend)
    if name == "e2b":
        from ._e2b import E2BSandbox

        return E2BSandbox(**limits)
    if name == "local-unsafe":
        from ._local import LocalUnsafeSandbox

        return LocalUnsafeSandbox(**limits)
    from ._bwrap import BwrapSandbox

    return BwrapSandbox(**limits)
