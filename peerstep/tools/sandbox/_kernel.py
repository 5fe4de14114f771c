"""The shared base of the local backends: a persistent IPython kernel driven over ZeroMQ.

``KernelSandbox`` holds everything that does not depend on *how* the kernel process is confined: the working
directory (``_workspace``), the connection file, the client, the execute/collect loop, output caps, death
detection, and what a timeout does: interrupt the code, kill every process the cell started, and restart the
kernel if the interrupt did not land or a thread the cell started still runs. Subclasses say which command starts
the kernel and how to kill it (``BwrapSandbox`` confines it; ``LocalUnsafeSandbox`` does not).

The kernel talks over Unix sockets (ZeroMQ ``ipc``) in a directory shared with the host, not TCP: a kernel in its
own network namespace cannot reach 127.0.0.1 of the host, and files work across that boundary.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import queue
import secrets
import shutil
import signal
import time
from pathlib import Path
from typing import Any, ClassVar

from ._base import ExecResult, Sandbox, SandboxError, SandboxLimits, cap_text
from ._host import descendants, kill_until_gone, now_ticks, start_ticks, threads_started_since
from ._workspace import Workspace

log = logging.getLogger(__name__)

_PORTS = {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}
_POLL_S = 0.25  # how often a waiting run checks that the kernel process is still alive

# Runs *inside* the sandbox (argv: connection file, cap in characters). It caps what the kernel publishes per
# execution at the source, so a flood never crosses into the host, and gives sys.stdout a binary ``buffer``.
KERNEL_LAUNCHER = r"""
import codecs, sys
from ipykernel.kernelapp import IPKernelApp
from jupyter_client.session import extract_header

conn, cap = sys.argv[1], int(sys.argv[2])
sys.argv = sys.argv[:1]
app = IPKernelApp.instance()
app.initialize(["-f", conn, "--HistoryManager.enabled=False", "--IPKernelApp.quiet=True"])
send, used = app.session.send, {}

def _cut(text, key):
    left = cap - used.get(key, 0)
    if left <= 0:
        return None
    text = text[:left]
    used[key] = used.get(key, 0) + len(text)
    return text

def capped_send(stream, msg_or_type, content=None, parent=None, *args, **kwargs):
    if isinstance(msg_or_type, dict):
        mtype, body = msg_or_type.get("msg_type") or msg_or_type["header"]["msg_type"], msg_or_type.get("content")
        pid = (msg_or_type.get("parent_header") or {}).get("msg_id")
    else:
        mtype, body, pid = msg_or_type, content, extract_header(parent or {}).get("msg_id")
    if isinstance(body, dict):
        if pid != used.get("parent"):
            used.clear()
            used["parent"] = pid
        if mtype == "stream":
            text = _cut(body.get("text", ""), body.get("name"))
            if text is None:
                return None
            body["text"] = text
        elif mtype in ("execute_result", "display_data"):
            data = body.get("data") or {}
            for k in list(data):
                if isinstance(data[k], str):
                    data[k] = data[k][:cap]
        elif mtype == "error":
            body["evalue"] = str(body.get("evalue", ""))[:cap]
            body["traceback"] = [t for t in (_cut(line, "tb") for line in body.get("traceback", [])) if t]
    return send(stream, msg_or_type, content, parent, *args, **kwargs)

app.session.send = capped_send

class _Buffer:
    def __init__(self, stream):
        self._stream, self._dec = stream, codecs.getincrementaldecoder("utf-8")("replace")
    def write(self, data):
        self._stream.write(self._dec.decode(bytes(data)))
        return len(data)
    def flush(self):
        self._stream.flush()

for _s in (sys.stdout, sys.stderr):
    try:
        _s.buffer = _Buffer(_s)
    except AttributeError:
        pass
del _s
app.start()
"""


class _Collector:
    """Accumulates one execution's output under the byte caps."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.streams: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.sizes: dict[str, int] = {"stdout": 0, "stderr": 0}
        self.truncated = False
        self.value: str | None = None
        self.error: tuple[str, str, str] | None = None

    def add_stream(self, name: str, text: str) -> None:
        name = name if name in self.streams else "stdout"
        if self.sizes[name] > self.max_bytes:
            self.truncated = True
            return
        self.streams[name].append(text)
        self.sizes[name] += len(text)  # characters: a cheap upper bound until the final byte cut

    def handle(self, msg_type: str, content: dict[str, Any]) -> None:
        if msg_type == "stream":
            self.add_stream(str(content.get("name", "stdout")), str(content.get("text", "")))
        elif msg_type == "execute_result":
            self.value = str((content.get("data") or {}).get("text/plain", ""))
        elif msg_type == "display_data":
            text = (content.get("data") or {}).get("text/plain")
            if text is not None:
                self.add_stream("stdout", str(text) + "\n")
        elif msg_type == "error":
            tb = "\n".join(str(line) for line in content.get("traceback") or [])
            self.error = (str(content.get("ename", "Error")), str(content.get("evalue", "")), tb)

    def result(self, started: float, timeout: float, **flags: Any) -> ExecResult:
        out, cut_out = cap_text("".join(self.streams["stdout"]), self.max_bytes)
        err, cut_err = cap_text("".join(self.streams["stderr"]), self.max_bytes)
        value, cut_val = cap_text(self.value, self.max_bytes) if self.value is not None else (None, False)
        name, message, tb = self.error or (None, None, None)
        if tb is not None:
            tb, cut_tb = cap_text(tb, self.max_bytes)
            cut_val = cut_val or cut_tb
        fields: dict[str, Any] = {
            "stdout": out,
            "stderr": err,
            "value": value,
            "error_name": name,
            "error_message": message,
            "traceback": tb,
            "duration_s": time.monotonic() - started,
            "timeout_s": timeout,
            "truncated": self.truncated or cut_out or cut_err or cut_val,
        }
        fields.update(flags)
        return ExecResult(**fields)


class KernelSandbox(Sandbox):
    """Base of the local backends: one IPython kernel process per sandbox, restarted when it dies."""

    name: ClassVar[str] = "kernel"

    def __init__(self, limits: SandboxLimits | None = None, **overrides: Any) -> None:
        self.limits = limits.model_copy(update=overrides) if limits else SandboxLimits(**overrides)
        self._lock = asyncio.Lock()
        self._ws: Workspace | None = None  # host temp dir: work/ (the code's cwd) and ipc/ (sockets, connection file)
        self._proc: asyncio.subprocess.Process | None = None
        self._client: Any = None  # jupyter_client AsyncKernelClient
        self._ctx: Any = None  # zmq.asyncio.Context
        self._stderr_tail: collections.deque[bytes] = collections.deque(maxlen=64)
        self._stderr_task: asyncio.Task[None] | None = None
        self._generation = 0
        self._closed = False

    # ----- what subclasses provide -------------------------------------------------------------------------------
    def _command(self, conn_file: Path) -> list[str]:
        """The argv that starts the kernel; ``conn_file`` is the host path of the connection file."""
        raise NotImplementedError

    def _kernel_ipc_prefix(self) -> str:
        """The socket path prefix as the kernel sees it (differs from the host path inside a mount namespace)."""
        return str(self._ipc_dir() / f"k{self._generation}")

    def _spawn_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments for ``create_subprocess_exec`` (env, cwd, preexec_fn, pass_fds...)."""
        return {}

    def _make_workspace(self) -> Workspace:
        """The host directory (the bwrap backend puts /work and /tmp on a size-capped tmpfs)."""
        return Workspace()

    def _prepare_dirs(self) -> None:
        """Adjust ownership of the work and ipc directories (the bwrap backend hands them to the sandbox uid)."""

    def _kernel_pid(self) -> int | None:
        """Host PID of the interpreter process itself."""
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    def _other_processes(self, kernel: int) -> list[int]:
        """Host PIDs of the processes the code started (here: the kernel's descendants)."""
        return descendants(kernel)

    async def _after_ready(self) -> None:
        """Hook run once the kernel answered (bwrap reads its info pipe here)."""

    async def _kill_process(self, proc: asyncio.subprocess.Process) -> None:
        """Kill the kernel and everything it started, and wait until they are gone."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()

    # ----- paths -------------------------------------------------------------------------------------------------
    @property
    def workdir(self) -> Path:
        """Host path of the code's working directory (exists once started)."""
        if self._ws is None:
            raise SandboxError("the sandbox has not been started")
        return self._ws.work

    @property
    def _root(self) -> Path | None:
        return self._ws.root if self._ws is not None else None

    def _ipc_dir(self) -> Path:
        assert self._ws is not None
        return self._ws.ipc

    # ----- lifecycle ---------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the kernel if it is not running. Raises ``SandboxError`` if it cannot start."""
        if self._closed:
            raise SandboxError("the sandbox is closed; create a new one")
        if self._proc is not None and self._proc.returncode is None and self._client is not None:
            return
        if self._ws is None:
            self._ws = self._make_workspace()
            self._prepare_dirs()
        try:
            await self._start_kernel()
        except BaseException:
            await self._stop_kernel()
            raise

    async def _start_kernel(self) -> None:
        import zmq
        import zmq.asyncio
        from jupyter_client.asynchronous.client import AsyncKernelClient

        self._generation += 1
        key = secrets.token_hex(32)
        base: dict[str, Any] = {
            **_PORTS,
            "transport": "ipc",
            "key": key,
            "signature_scheme": "hmac-sha256",
            "kernel_name": "",
        }
        conn_file = self._ipc_dir() / f"conn{self._generation}.json"
        conn_file.write_text(json.dumps({**base, "ip": self._kernel_ipc_prefix()}))
        self._prepare_dirs()
        self._stderr_tail.clear()
        self._proc = await asyncio.create_subprocess_exec(
            *self._command(conn_file),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            **self._spawn_kwargs(),
        )
        self._stderr_task = asyncio.create_task(self._drain_stderr(self._proc))
        self._ctx = zmq.asyncio.Context()
        # Backstop against code that bypasses the in-kernel cap: an oversized message drops the connection
        # instead of filling host memory.
        self._ctx.setsockopt(zmq.MAXMSGSIZE, max(16 * 1024 * 1024, 8 * self.limits.max_output_bytes + 1024 * 1024))
        client = AsyncKernelClient(context=self._ctx)
        host_info: Any = {**base, "ip": str(self._ipc_dir() / f"k{self._generation}")}  # host path of the sockets
        client.load_connection_info(host_info)
        client.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=True)
        self._client = client
        await self._wait_ready(self.limits.start_timeout_s)
        await self._after_ready()

    async def _wait_ready(self, timeout: float) -> None:
        """Wait until an empty execution round-trips on shell *and* iopub (the SUB socket joins late)."""
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.returncode is not None:
                await self._stderr_settled()
                raise SandboxError(self._start_failure_message(self._proc.returncode))
            if time.monotonic() > deadline:
                raise SandboxError(f"the Python kernel did not start within {timeout:g} s{self._stderr_suffix()}")
            msg_id = self._client.execute("", silent=True, store_history=False)
            with contextlib.suppress(queue.Empty):
                if await self._wait_idle(msg_id, min(0.1, max(deadline - time.monotonic(), 0.05))):
                    await self._drain_replies()
                    return

    async def _wait_idle(self, msg_id: str, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            msg = await self._client.get_iopub_msg(timeout=left)
            if (
                msg["parent_header"].get("msg_id") == msg_id
                and msg["msg_type"] == "status"
                and (msg["content"].get("execution_state") == "idle")
            ):
                return True
        return False

    def _start_failure_message(self, returncode: int) -> str:
        return f"the Python kernel exited at start (code {returncode}){self._stderr_suffix()}"

    def _stderr_text(self) -> str:
        return b"".join(self._stderr_tail).decode("utf-8", "replace").strip()[-2000:]

    def _stderr_suffix(self) -> str:
        text = self._stderr_text()
        return f": {text}" if text else ""

    async def _stderr_settled(self) -> None:
        if self._stderr_task is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._stderr_task), 1.0)

    async def _drain_stderr(self, proc: asyncio.subprocess.Process) -> None:
        """Keep reading the kernel's real stderr so a chatty kernel never blocks on a full pipe."""
        assert proc.stderr is not None
        while chunk := await proc.stderr.read(4096):
            self._stderr_tail.append(chunk)

    async def _drain_replies(self) -> None:
        for channel in (self._client.shell_channel, self._client.control_channel):
            while await channel.msg_ready():
                await channel.get_msg()

    async def _stop_kernel(self) -> None:
        client, ctx, proc, task = self._client, self._ctx, self._proc, self._stderr_task
        self._client = self._ctx = self._proc = self._stderr_task = None
        if client is not None:
            client.stop_channels()
        if proc is not None:
            await self._kill_process(proc)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if ctx is not None:
            ctx.destroy(linger=0)
        if self._ws is not None:
            for stale in self._ipc_dir().iterdir():
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()

    async def _restart(self) -> None:
        await self._stop_kernel()
        if self._closed:
            raise SandboxError("the sandbox was closed while the code was running")
        await self.start()

    async def reset(self) -> None:
        """Fresh interpreter (new process, nothing survives) and an emptied working directory."""
        async with self._lock:
            await self._stop_kernel()
            if self._ws is not None:
                self._clear_workdir()
            await self.start()

    def _clear_workdir(self) -> None:
        assert self._ws is not None
        for entry in [p for d in (self._ws.work, self._ws.tmp, self._ws.shm) if d for p in d.iterdir()]:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()

    async def close(self) -> None:
        """Kill the kernel and every process it started; remove the temp dir. Safe to call twice."""
        self._closed = True
        await self._stop_kernel()
        if self._ws is not None:
            self._ws.remove()
            self._ws = None
        self._release_resources()

    def _release_resources(self) -> None:
        """Give back what ``close`` must free besides processes and files (the bwrap backend: cgroup, uid)."""

    # ----- running code ------------------------------------------------------------------------------------------
    async def run(self, code: str, timeout: float | None = None) -> ExecResult:
        """Run ``code``; see the module docstring of ``_base`` for what is a result and what raises."""
        limit = self.limits.timeout_s if timeout is None else float(timeout)
        async with self._lock:
            await self.start()
            return await self._execute(code, limit)

    async def _execute(self, code: str, limit: float) -> ExecResult:
        started, cell_start = time.monotonic(), now_ticks()
        out = _Collector(self.limits.max_output_bytes)
        msg_id = self._client.execute(code, store_history=True, allow_stdin=False, stop_on_error=False)
        deadline, interrupted = started + limit, False
        while True:
            now = time.monotonic()
            if now >= deadline:
                if interrupted:  # the interrupt did not land (C code, signal ignored...): start over
                    await self._restart()
                    return self._timed_out(out, started, limit, restarted=True)
                self._interrupt()
                interrupted, deadline = True, now + self.limits.interrupt_grace_s
            try:
                msg = await self._client.get_iopub_msg(timeout=min(deadline - now, _POLL_S))
            except queue.Empty:
                if self._proc is None or self._proc.returncode is not None:
                    return await self._died(out, started, limit, interrupted)
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                break
            out.handle(msg["msg_type"], msg["content"])
        await self._drain_replies()
        if interrupted:
            restarted = await self._end_cell(cell_start)
            return self._timed_out(out, started, limit, restarted=restarted)
        return out.result(started, limit)

    async def _end_cell(self, since: int) -> bool:
        """After a timeout, stop everything the cell started (at or after tick ``since``).

        Its processes are killed, wherever they went (a new session, a double fork). A thread cannot be killed on
        its own, so if one the cell started still runs, the interpreter is restarted. Returns True on restart.
        """
        kernel = self._kernel_pid()
        if kernel is None:
            return False

        def started_by_cell() -> list[int]:
            return [p for p in self._other_processes(kernel) if p != kernel and (start_ticks(p) or -1) >= since]

        await kill_until_gone(started_by_cell)
        if threads_started_since(kernel, since):
            await self._restart()
            return True
        return False

    def _interrupt(self) -> None:
        """Ask the kernel to interrupt itself (``interrupt_mode = "message"``: signals do not cross the session)."""
        msg = self._client.session.msg("interrupt_request", content={})
        self._client.control_channel.send(msg)

    def _timed_out(self, out: _Collector, started: float, limit: float, *, restarted: bool) -> ExecResult:
        if out.error is None or out.error[0] == "KeyboardInterrupt":
            tb = out.error[2] if out.error else ""
            out.error = ("TimeoutError", f"the code ran longer than the {limit:g} s limit", tb)
        return out.result(started, limit, timed_out=True, restarted=restarted)

    async def _died(self, out: _Collector, started: float, limit: float, interrupted: bool) -> ExecResult:
        code = self._proc.returncode if self._proc is not None else None
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        if code is not None and code > 128:
            how = f"killed by signal {code - 128}"
        await self._restart()
        out.error = ("KernelDied", f"the Python process died ({how}), e.g. killed or out of memory", "")
        return out.result(started, limit, restarted=True, timed_out=interrupted)
