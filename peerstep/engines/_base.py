"""Managed model servers: start an OpenAI-compatible engine as a child process and own it.

Every engine is one subclass that only says how to build its command line
(``command``) and its environment; starting on a free port, waiting for ``/v1/models``,
writing the log to a file, reusing a server that is already running, and shutting down
without orphans are shared here.

Orphans are prevented three ways: the child gets its own process group (so the whole
tree, e.g. vLLM's engine-core workers, is signalled together), it receives SIGKILL if the
parent dies (``PR_SET_PDEATHSIG``), and ``stop()`` runs from ``__exit__``/``atexit`` on
normal exit, exceptions and Ctrl-C.
A parent killed outright takes the server (its group leader) with it; vLLM's own worker processes are
left to vLLM, which is why ``stop()`` signals the whole group whenever it gets the chance.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx
from pydantic import BaseModel, Field

from peerstep._errors import EngineError
from peerstep._paths import cache_dir

if TYPE_CHECKING:
    from peerstep.client import ModelClient

_PR_SET_PDEATHSIG = 1


class EngineConfig(BaseModel):
    """What to serve and how. Fields an engine does not use are ignored by it."""

    model: str = Field(description="Embedded model name, or a path to weights.")
    served_name: str | None = Field(default=None, description="Name clients send; defaults to the model name.")
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, description="None picks a free port.")
    context_length: int = 8192
    threads: int | None = Field(default=None, description="CPU threads; None uses every core.")
    parallel: int = Field(default=8, description="Concurrent sequences the server batches.")
    start_timeout: float = 600.0
    # vLLM on GPUs
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.90
    device: str = Field(default="auto", description="auto | cpu | cuda")
    kv_cache_gib: int = Field(default=4, description="vLLM CPU KV cache (VLLM_CPU_KVCACHE_SPACE).")
    enforce_eager: bool | None = Field(
        default=None,
        description="vLLM without torch.compile. None: eager on CPU, compiled on GPU. Measured with vLLM-cpu 0.32 on "
        "2 cores (1.5B, bf16): compiling took 453 s at every start (its cache never loads: 'Compiling model again due "
        "to a load failure') for 3.73 tok/s; eager started in 36 s and decoded 3.53 tok/s.",
    )
    tool_call_parser: str | None = "hermes"
    extra_args: list[str] = Field(default_factory=list)
    python: str | None = Field(default=None, description="Interpreter that runs the server; engine default if None.")


def engine_state_dir() -> Path:
    """Where running engines record themselves (pid, URL, log): ``$PEERSTEP_ENGINE_STATE`` or ``<cache>/engines``."""
    env = os.environ.get("PEERSTEP_ENGINE_STATE")
    return Path(env).expanduser() if env else cache_dir() / "engines"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        # SIGKILL, not SIGTERM: uvicorn catches SIGTERM and its graceful shutdown can wait forever on a
        # generation that nobody will read (seen with llama-cpp-python after its parent was killed)
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def served_models(base_url: str, timeout: float = 2.0) -> list[str] | None:
    """Model ids a server answers with, or None if nothing healthy answers at ``base_url``."""
    try:
        resp = httpx.get(f"{base_url}/models", timeout=timeout)
    except httpx.HTTPError:
        return None
    if resp.status_code != 200:
        return None
    try:
        return [m["id"] for m in resp.json().get("data", [])]
    except (ValueError, KeyError, TypeError):
        return None


class ManagedEngine(ABC):
    """A server process peerstep starts, health-checks and stops.

    Use as a context manager. ``owned`` is False when an already running server (e.g. one
    started with ``peerstep serve``) was reused; such a server is left running on exit.
    """

    name: str = "engine"

    def __init__(self, config: EngineConfig, state_dir: Path | None = None) -> None:
        self.config = config
        self.state_dir = state_dir or engine_state_dir()
        self.process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.owned = False
        self._stopped = False  # stop() ended a server this object started: its exit is expected
        self.log_path: Path = self.state_dir / f"{self.name}-{self.slug}.log"

    # --- what an engine defines -------------------------------------------------------------
    @abstractmethod
    def command(self, port: int) -> list[str]:
        """The full server command line for ``port``."""

    def environment(self) -> dict[str, str]:
        return {}

    def prepare(self) -> None:  # noqa: B027 - optional hook, most engines need nothing
        """Make sure weights and software exist before launching (may download or convert)."""

    # what the server accepts; ``client()`` passes these on to the ModelClient
    supports_continue: bool = False  # continue_final_message (vLLM), for LeaP's in-message injection
    # how a run asks this server for tool calls unless told otherwise (AgentConfig.tool_choice None)
    tool_choice: Literal["auto", "required"] = "auto"

    @property
    def supports_seed(self) -> bool:
        """Per-request seeds are safe to send."""
        return True

    def client(self, **options: Any) -> ModelClient:
        """A ModelClient for this running engine, told what the server accepts."""
        from peerstep.client import ModelClient

        return ModelClient(self.base_url, self.served_name, supports_continue=self.supports_continue,
                           supports_seed=self.supports_seed, tool_choice=self.tool_choice,
                           context_tokens=self.config.context_length, **options)

    # --- shared machinery -------------------------------------------------------------------
    @property
    def served_name(self) -> str:
        return self.config.served_name or Path(self.config.model).name.removesuffix(".gguf")

    @property
    def slug(self) -> str:
        return self.served_name.replace("/", "_")

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise EngineError(f"{self.name} engine is not running")
        return f"http://{self.config.host}:{self.port}/v1"

    @property
    def state_file(self) -> Path:
        return self.state_dir / f"{self.name}-{self.slug}.json"

    def find_running(self) -> str | None:
        """Base URL of a live server for this engine and model recorded by an earlier start."""
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        base_url = state.get("base_url")
        pid = state.get("pid")
        if not isinstance(base_url, str) or not isinstance(pid, int) or not _alive(pid):
            return None
        models = served_models(base_url)
        if models is None or self.served_name not in models:
            return None
        return base_url

    def start(self, reuse: bool = True) -> str:
        """Start (or reuse) the server and return its base URL once ``/v1/models`` answers."""
        if reuse and (url := self.find_running()):
            self.port = int(url.rsplit(":", 1)[1].split("/")[0])
            self.owned = False
            return url
        self.prepare()
        port = self.config.port or free_port(self.config.host)
        if port_in_use(self.config.host, port):
            raise EngineError(
                f"port {port} on {self.config.host} is already taken; pass another --port or omit it to pick a free one"
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        cmd = self.command(port)
        env = {**os.environ, **self.environment()}
        with self.log_path.open("wb") as log:
            log.write(("$ " + " ".join(cmd) + "\n").encode())
            log.flush()
            try:
                self.process = subprocess.Popen(
                    cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                    start_new_session=True, preexec_fn=_die_with_parent,
                )
            except OSError as exc:
                raise EngineError(f"cannot launch the {self.name} server ({cmd[0]}): {exc}") from exc
        self.port = port
        self.owned = True
        self._stopped = False
        atexit.register(self.stop)
        self._wait_healthy()
        self.state_file.write_text(json.dumps({"pid": self.process.pid, "base_url": self.base_url,
                                               "model": self.served_name, "command": cmd, "log": str(self.log_path)}))
        return self.base_url

    def _wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.config.start_timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                # the leader died, but workers it spawned may live on in its group
                _signal_group(self.process.pid, signal.SIGKILL)
                self.process = None
                raise EngineError(
                    f"the {self.name} server exited with code {code} while starting; log: {self.log_path}\n"
                    f"{log_tail(self.log_path)}"
                )
            models = served_models(self.base_url, timeout=1.0)
            if models is not None:
                if self.served_name not in models:
                    self.stop()
                    raise EngineError(f"{self.name} started but serves {models}, not {self.served_name!r}")
                return
            time.sleep(0.5)
        self.stop()
        raise EngineError(
            f"the {self.name} server did not answer within {self.config.start_timeout:.0f} s; log: {self.log_path}\n"
            f"{log_tail(self.log_path)}"
        )

    def stop(self, grace: float = 15.0) -> None:
        """Stop the server and its whole process group if this object started it. Idempotent."""
        proc, self.process = self.process, None
        if proc is None or not self.owned:
            return
        self._stopped = True
        with contextlib.suppress(OSError):
            if json.loads(self.state_file.read_text()).get("pid") == proc.pid:
                self.state_file.unlink()
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        # the group may still hold workers that outlived the leader
        _signal_group(proc.pid, signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the server this object started exits, then raise ``EngineError`` saying how it ended.

        A managed server never exits on its own for a good reason, so any exit is an error: killed by a signal
        (the OOM killer's SIGKILL, say) or an exit status, with the log's tail. Returns without raising only when
        ``stop()`` ended it (from another thread, a signal handler or ``atexit``), or when ``timeout`` seconds
        pass with the server still running. A supervisor of ``peerstep serve`` tells the cases apart by the exit
        status this leads to.
        """
        proc = self.process
        if proc is None:
            if self._stopped:
                return
            raise EngineError(f"the {self.name} server was not started by this process, so it cannot be waited on")
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return
        if self._stopped:
            return
        raise EngineError(f"the {self.name} server (pid {proc.pid}) {_describe_exit(code)} while serving "
                          f"{self.served_name} at {self.base_url}; log: {self.log_path}\n{log_tail(self.log_path)}")

    def serve_forever(self) -> None:
        """Block until the server exits or the user presses Ctrl-C (``peerstep serve``).

        Raises ``EngineError`` (see ``wait``) when the server exits by itself: being killed is not a clean end.
        """
        try:
            self.wait()
        finally:
            self.stop()

    def __enter__(self) -> ManagedEngine:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe_exit(code: int) -> str:
    """``Popen.returncode`` in words: a negative code is the signal that killed the process."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with status {code}"


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
