"""Choose a backend from an explicit name, then the environment, else the local default.

Backends are found by name in ``peerstep.registry.SANDBOXES``: register a ``Sandbox`` class there and
``make_sandbox(name)`` (or ``PEERSTEP_SANDBOX=name``) builds it.

The unconfined kernel is never chosen implicitly: a typo or a missing tool must not silently remove isolation.
"""

from __future__ import annotations

import os
from typing import Any

from peerstep._errors import InputError
from peerstep.registry import SANDBOXES

from ._base import Sandbox, SandboxError


def resolve_backend(backend: str | None = None) -> str:
    """``backend``, else ``PEERSTEP_SANDBOX``, else "e2b" when ``E2B_API_KEY`` is set, else "bwrap"; an unknown
    name raises ``SandboxError`` (it never falls back to another backend)."""
    name = backend or os.environ.get("PEERSTEP_SANDBOX") or ("e2b" if os.environ.get("E2B_API_KEY") else "bwrap")
    name = name.strip().lower()
    if name not in SANDBOXES:
        raise SandboxError(f"unknown sandbox backend {name!r}; known: {', '.join(SANDBOXES)}")
    return name


def make_sandbox(backend: str | None = None, **limits: Any) -> Sandbox:
    """Build (not start) a sandbox; ``limits`` are ``SandboxLimits`` fields or backend options."""
    name = resolve_backend(backend)
    try:
        factory = SANDBOXES.get(name)
    except InputError as exc:  # a lazy entry whose module is not installed
        raise SandboxError(str(exc)) from None
    sandbox: Sandbox = factory(**limits)
    return sandbox
