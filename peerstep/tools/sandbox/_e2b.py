"""E2B backend: the same interface over a remote Firecracker micro-VM (``e2b_code_interpreter.AsyncSandbox``).

Optional: the package is imported lazily, so peerstep works without it. Needs ``E2B_API_KEY``; ``E2B_DOMAIN``
points it at a self-hosted deployment. The service decides isolation and resources; we still cap output and turn
its failures into the shared error contract (code problems are results, service problems raise SandboxError).
"""

from __future__ import annotations

import os
import time
from typing import Any, ClassVar

from ._base import ExecResult, Sandbox, SandboxError, SandboxLimits, cap_text, strip_ansi

INSTALL_HINT = "install it with `pip install 'peerstep[e2b]'`"


def _import_e2b() -> Any:
    try:
        import e2b_code_interpreter
    except ImportError as err:
        raise SandboxError(f"the E2B backend needs the e2b-code-interpreter package; {INSTALL_HINT}") from err
    return e2b_code_interpreter


def execution_to_result(execution: Any, *, max_bytes: int, duration_s: float, timeout_s: float) -> ExecResult:
    """Map an E2B ``Execution`` (results[].text, logs.stdout/stderr lists, error) to an ``ExecResult``."""
    logs = getattr(execution, "logs", None)
    out, cut_out = cap_text("".join(getattr(logs, "stdout", None) or []), max_bytes)
    err, cut_err = cap_text("".join(getattr(logs, "stderr", None) or []), max_bytes)
    value: str | None = None
    extra: list[str] = []
    for item in getattr(execution, "results", None) or []:
        text = getattr(item, "text", None)
        if text is None:
            continue
        if getattr(item, "is_main_result", False):
            value = text
        else:  # display() calls: shown as output, like the local kernel does
            extra.append(text + "\n")
    if extra:
        out, cut_more = cap_text(out + "".join(extra), max_bytes)
        cut_out = cut_out or cut_more
    cut_val = False
    if value is not None:
        value, cut_val = cap_text(value, max_bytes)
    error = getattr(execution, "error", None)
    tb: str | None = None
    if error is not None:
        tb, cut_tb = cap_text(strip_ansi(str(getattr(error, "traceback", "") or "")), max_bytes)
        cut_val = cut_val or cut_tb
    return ExecResult(
        stdout=out,
        stderr=err,
        value=value,
        error_name=str(error.name) if error is not None else None,
        error_message=str(error.value) if error is not None else None,
        traceback=tb,
        duration_s=duration_s,
        timeout_s=timeout_s,
        truncated=cut_out or cut_err or cut_val,
    )


class E2BSandbox(Sandbox):
    """Remote sandbox on E2B. ``reset`` replaces the VM: nothing of the previous state can survive."""

    isolated: ClassVar[bool] = True
    name: ClassVar[str] = "e2b"

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        api_key: str | None = None,
        domain: str | None = None,
        template: str | None = None,
        lifetime_s: int = 3600,
        **overrides: Any,
    ) -> None:
        self.limits = limits.model_copy(update=overrides) if limits else SandboxLimits(**overrides)
        self.api_key = api_key or os.environ.get("E2B_API_KEY")
        if not self.api_key:
            raise SandboxError("the E2B backend needs an API key: set E2B_API_KEY (or choose backend='bwrap')")
        self.domain = domain or os.environ.get("E2B_DOMAIN") or None
        self.template = template
        self.lifetime_s = lifetime_s
        self._module = _import_e2b()
        self._sandbox: Any = None
        self._closed = False

    def create_kwargs(self) -> dict[str, Any]:
        """Arguments for ``AsyncSandbox.create`` (public so that configuration can be checked without a VM)."""
        kwargs: dict[str, Any] = {"api_key": self.api_key, "timeout": self.lifetime_s}
        if self.domain:
            kwargs["domain"] = self.domain
        if self.template:
            kwargs["template"] = self.template
        return kwargs

    async def start(self) -> None:
        """Create the remote VM if there is none. Raises ``SandboxError`` when the service refuses."""
        if self._closed:
            raise SandboxError("the sandbox is closed; create a new one")
        if self._sandbox is not None:
            return
        try:
            self._sandbox = await self._module.AsyncSandbox.create(**self.create_kwargs())
        except Exception as err:
            raise SandboxError(f"could not create an E2B sandbox ({type(err).__name__}: {err})") from err

    async def run(self, code: str, timeout: float | None = None) -> ExecResult:
        """Run code remotely. A service timeout becomes a ``timed_out`` result; other service errors raise."""
        limit = self.limits.timeout_s if timeout is None else float(timeout)
        await self.start()
        started = time.monotonic()
        try:
            execution = await self._sandbox.run_code(code, timeout=limit)
        except Exception as err:
            if type(err).__name__ == "TimeoutException" and "Execution timed out" in str(err):
                return ExecResult(
                    error_name="TimeoutError",
                    error_message=f"the code ran longer than the {limit:g} s limit",
                    duration_s=time.monotonic() - started,
                    timeout_s=limit,
                    timed_out=True,
                )
            raise SandboxError(f"the E2B sandbox failed ({type(err).__name__}: {err})") from err
        return execution_to_result(
            execution, max_bytes=self.limits.max_output_bytes, duration_s=time.monotonic() - started, timeout_s=limit
        )

    async def reset(self) -> None:
        """Replace the VM with a new one."""
        await self._kill()
        await self.start()

    async def close(self) -> None:
        """Kill the VM. Idempotent."""
        self._closed = True
        await self._kill()

    async def _kill(self) -> None:
        sandbox, self._sandbox = self._sandbox, None
        if sandbox is not None:
            try:
                await sandbox.kill()
            except Exception as err:
                raise SandboxError(f"could not kill the E2B sandbox ({type(err).__name__}: {err})") from err
