"""A seccomp filter that forbids new namespaces inside the sandbox (bubblewrap loads it with ``--seccomp FD``).

Why: as root, bubblewrap makes no user namespace (root's own would map uid 0 to 0), so its ``--disable-userns``
is not available, and the unprivileged uid the code runs as could otherwise call ``unshare -Urm``: in a user
namespace of its own it may mount a tmpfs and fill host memory past every limit. The filter makes ``unshare``,
``clone`` and ``setns`` with any namespace flag fail with EPERM, and ``clone3`` (whose flags sit in memory a
filter cannot read) fail with ENOSYS, which makes the C library fall back to ``clone``. Foreign system-call ABIs
(i386 and x32 on x86-64) kill the process: they would bypass the numbers checked here.

Written as raw classic BPF (no libseccomp needed); x86-64 and aarch64.
"""

from __future__ import annotations

import errno
import platform
import struct

CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACE_FLAGS = (
    CLONE_NEWTIME
    | CLONE_NEWNS
    | CLONE_NEWCGROUP
    | CLONE_NEWUTS
    | CLONE_NEWIPC
    | CLONE_NEWUSER
    | CLONE_NEWPID
    | CLONE_NEWNET
)

# classic BPF opcodes
_LD_W_ABS = 0x00 | 0x00 | 0x20
_JEQ_K = 0x05 | 0x10
_JGE_K = 0x05 | 0x30
_JSET_K = 0x05 | 0x40
_RET_K = 0x06
_ALLOW = 0x7FFF0000
_KILL_PROCESS = 0x80000000
_ERRNO = 0x00050000

# seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6]  (args[0]'s low half at 16 on little endian)
_OFF_NR, _OFF_ARCH, _OFF_ARG0 = 0, 4, 16

_ARCHES: dict[str, tuple[int, dict[str, int], bool]] = {
    # machine: (AUDIT_ARCH_*, syscall numbers, reject the x32 ABI bit)
    "x86_64": (0xC000003E, {"clone": 56, "unshare": 272, "setns": 308, "clone3": 435}, True),
    "aarch64": (0xC00000B7, {"clone": 220, "unshare": 97, "setns": 268, "clone3": 435}, False),
}


def supported() -> bool:
    return platform.machine() in _ARCHES


def no_namespaces_filter() -> bytes:
    """The compiled filter (an array of ``struct sock_filter``), as ``--seccomp`` expects it."""
    machine = platform.machine()
    if machine not in _ARCHES:
        raise RuntimeError(f"no seccomp filter for {machine}")
    arch, nr, x32 = _ARCHES[machine]
    # (code, jump-if-true label, jump-if-false label, k); labels are resolved to relative offsets below
    Insn = tuple[int, str | None, str | None, int]
    prog: list[str | Insn] = [  # a str is a label for the next instruction
        (_LD_W_ABS, None, None, _OFF_ARCH),
        (_JEQ_K, "arch_ok", "kill", arch),
        "arch_ok",
        (_LD_W_ABS, None, None, _OFF_NR),
    ]
    if x32:
        prog.append((_JGE_K, "kill", "nr_ok", 0x40000000))
        prog.append("nr_ok")
    prog += [
        (_JEQ_K, "enosys", "not_clone3", nr["clone3"]),
        "not_clone3",
        (_JEQ_K, "eperm", "not_setns", nr["setns"]),
        "not_setns",
        (_JEQ_K, "flags", "not_unshare", nr["unshare"]),
        "not_unshare",
        (_JEQ_K, "flags", "allow", nr["clone"]),
        "flags",
        (_LD_W_ABS, None, None, _OFF_ARG0),
        (_JSET_K, "eperm", "allow", NAMESPACE_FLAGS),
        "allow",
        (_RET_K, None, None, _ALLOW),
        "eperm",
        (_RET_K, None, None, _ERRNO | errno.EPERM),
        "enosys",
        (_RET_K, None, None, _ERRNO | errno.ENOSYS),
        "kill",
        (_RET_K, None, None, _KILL_PROCESS),
    ]
    labels: dict[str, int] = {}
    code: list[Insn] = []
    for item in prog:
        if isinstance(item, str):
            labels[item] = len(code)
        else:
            code.append(item)
    out = bytearray()
    for index, (op, jt, jf, k) in enumerate(code):
        rel_t = labels[jt] - index - 1 if jt else 0
        rel_f = labels[jf] - index - 1 if jf else 0
        assert 0 <= rel_t < 256 and 0 <= rel_f < 256
        out += struct.pack("=HBBI", op, rel_t, rel_f, k)
    return bytes(out)
