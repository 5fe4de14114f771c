"""One cgroup per sandbox, so that memory (tmpfs and shared memory included), processes and CPU are limited for
the sandbox as a whole rather than per process.

Where it is made: below the cgroup this host process already runs in (so the host's own limits still hold for
the sandboxes), or below ``PEERSTEP_SANDBOX_CGROUP`` (a delegated cgroup v2 directory). Both cgroup v2 (one
unified tree: ``memory.max``, ``memory.swap.max``, ``pids.max``, ``cpu.max``) and the legacy v1 layout (one tree
per controller: ``memory.limit_in_bytes``, ``pids.max``, ``cpu.cfs_quota_us``) are handled. Where neither offers
the memory and pids controllers to us (not root, no delegation, a container without a writable cgroupfs),
``detect()`` returns None and the sandbox falls back to per-process rlimits plus a per-sandbox uid (see
``_bwrap``); ``PEERSTEP_SANDBOX_CGROUP=off`` forces that fallback.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from ._base import SandboxLimits

log = logging.getLogger(__name__)

NAME_PREFIX = "peerstep-sandbox-"
CONTROLLERS = ("memory", "pids", "cpu")
REQUIRED = frozenset({"memory", "pids"})
CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class CgroupHost:
    """Where per-sandbox cgroups can be created: ``version`` 1 or 2, and the parent directory per controller."""

    version: int
    parents: dict[str, Path]

    @property
    def controllers(self) -> frozenset[str]:
        return frozenset(self.parents)

    def describe(self) -> str:
        where = sorted({str(p) for p in self.parents.values()})
        return f"cgroup v{self.version} ({', '.join(sorted(self.controllers))}) under {', '.join(where)}"


def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape")


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(root inside the fs, mount point, fs type, super options) of every cgroup mount."""
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) >= 5 and tail and tail[0] in ("cgroup", "cgroup2"):
                opts = set(tail[2].split(",")) if len(tail) > 2 else set()
                found.append((_unescape(fields[3]), _unescape(fields[4]), tail[0], opts))
    return found


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per controller; key "" for the v2 unified tree."""
    paths: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                paths[name] = path
    return paths


def _join(mount_root: str, mount_point: str, own: str) -> Path | None:
    rel = os.path.relpath(own, mount_root)
    if rel.startswith(".."):
        return None  # our cgroup is outside what this mount shows
    return Path(mount_point) / ("" if rel == "." else rel)


def _writable(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


def _detect_v2(parent: Path) -> CgroupHost | None:
    try:
        offered = set((parent / "cgroup.controllers").read_text().split())
        enabled = set((parent / "cgroup.subtree_control").read_text().split())
    except OSError:
        return None
    wanted = [c for c in CONTROLLERS if c in offered]
    if not set(wanted) >= REQUIRED or not _writable(parent):
        return None
    missing = [c for c in wanted if c not in enabled]
    if missing:  # fails with EBUSY where the parent holds processes itself (the "no internal processes" rule)
        try:
            (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in missing))
        except OSError as err:
            log.info("cannot enable %s in %s: %s", missing, parent, err)
            return None
    return CgroupHost(2, {c: parent for c in wanted})


@functools.cache
def detect() -> CgroupHost | None:
    """The cgroup facility available to this process, or None (then limits are per process; see module doc)."""
    setting = os.environ.get("PEERSTEP_SANDBOX_CGROUP", "").strip()
    if setting.lower() in ("off", "0", "no", "none"):
        return None
    if setting:
        return _detect_v2(Path(setting))
    mounts, own = _mounts(), _own_paths()
    for root, point, kind, _ in mounts:
        if kind == "cgroup2" and "" in own:
            parent = _join(root, point, own[""])
            if parent is not None and (host := _detect_v2(parent)) is not None:
                return host
    parents: dict[str, Path] = {}
    for root, point, kind, opts in mounts:
        if kind != "cgroup":
            continue
        for controller in CONTROLLERS:
            if controller in opts and controller in own and controller not in parents:
                parent = _join(root, point, own[controller])
                if parent is not None and _writable(parent):
                    parents[controller] = parent
    if set(parents) >= REQUIRED:
        return CgroupHost(1, parents)
    return None


class SandboxCgroup:
    """The cgroup(s) of one sandbox (one directory in v2, one per controller tree in v1)."""

    def __init__(self, host: CgroupHost, limits: SandboxLimits) -> None:
        self.host = host
        name = f"{NAME_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        self.dirs: list[Path] = []
        for parent in dict.fromkeys(host.parents.values()):
            path = parent / name
            path.mkdir()
            self.dirs.append(path)
        try:
            self._apply(limits)
        except OSError:
            self.remove()
            raise

    def _dir(self, controller: str) -> Path:
        return self.host.parents[controller] / self.dirs[0].name

    def _apply(self, limits: SandboxLimits) -> None:
        memory, pids = self._dir("memory"), self._dir("pids")
        quota = int(limits.cpu_cores * CPU_PERIOD_US)
        if self.host.version == 2:
            (memory / "memory.max").write_text(str(limits.memory_bytes))
            with contextlib.suppress(OSError):  # absent without swap accounting
                (memory / "memory.swap.max").write_text("0")
            (pids / "pids.max").write_text(str(limits.processes))
            if "cpu" in self.host.parents:
                (self._dir("cpu") / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")
        else:
            (memory / "memory.limit_in_bytes").write_text(str(limits.memory_bytes))
            with contextlib.suppress(OSError):  # memory+swap: absent without swap accounting
                (memory / "memory.memsw.limit_in_bytes").write_text(str(limits.memory_bytes))
            (pids / "pids.max").write_text(str(limits.processes))
            if "cpu" in self.host.parents:
                cpu = self._dir("cpu")
                (cpu / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
                (cpu / "cpu.cfs_quota_us").write_text(str(quota))

    @property
    def procs_files(self) -> list[str]:
        """``cgroup.procs`` of every directory: a process joins by writing its pid (or 0 for itself) there."""
        return [str(d / "cgroup.procs") for d in self.dirs]

    def members(self) -> set[int]:
        pids: set[int] = set()
        for path in self.dirs:
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(p) for p in (path / "cgroup.procs").read_text().split())
        return pids

    def memory_peak(self) -> int | None:
        """Most memory the sandbox has held (bytes), as the kernel accounted it (v2 ``memory.peak`` needs 5.19)."""
        name = "memory.peak" if self.host.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int((self._dir("memory") / name).read_text())
        except (OSError, ValueError):
            return None

    def remove(self) -> None:
        for path in self.dirs:
            remove_cgroup_dir(path)


def join_cgroup(procs_files: list[str]) -> None:
    """Runs in the child between fork and exec: move this process into the sandbox's cgroup(s)."""
    for path in procs_files:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)


def remove_cgroup_dir(path: Path, timeout: float = 5.0) -> None:
    """Kill whatever is still in the cgroup, then remove it (only our own names are ever removed)."""
    if not path.name.startswith(NAME_PREFIX) or not path.is_dir():
        return
    end = time.monotonic() + timeout
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > end:
                log.warning("could not remove cgroup %s", path)
                return
        with contextlib.suppress(OSError, ValueError):
            for pid in (path / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.02)
