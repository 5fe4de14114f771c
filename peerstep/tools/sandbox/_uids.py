"""A distinct host uid per sandbox (as root), leased from a fixed range with a lock file per uid.

Why: RLIMIT_NPROC counts the processes of a *uid*. With one shared uid (65534), one sandbox holding its children
made every other sandbox fail to start. With one uid per sandbox the limit is per sandbox even where no cgroup is
available, and sandboxes cannot signal or read each other's files. The lock (``flock``) is held for the
sandbox's life and the kernel drops it when the owner dies, so a SIGKILLed host never leaks a uid, and several
host processes share the range safely.

The range is ``PEERSTEP_SANDBOX_UIDS`` ("first:count"), by default 1,900,000,000 upward, far from real users and
from the usual subordinate-uid ranges; its size is the most sandboxes one host can run at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from ._base import SandboxCapacityError

DEFAULT_FIRST_UID = 1_900_000_000
DEFAULT_UID_COUNT = 512
LOCK_DIR = Path("/run/peerstep-sandbox-uids")


def uid_range() -> range:
    setting = os.environ.get("PEERSTEP_SANDBOX_UIDS", "").strip()
    if setting:
        first, _, count = setting.partition(":")
        return range(int(first), int(first) + int(count or DEFAULT_UID_COUNT))
    return range(DEFAULT_FIRST_UID, DEFAULT_FIRST_UID + DEFAULT_UID_COUNT)


class UidLease:
    """Holds one uid of the range until ``release()`` (or until this process dies)."""

    def __init__(self) -> None:
        LOCK_DIR.mkdir(mode=0o700, exist_ok=True)
        uids = uid_range()
        start = (os.getpid() * 7919) % len(uids)  # spread concurrent host processes over the range
        for i in range(len(uids)):
            uid = uids[(start + i) % len(uids)]
            fd = os.open(LOCK_DIR / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.uid, self._fd = uid, fd
            return
        raise SandboxCapacityError(
            f"all {len(uids)} sandbox uids ({uids.start}-{uids.stop - 1}) are in use on this host: that many "
            "sandboxes are already running; close some, or widen PEERSTEP_SANDBOX_UIDS (first:count)"
        )

    def release(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
