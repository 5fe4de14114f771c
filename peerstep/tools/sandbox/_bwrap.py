"""The default backend: a persistent IPython kernel confined by bubblewrap, as an unprivileged uid.

What the code inside sees: a read-only /usr, the Python installation at /opt/python and the project's
site-packages at /opt/site-packages/N (read-only), a private /proc (own PID namespace), a minimal /dev, a small
private /tmp (tmpfs), and one writable directory, /work. No network (own, empty network namespace), no host
processes, no capabilities, rlimits on memory, CPU time, file size, open files and processes.

Why these choices:

* The kernel is started by our own command line, never by jupyter_client's ``KernelManager`` (jupyter_client 8
  silently ignores ``kernel_cmd``, which once made a "sandboxed" kernel run unconfined). Tests probe isolation.
* As root, bwrap does not use a user namespace (root's would map uid 0 to 0), so it keeps CAP_SETUID/CAP_SETGID
  only long enough for ``setpriv`` to become uid 65534 with no capabilities: RLIMIT_NPROC is then enforced (the
  kernel exempts uid 0), and host files owned by root are out of reach even if a mount leaked. As a normal user,
  bwrap maps the user to 65534 in a new user namespace and forbids nested ones.
* /root is mode 700, so the interpreter is bound at a neutral path instead of its host path.
* Signals do not cross ``--new-session``: timeouts use the kernel's message-mode interrupt (see ``_local``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import shutil
import site
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

from ._base import SandboxError, SandboxLimits
from ._local import KERNEL_LAUNCHER, KernelSandbox, _set_rlimits

INSTALL_HINT = "install it with `sudo apt-get install bubblewrap` (or `bash scripts/install_system.sh`)"
INNER_PYTHON = "/opt/python"
INNER_SITE = "/opt/site-packages"
INNER_WORK = "/work"
INNER_IPC = "/run/kernel"


def _default_site_packages() -> list[Path]:
    """The active virtualenv's site-packages (the base installation's own are inside the bound prefix)."""
    if sys.prefix == sys.base_prefix:
        return []
    base = Path(sys.base_prefix).resolve()
    dirs = [Path(p).resolve() for p in site.getsitepackages()]
    return list(dict.fromkeys(p for p in dirs if p.is_dir() and not p.is_relative_to(base)))


class BwrapSandbox(KernelSandbox):
    """Persistent IPython kernel inside bubblewrap. ``isolated``: no host files, network or processes."""

    isolated: ClassVar[bool] = True
    name: ClassVar[str] = "bwrap"

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        uid: int = 65534,
        gid: int = 65534,
        python_home: str | Path | None = None,
        site_packages: list[str | Path] | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(limits, **overrides)
        self.uid, self.gid = uid, gid
        self.bwrap = shutil.which("bwrap")
        if self.bwrap is None:
            raise SandboxError(f"bubblewrap (bwrap) is not installed; {INSTALL_HINT}")
        self.as_root = os.geteuid() == 0
        self.setpriv = shutil.which("setpriv")
        if self.as_root and self.setpriv is None:
            raise SandboxError("setpriv is missing (needed to drop root); install it with `apt-get install util-linux`")
        if importlib.util.find_spec("ipykernel") is None:
            raise SandboxError("ipykernel is not installed; install it with `pip install 'peerstep[sandbox]'`")
        self.python_home = Path(python_home or sys.base_prefix).resolve()
        self.site_packages = [Path(p).resolve() for p in site_packages] if site_packages else _default_site_packages()
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        rel = Path("bin") / version
        self.inner_python = f"{INNER_PYTHON}/{rel if (self.python_home / rel).exists() else 'bin/python3'}"
        self._info_fd: int | None = None
        self._info_write_fd = -1
        self._inner_pid: int | None = None

    # ----- command line ------------------------------------------------------------------------------------------
    def command_line(self, conn_file: str, info_fd: int | None = None) -> list[str]:
        """The full argv; public so that it can be shown, logged and checked."""
        assert self._root is not None
        lim = self.limits
        cmd: list[str] = [self.bwrap or "bwrap"]
        if self.as_root:
            cmd += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
            cmd += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            cmd += ["--unshare-all", "--uid", str(self.uid), "--gid", str(self.gid), "--disable-userns"]
            cmd += ["--cap-drop", "ALL"]
        cmd += ["--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr"]
        for top in ("bin", "sbin", "lib", "lib32", "lib64"):
            host = Path("/") / top
            if host.is_symlink():
                cmd += ["--symlink", os.readlink(host), str(host)]
            elif host.is_dir():
                cmd += ["--ro-bind", str(host), str(host)]
        cmd += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
        cmd += ["--ro-bind", str(self._root / "etc/passwd"), "/etc/passwd"]
        cmd += ["--ro-bind", str(self._root / "etc/group"), "/etc/group"]
        cmd += ["--perms", "0755", "--dir", "/opt", "--ro-bind", str(self.python_home), INNER_PYTHON]
        cmd += ["--perms", "0755", "--dir", INNER_SITE]
        for i, path in enumerate(self.site_packages):
            cmd += ["--ro-bind", str(path), f"{INNER_SITE}/{i}"]
        cmd += ["--proc", "/proc", "--dev", "/dev"]
        cmd += ["--perms", "1777", "--size", str(lim.tmp_bytes), "--tmpfs", "/tmp"]
        cmd += ["--bind", str(self._root / "work"), INNER_WORK]
        cmd += ["--perms", "0755", "--dir", "/run", "--bind", str(self._ipc_dir()), INNER_IPC]
        cmd += ["--chdir", INNER_WORK, "--clearenv"]
        for key, value in self._inner_env().items():
            cmd += ["--setenv", key, value]
        if info_fd is not None:
            cmd += ["--info-fd", str(info_fd)]
        if self.as_root:
            cmd += [self.setpriv or "setpriv", "--reuid", str(self.uid), "--regid", str(self.gid), "--clear-groups"]
            cmd += ["--"]
        cmd += [self.inner_python, "-Xfrozen_modules=off", "-s", "-c", KERNEL_LAUNCHER, conn_file]
        cmd += [str(lim.max_output_bytes + 1)]
        return cmd

    def _inner_env(self) -> dict[str, str]:
        paths = ":".join(f"{INNER_SITE}/{i}" for i in range(len(self.site_packages)))
        env = {
            "PATH": f"{INNER_PYTHON}/bin:/usr/local/bin:/usr/bin:/bin",
            "HOME": INNER_WORK,
            "LANG": "C.UTF-8",
            "LD_LIBRARY_PATH": f"{INNER_PYTHON}/lib",
            "IPYTHONDIR": "/tmp/.ipython",
            "JUPYTER_RUNTIME_DIR": "/tmp/.jupyter",
            "JUPYTER_PLATFORM_DIRS": "1",
            "MPLCONFIGDIR": "/tmp/.matplotlib",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            # one BLAS thread: threads count against RLIMIT_NPROC and against the address-space limit
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
        if paths:
            env["PYTHONPATH"] = paths
        return env

    # ----- KernelSandbox hooks -----------------------------------------------------------------------------------
    def _kernel_ipc_prefix(self) -> str:
        return f"{INNER_IPC}/k{self._generation}"

    def _command(self, conn_file: Path) -> list[str]:
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        self._close_info()
        self._info_fd, self._info_write_fd = read_fd, write_fd
        self._inner_pid = None
        return self.command_line(f"{INNER_IPC}/{conn_file.name}", info_fd=write_fd)

    def _spawn_kwargs(self) -> dict[str, Any]:
        limits = self.limits
        return {
            "pass_fds": (self._info_write_fd,),
            "cwd": "/",
            "env": {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            "preexec_fn": lambda: _set_rlimits(limits, processes=True),
        }

    async def _start_kernel(self) -> None:
        try:
            await super()._start_kernel()
        finally:
            with contextlib.suppress(OSError, AttributeError):
                os.close(self._info_write_fd)  # the parent's copy: bwrap keeps its own

    def _prepare_dirs(self) -> None:
        assert self._root is not None
        etc = self._root / "etc"
        if not etc.exists():
            etc.mkdir()
            (etc / "passwd").write_text(f"sandbox:x:{self.uid}:{self.gid}:sandbox:{INNER_WORK}:/bin/sh\n")
            (etc / "group").write_text(f"sandbox:x:{self.gid}:\n")
        if self.as_root:
            for path in (self._root / "work", self._ipc_dir(), *self._ipc_dir().iterdir()):
                os.chown(path, self.uid, self.gid)

    def _clear_workdir(self) -> None:
        super()._clear_workdir()
        if self.as_root:
            os.chown(self.workdir, self.uid, self.gid)

    def _start_failure_message(self, returncode: int) -> str:
        text = self._stderr_text()
        if "namespace" in text or "uid map" in text or "Operation not permitted" in text:
            return (
                "bubblewrap is installed but cannot create namespaces here "
                f"({text.splitlines()[-1] if text else returncode}). Allow unprivileged user namespaces "
                "(sysctl kernel.unprivileged_userns_clone=1, or kernel.apparmor_restrict_unprivileged_userns=0), "
                "or run the container with a seccomp/AppArmor profile that permits them."
            )
        return super()._start_failure_message(returncode)

    async def _after_ready(self) -> None:
        self._read_info()

    def _read_info(self) -> None:
        if self._info_fd is None or self._inner_pid is not None:
            return
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):  # no info: bwrap failed early
            info = json.loads(os.read(self._info_fd, 4096).decode() or "{}")
            self._inner_pid = int(info["child-pid"])

    def _close_info(self) -> None:
        if self._info_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._info_fd)
            self._info_fd = None

    async def _kill_process(self, proc: asyncio.subprocess.Process) -> None:
        """Kill the namespace's init (the kernel takes every process in the PID namespace with it), then bwrap."""
        self._read_info()
        inner = self._inner_pid
        if inner is not None and _parent_of(inner) == proc.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(inner, 9)
            # bwrap exits once its child is gone and reaps it: no zombie is left for the host's init
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 2.0)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        if inner is not None:
            await _wait_gone(inner, 5.0)
        self._close_info()
        self._inner_pid = None

    @property
    def inner_pid(self) -> int | None:
        """Host PID of the sandbox's PID-namespace init (kill it and everything inside dies)."""
        self._read_info()
        return self._inner_pid


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _state_of(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


async def _wait_gone(pid: int, timeout: float) -> None:
    """Wait until ``pid`` is gone or a zombie: by then the PID namespace it led has been emptied."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and _state_of(pid) not in (None, "Z", "X"):
        await asyncio.sleep(0.005)
