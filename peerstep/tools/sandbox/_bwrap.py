"""The default backend: a persistent IPython kernel confined by bubblewrap, as an unprivileged uid.

What the code inside sees: a read-only /usr, the Python installation at /opt/python and the project's
site-packages at /opt/site-packages/N (read-only), a private /proc (own PID namespace), a minimal /dev, and two
writable directories, /work and /tmp, which share one size-capped tmpfs. No network (own, empty network
namespace), no host processes, no capabilities, no way to make namespaces of its own (seccomp).

Limits for the sandbox as a whole (``enforcement`` says which hold on this host): a cgroup per sandbox caps memory
(tmpfs and shared memory included), processes + threads and CPU; the tmpfs caps /work + /tmp; rlimits cap each
process (address space, CPU seconds, file size, open files). As root each sandbox also runs as its own uid from a
range (``_uids``), so the per-uid process limit is per sandbox even without a cgroup.

Why these choices:

* The kernel is started by our own command line, never by jupyter_client's ``KernelManager`` (jupyter_client 8
  silently ignores ``kernel_cmd``, which once made a "sandboxed" kernel run unconfined). Tests probe isolation.
* As root, bwrap does not use a user namespace (root's would map uid 0 to 0), so it keeps CAP_SETUID/CAP_SETGID
  only long enough for ``setpriv`` to become the sandbox uid with no capabilities: RLIMIT_NPROC is then enforced
  (the kernel exempts uid 0), and host files owned by root are out of reach even if a mount leaked. bwrap's
  ``--disable-userns`` needs a user namespace, so nested namespaces are refused by a seccomp filter instead
  (``_seccomp``). As a normal user, bwrap maps the user to 65534 in a new user namespace with
  ``--disable-userns``, and the same filter is loaded.
* /root is mode 700, so the interpreter is bound at a neutral path instead of its host path.
* Signals do not cross ``--new-session``: timeouts use the kernel's message-mode interrupt (see ``_local``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

from . import _cgroup, _seccomp
from ._base import SandboxError, SandboxLimits
from ._host import parent_of, pids_in_namespace, set_rlimits, start_ticks, wait_gone
from ._kernel import KERNEL_LAUNCHER, KernelSandbox
from ._uids import UidLease
from ._workspace import Workspace

log = logging.getLogger(__name__)
_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


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
        uid: int | None = None,
        gid: int | None = None,
        python_home: str | Path | None = None,
        site_packages: list[str | Path] | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(limits, **overrides)
        self._fixed_uid = uid  # None: as root, lease a uid of our own per sandbox; as a user, 65534 (mapped)
        self.uid, self.gid = (uid if uid is not None else 65534), (gid if gid is not None else 65534)
        self._fixed_gid = gid
        self._uid_lease: UidLease | None = None
        self.cgroup: _cgroup.SandboxCgroup | None = None
        self._seccomp_fd = -1
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
        self._kernel: tuple[int, int | None] | None = None  # host pid and start tick of the interpreter

    # ----- what is enforced where ------------------------------------------------------------------------------------
    @property
    def enforcement(self) -> dict[str, str]:
        """How each limit is enforced on this host (known once started): what the README promises, per host."""
        lim, cg, ws = self.limits, self.cgroup, self._ws
        whole = f"for the whole sandbox (cgroup v{cg.host.version})" if cg is not None else None
        uid = "its own uid" if self._uid_lease is not None else f"uid {self.uid}, shared with other sandboxes"
        out = {
            "memory": f"{lim.memory_bytes} bytes {whole}" if whole else f"{lim.memory_bytes} bytes per process only",
            "processes": f"{lim.processes} {whole}" if whole else f"{lim.processes} per uid ({uid})",
            "cpu": f"RLIMIT_CPU {lim.cpu_seconds} s per process",
            "disk": f"/work + /tmp: {lim.tmp_bytes}-byte /tmp; /work only {lim.file_size_bytes} bytes per file",
            "namespaces": "none can be created (seccomp)",
        }
        if cg is not None and "cpu" in cg.host.controllers:
            out["cpu"] = f"{lim.cpu_cores:g} cores {whole}"
        if ws is not None and ws.quota_bytes:
            out["disk"] = f"/work + /tmp: {ws.quota_bytes} bytes in total (tmpfs)"
        if not _seccomp.supported():
            out["namespaces"] = "user namespaces disabled" if not self.as_root else "NOT blocked on this CPU"
        return out

    # ----- command line ------------------------------------------------------------------------------------------
    def command_line(self, conn_file: str, info_fd: int | None = None, seccomp_fd: int | None = None) -> list[str]:
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
        if seccomp_fd is not None:
            cmd += ["--seccomp", str(seccomp_fd)]
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
        if self._ws is not None and self._ws.shm is not None:  # else bwrap's /dev/shm: root's, not writable
            cmd += ["--bind", str(self._ws.shm), "/dev/shm"]
        assert self._ws is not None
        if self._ws.tmp is not None:  # /tmp shares the quota'd tmpfs with /work
            cmd += ["--bind", str(self._ws.tmp), "/tmp"]
        else:
            cmd += ["--perms", "1777", "--size", str(lim.tmp_bytes), "--tmpfs", "/tmp"]
        cmd += ["--bind", str(self._ws.work), INNER_WORK]
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
        self._kernel = None
        seccomp_fd: int | None = None
        if _seccomp.supported():
            filter_read, filter_write = os.pipe()
            os.write(filter_write, _seccomp.no_namespaces_filter())  # a few hundred bytes: fits the pipe buffer
            os.close(filter_write)
            self._seccomp_fd = seccomp_fd = filter_read
        else:
            _warn_once("seccomp", "no seccomp filter for this CPU: sandboxed code may create namespaces")
        return self.command_line(f"{INNER_IPC}/{conn_file.name}", info_fd=write_fd, seccomp_fd=seccomp_fd)

    def _spawn_kwargs(self) -> dict[str, Any]:
        limits = self.limits
        procs_files = self.cgroup.procs_files if self.cgroup is not None else []

        def preexec() -> None:  # in the child, before exec: bwrap and all it starts are in the sandbox's cgroup
            _cgroup.join_cgroup(procs_files)
            set_rlimits(limits, processes=True)

        return {
            "pass_fds": tuple(fd for fd in (self._info_write_fd, self._seccomp_fd) if fd >= 0),
            "cwd": "/",
            "env": {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            "preexec_fn": preexec,
        }

    async def _start_kernel(self) -> None:
        try:
            await super()._start_kernel()
        except subprocess.SubprocessError as err:  # preexec_fn failed: joining the cgroup or setting rlimits
            where = self.cgroup.dirs[0] if self.cgroup is not None else "-"
            raise SandboxError(
                f"could not confine the sandbox before starting it ({err}; cgroup {where}); "
                "PEERSTEP_SANDBOX_CGROUP=off runs without a cgroup (limits per process only)"
            ) from err
        finally:
            for fd in (self._info_write_fd, self._seccomp_fd):  # the parent's copies: bwrap keeps its own
                with contextlib.suppress(OSError):
                    if fd >= 0:
                        os.close(fd)
            self._info_write_fd = self._seccomp_fd = -1

    def _make_workspace(self) -> Workspace:
        """Lease a uid and make the cgroup (as available), and a workspace whose /work + /tmp are quota'd."""
        if self.as_root and self._fixed_uid is None and self._uid_lease is None:
            self._uid_lease = UidLease()
            self.uid = self._uid_lease.uid
            self.gid = self._fixed_gid if self._fixed_gid is not None else self.uid
        host = _cgroup.detect()
        if host is None:
            _warn_once(
                "cgroup",
                "no usable cgroup (memory + pids) for the sandboxes: memory is limited per process "
                "only and processes per uid; see the README's Python sandbox section",
            )
        elif self.cgroup is None:
            try:
                self.cgroup = _cgroup.SandboxCgroup(host, self.limits)
            except OSError as err:
                _warn_once("cgroup-create", f"cannot create a sandbox cgroup in {host.describe()}: {err}")
        workspace: Workspace | None = None
        if self.as_root:
            try:
                workspace = Workspace(quota_bytes=self.limits.disk_bytes)
            except OSError as err:
                _warn_once("tmpfs", f"cannot mount the sandbox's quota'd tmpfs ({err}): /work has no total cap")
        if workspace is None:
            workspace = Workspace()
        if self.cgroup is not None:
            workspace.record_cgroups(self.cgroup.dirs)
        return workspace

    def _release_resources(self) -> None:
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        if self._uid_lease is not None:
            self._uid_lease.release()
            self._uid_lease = None

    def _prepare_dirs(self) -> None:
        assert self._root is not None
        etc = self._root / "etc"
        if not etc.exists():
            etc.mkdir()
            (etc / "passwd").write_text(f"sandbox:x:{self.uid}:{self.gid}:sandbox:{INNER_WORK}:/bin/sh\n")
            (etc / "group").write_text(f"sandbox:x:{self.gid}:\n")
        if self.as_root:
            for path in (self.workdir, self._ipc_dir(), *self._ipc_dir().iterdir()):
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
        self._kernel_pid()  # remembered now, while the interpreter is init's only child

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
        if inner is not None and parent_of(inner) == proc.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(inner, 9)
            # bwrap exits once its child is gone and reaps it: no zombie is left for the host's init
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 2.0)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        if inner is not None:
            await wait_gone(inner, 5.0)
        self._close_info()
        self._inner_pid = None
        self._kernel = None

    def _kernel_pid(self) -> int | None:
        """The interpreter: the one child of the namespace's init (it never starts another)."""
        if self._kernel is not None and start_ticks(self._kernel[0]) == self._kernel[1]:
            return self._kernel[0]
        inner = self.inner_pid
        if inner is None:
            return None
        children = [p for p in pids_in_namespace(inner) if parent_of(p) == inner]
        if len(children) != 1:
            return None
        self._kernel = (children[0], start_ticks(children[0]))
        return children[0]

    def _other_processes(self, kernel: int) -> list[int]:
        inner = self.inner_pid
        return [p for p in pids_in_namespace(inner) if p not in (inner, kernel)] if inner is not None else []

    @property
    def inner_pid(self) -> int | None:
        """Host PID of the sandbox's PID-namespace init (kill it and everything inside dies)."""
        self._read_info()
        return self._inner_pid
