"""Host-side process facts and controls the local backends share: rlimits, /proc reading, killing leftovers.

Everything here reads the host's /proc; nothing trusts what the code inside the sandbox says about itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

from ._base import SandboxLimits

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def set_rlimits(limits: SandboxLimits, *, processes: bool) -> None:
    """Runs in the child between fork and exec: the limits then hold for every process it starts (each one)."""
    import resource

    pairs = [
        (resource.RLIMIT_AS, limits.memory_bytes),
        (resource.RLIMIT_CPU, limits.cpu_seconds),
        (resource.RLIMIT_FSIZE, limits.file_size_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_CORE, 0),
    ]
    if processes:
        pairs.append((resource.RLIMIT_NPROC, limits.processes))
    for which, value in pairs:
        resource.setrlimit(which, (value, value))


def _stat_fields(pid: int | str, task: int | str | None = None) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (after the command name, which may contain spaces and parentheses)."""
    path = f"/proc/{pid}/stat" if task is None else f"/proc/{pid}/task/{task}/stat"
    try:
        return Path(path).read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def state_of(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def alive(pid: int) -> bool:
    return state_of(pid) not in (None, "Z", "X")


def start_ticks(pid: int, task: int | None = None) -> int | None:
    """When the process (or one of its threads) started, in clock ticks since boot (stat field 22)."""
    fields = _stat_fields(pid, task)
    return int(fields[19]) if fields else None


def now_ticks() -> int:
    """The current time on the same clock as ``start_ticks`` (boot time, in ticks)."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * CLOCK_TICKS)


def pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def pids_in_namespace(init_pid: int) -> list[int]:
    """Host PIDs of every live process in the PID namespace that ``init_pid`` leads (init included)."""
    target = pid_namespace(init_pid)
    if target is None:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and pid_namespace(int(entry)) == target and alive(int(entry)):
            found.append(int(entry))
    return found


def descendants(root: int) -> list[int]:
    """Live descendants of ``root`` on the host (not ``root`` itself)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ppid = parent_of(int(entry))
            if ppid is not None:
                children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found and alive(child):
                found.append(child)
                todo.append(child)
    return found


def threads_started_since(pid: int, since: int) -> list[int]:
    """Threads of ``pid`` (other than its main thread) that started at or after tick ``since`` and still run."""
    try:
        tasks = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []
    return [t for t in tasks if t != pid and (start_ticks(pid, t) or -1) >= since]


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


async def kill_until_gone(find: object, timeout: float = 5.0) -> int:
    """SIGKILL what ``find()`` returns until it returns nothing (a forking process can add children meanwhile).

    Returns how many distinct processes were killed.
    """
    assert callable(find)
    killed: set[int] = set()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        victims = [p for p in find() if alive(p)]
        if not victims:
            break
        killed.update(victims)
        kill_all(victims)
        await asyncio.sleep(0.01)
    return len(killed)


async def wait_gone(pid: int, timeout: float) -> None:
    """Wait until ``pid`` is gone or a zombie: by then the PID namespace it led has been emptied."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and state_of(pid) not in (None, "Z", "X"):
        await asyncio.sleep(0.005)
