"""The sandbox interface, its result model and its limits.

Error contract, shared by every backend:

* Anything the *code* does is a **result**, never an exception: a user-code exception, a syntax error, a wall-clock
  timeout, an output flood, a memory or process bomb, the interpreter dying or being killed. The agent must see what
  happened (``ExecResult.to_observation``) and keep going.
* Only an *infrastructure* failure that leaves the sandbox unusable raises ``SandboxError``: the isolation tool is
  missing, namespaces cannot be created, the interpreter cannot be started at all, the remote service refuses us.
  Its message says what to do.
"""

from __future__ import annotations

import abc
import re
from types import TracebackType
from typing import ClassVar

import pydantic

from peerstep._errors import PeerstepError

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


class SandboxError(PeerstepError):
    """The sandbox itself failed (not the code in it): it cannot start, isolate, or be reached."""


class SandboxCapacityError(SandboxError):
    """More sandboxes were asked for than may run at once (a pool above ``MAX_POOL_SIZE``, or no free uid)."""


def strip_ansi(text: str) -> str:
    """IPython tracebacks carry terminal colours; the model should only see text."""
    return _ANSI.sub("", text)


def cap_text(text: str, max_bytes: int) -> tuple[str, bool]:
    """Cut ``text`` to at most ``max_bytes`` UTF-8 bytes (never splitting a character); say whether it was cut."""
    if len(text) <= max_bytes // 4:  # fast path: cannot exceed the budget even if every char took 4 bytes
        return text, False
    data = text.encode("utf-8", "surrogateescape")
    if len(data) <= max_bytes:
        return text, False
    return data[:max_bytes].decode("utf-8", "ignore"), True


class SandboxLimits(pydantic.BaseModel):
    """Resource limits. Every backend honours the output and time limits; the local ones also the rest.

    The bwrap backend applies ``memory_bytes``, ``processes`` and ``cpu_cores`` to the sandbox as a whole (one
    cgroup per sandbox: tmpfs and shared memory count as memory, threads count as processes) and ``disk_bytes`` to
    /work and /tmp together, where the host allows it (see ``BwrapSandbox.enforcement``); the rlimits then act as
    per-process backstops. Without a cgroup, memory is only limited per process (RLIMIT_AS) and processes per uid
    (RLIMIT_NPROC; each sandbox gets its own uid when peerstep runs as root).
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    timeout_s: float = pydantic.Field(30.0, gt=0, description="default wall-clock limit of one run")
    interrupt_grace_s: float = pydantic.Field(2.0, gt=0, description="wait this long for an interrupt to land")
    start_timeout_s: float = pydantic.Field(30.0, gt=0, description="how long a cold start may take")
    max_output_bytes: int = pydantic.Field(64 * KIB, gt=0, description="cap per stream (stdout, stderr, value)")
    memory_bytes: int = pydantic.Field(2 * GIB, gt=0, description="memory of the whole sandbox (and RLIMIT_AS)")
    cpu_seconds: int = pydantic.Field(3600, gt=0, description="RLIMIT_CPU: lifetime CPU backstop of one interpreter")
    file_size_bytes: int = pydantic.Field(256 * MIB, gt=0, description="RLIMIT_FSIZE: largest file it may write")
    open_files: int = pydantic.Field(256, gt=16, description="RLIMIT_NOFILE")
    processes: int = pydantic.Field(256, gt=8, description="processes + threads of the sandbox (and RLIMIT_NPROC)")
    cpu_cores: float = pydantic.Field(1.0, gt=0, description="CPU time per wall-clock second of the whole sandbox")
    disk_bytes: int = pydantic.Field(512 * MIB, gt=0, description="/work and /tmp together (a tmpfs, in RAM)")
    tmp_bytes: int = pydantic.Field(256 * MIB, gt=0, description="size of /tmp where disk_bytes cannot be applied")


class ExecResult(pydantic.BaseModel):
    """What one ``run`` produced. Text fields are already capped and decoded (invalid UTF-8 replaced)."""

    stdout: str = ""
    stderr: str = ""
    value: str | None = None
    error_name: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    duration_s: float = 0.0
    timeout_s: float | None = None  # the wall-clock limit that was in force (for the timeout note)
    timed_out: bool = False
    truncated: bool = False
    restarted: bool = False

    @property
    def ok(self) -> bool:
        """True when the code ran to completion without an exception."""
        return self.error_name is None and not self.timed_out and not self.restarted

    def notes(self) -> list[str]:
        """Plain-language facts about the run that the model must know (state lost, output cut...)."""
        notes: list[str] = []
        after = f"{self.timeout_s if self.timeout_s is not None else self.duration_s:.3g} s"
        if self.timed_out and self.restarted:
            notes.append(
                f"Timed out after {after}; the interpreter could not be stopped cleanly (it ignored the interrupt "
                "or a thread it started kept running) and was restarted: variables and imports are lost."
            )
        elif self.timed_out:
            notes.append(f"Timed out after {after}; the interpreter was interrupted (state kept).")
        elif self.restarted:
            notes.append("The interpreter died and was restarted: variables and imports are lost.")
        if self.truncated:
            notes.append("Output was too long and was truncated.")
        return notes

    def to_observation(self, max_chars: int = 8000) -> str:
        """Render the result as text for the model, at most about ``max_chars`` characters.

        The notes (timeout, restart, truncation) are never cut: losing them would mislead the agent more than
        losing output.
        """
        parts: list[str] = []
        if self.stdout:
            parts.append(self.stdout.rstrip("\n"))
        if self.stderr:
            parts.append("[stderr]\n" + self.stderr.rstrip("\n"))
        if self.value is not None:
            parts.append("[value]\n" + self.value)
        if self.error_name is not None:
            tb = strip_ansi(self.traceback or "").rstrip("\n")
            head = f"[error] {self.error_name}: {self.error_message or ''}".rstrip(": ")
            parts.append(head + ("\n" + tb if tb else ""))
        notes = "\n".join(f"[note] {n}" for n in self.notes())
        body = "\n".join(parts) if parts else "(no output)"
        budget = max(max_chars - len(notes) - 1, 40)
        if len(body) > budget:
            marker = f"\n... [{len(body) - budget} characters omitted] ...\n"
            keep = max(budget - len(marker), 20)
            body = body[: keep // 2] + marker + body[len(body) - (keep - keep // 2) :]
        return body + ("\n" + notes if notes else "")


class Sandbox(abc.ABC):
    """A persistent Python interpreter in which untrusted code runs.

    Same shape as inspect_ai's ``SandboxEnvironment`` and httpx's transports: one core method (``run``) plus
    lifecycle. See the module docstring for the error contract: code failures are results, only infrastructure
    failures raise ``SandboxError``.
    """

    #: True when the backend claims the code cannot touch the host (files, network, processes).
    isolated: ClassVar[bool] = False
    #: Name used by ``make_sandbox(backend=...)``.
    name: ClassVar[str] = "abstract"

    @abc.abstractmethod
    async def start(self) -> None:
        """Start the interpreter (idempotent). ``run`` calls it on first use; pools call it to pre-warm."""

    @abc.abstractmethod
    async def run(self, code: str, timeout: float | None = None) -> ExecResult:
        """Execute ``code`` in the persistent interpreter; ``timeout`` in seconds (default from the limits)."""

    @abc.abstractmethod
    async def reset(self) -> None:
        """Give a fresh interpreter state and an empty working directory."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop everything the sandbox started. Idempotent; leaves no process behind."""

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
