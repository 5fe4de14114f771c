"""The host directory of one sandbox, its disk quota, and the removal of directories whose owner died.

Layout of ``/tmp/peerstep-sandbox-XXXX``:

* ``owner.json``: the owning host process (pid and start time, so a reused pid is not mistaken for it) and the
  cgroups it made. A later start removes directories whose owner is gone (a SIGKILLed host cannot clean up).
* ``ipc/``: the kernel's connection file and sockets.
* ``fs/``: as root, a tmpfs of ``disk_bytes`` holding ``work/`` (the code's /work), ``tmp/`` (its /tmp) and
  ``shm/`` (its /dev/shm): one total quota for all three, with a cap on the number of files. Its pages are RAM
  and count against the sandbox's memory cgroup. Without the right to mount (not root), ``work/`` is a plain host
  directory (only RLIMIT_FSIZE caps each file), /tmp is bubblewrap's own ``tmp_bytes`` tmpfs and /dev/shm is
  not writable.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ._host import alive, start_ticks

log = logging.getLogger(__name__)

PREFIX = "peerstep-sandbox-"
OWNER_FILE = "owner.json"
NO_OWNER_GRACE_S = 24 * 3600  # directories from versions that wrote no owner file: removed once this old
_MS_NOSUID, _MS_NODEV, _MNT_DETACH = 2, 4, 2
_libc: Any = None
_cleaned = False
_clean_lock = threading.Lock()


def _c() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


def mount_tmpfs(target: Path, size_bytes: int, inodes: int) -> None:
    options = f"size={size_bytes},nr_inodes={inodes},mode=0755".encode()
    if _c().mount(b"tmpfs", str(target).encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, options) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount tmpfs on {target}: {os.strerror(err)}")


def unmount(target: Path) -> None:
    if _c().umount2(str(target).encode(), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


def mounts_under(directory: Path) -> list[Path]:
    """Mount points at or below ``directory`` in this mount namespace, deepest first."""
    prefix = str(directory).rstrip("/")
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].encode().decode("unicode_escape")  # \040 for spaces etc.
            if point == prefix or point.startswith(prefix + "/"):
                found.append(Path(point))
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


class Workspace:
    """One sandbox's host directory; ``quota_bytes`` set means /work and /tmp share a tmpfs of that size."""

    def __init__(self, *, quota_bytes: int | None = None) -> None:
        cleanup_orphans_once()
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX))
        self.quota_bytes: int | None = None
        self._owner: dict[str, Any] = {"pid": os.getpid(), "start": start_ticks(os.getpid()), "cgroups": []}
        self._write_owner()
        try:
            (self.root / "ipc").mkdir(mode=0o700)
            data = self.root
            if quota_bytes is not None:
                data = self.root / "fs"
                data.mkdir(mode=0o755)
                mount_tmpfs(data, quota_bytes, inodes=max(1024, quota_bytes // (32 * 1024)))
                self.quota_bytes = quota_bytes
                for name in ("tmp", "shm"):
                    (data / name).mkdir()
                    os.chmod(data / name, 0o1777)
            (data / "work").mkdir()
        except BaseException:
            self.remove()
            raise
        self.data = data

    @property
    def work(self) -> Path:
        return self.data / "work"

    @property
    def tmp(self) -> Path | None:
        """Host path of the sandbox's /tmp when it shares the quota with /work, else None."""
        return self.data / "tmp" if self.quota_bytes is not None else None

    @property
    def shm(self) -> Path | None:
        """Host path of the sandbox's /dev/shm (POSIX shared memory, semaphores) on the same quota, else None."""
        return self.data / "shm" if self.quota_bytes is not None else None

    @property
    def ipc(self) -> Path:
        return self.root / "ipc"

    def record_cgroups(self, paths: list[Path]) -> None:
        self._owner["cgroups"] = [str(p) for p in paths]
        self._write_owner()

    def _write_owner(self) -> None:
        tmp = self.root / (OWNER_FILE + ".new")
        tmp.write_text(json.dumps(self._owner))
        tmp.replace(self.root / OWNER_FILE)

    def remove(self) -> None:
        _remove_dir(self.root)


def _remove_dir(root: Path) -> None:
    for point in mounts_under(root):
        try:
            unmount(point)
        except OSError as err:
            log.warning("could not unmount %s: %s", point, err)
    shutil.rmtree(root, ignore_errors=True)


def _owner_alive(owner: dict[str, Any]) -> bool:
    pid = owner.get("pid")
    return isinstance(pid, int) and alive(pid) and start_ticks(pid) == owner.get("start")


def cleanup_orphans(tmpdir: str | Path | None = None) -> list[Path]:
    """Remove sandbox directories (and their mounts and cgroups) whose owning process is gone."""
    from ._cgroup import remove_cgroup_dir

    removed = []
    for path in Path(tmpdir or tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            if not path.is_dir() or path.is_symlink():
                continue
            owner_file = path / OWNER_FILE
            if owner_file.exists():
                owner = json.loads(owner_file.read_text())
                if _owner_alive(owner):
                    continue
            elif time.time() - path.stat().st_mtime < NO_OWNER_GRACE_S:
                continue  # being created right now, or left by an older peerstep that wrote no owner file
            else:
                owner = {}
        except (OSError, ValueError):
            continue
        for cgroup in owner.get("cgroups") or []:
            remove_cgroup_dir(Path(cgroup))
        _remove_dir(path)
        removed.append(path)
    if removed:
        log.info("removed %d sandbox directories left by dead processes", len(removed))
    return removed


def cleanup_orphans_once() -> None:
    """Run ``cleanup_orphans`` at the first sandbox start of this process."""
    global _cleaned
    with _clean_lock:
        if _cleaned:
            return
        _cleaned = True
    try:
        cleanup_orphans()
    except Exception as err:  # cleaning up after others must never stop this sandbox from starting
        log.warning("cleaning up orphaned sandbox directories failed: %s", err)
