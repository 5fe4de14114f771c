"""Pool, backend selection, E2B configuration/errors/result mapping, and the result model."""

from __future__ import annotations

import asyncio
import errno
import importlib.util
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from peerstep.tools.sandbox import (
    MAX_POOL_SIZE,
    BwrapSandbox,
    E2BSandbox,
    ExecResult,
    LocalUnsafeSandbox,
    Sandbox,
    SandboxCapacityError,
    SandboxError,
    SandboxPool,
    _bwrap,
    _host,
    _seccomp,
    _uids,
    _workspace,
    check_pool_size,
    make_sandbox,
)
from peerstep.tools.sandbox._e2b import execution_to_result

pytestmark = pytest.mark.timeout(120)
HAS_BWRAP = shutil.which("bwrap") is not None
HAS_E2B = importlib.util.find_spec("e2b_code_interpreter") is not None


# ----- result model ------------------------------------------------------------------------------------------------
def test_observation_keeps_notes_when_cut() -> None:
    res = ExecResult(stdout="a" * 10_000, timed_out=True, restarted=True, timeout_s=10, truncated=True)
    obs = res.to_observation(500)
    assert len(obs) < 700 and "characters omitted" in obs
    assert "Timed out after 10 s; the interpreter could not be stopped cleanly" in obs
    assert "truncated" in obs and not res.ok
    assert ExecResult().to_observation(100) == "(no output)" and ExecResult().ok


# ----- pool (logic with a fake, then the real default backend) -----------------------------------------------------
class FakeSandbox(Sandbox):
    name: ClassVar[str] = "fake"
    created: ClassVar[list[FakeSandbox]] = []

    def __init__(self, fail_reset: bool = False) -> None:
        self.started = self.closed = False
        self.resets = 0
        self.fail_reset = fail_reset
        FakeSandbox.created.append(self)

    async def start(self) -> None:
        self.started = True

    async def run(self, code: str, timeout: float | None = None) -> ExecResult:
        return ExecResult(stdout=code)

    async def reset(self) -> None:
        await asyncio.sleep(0.01)
        if self.fail_reset:
            raise SandboxError("reset failed")
        self.resets += 1

    async def close(self) -> None:
        self.closed = True


async def test_pool_prestarts_recycles_and_closes() -> None:
    FakeSandbox.created.clear()
    async with SandboxPool(FakeSandbox, size=2) as pool:
        assert pool.idle == 2 and all(sb.started for sb in FakeSandbox.created)
        async with pool.acquire() as a, pool.acquire() as b, pool.acquire() as c:  # the third is started on demand
            assert len({id(a), id(b), id(c)}) == 3 and len(FakeSandbox.created) == 3
        await asyncio.sleep(0.1)
        assert pool.idle == 2  # two reset and returned, the extra one closed (pool full)
        assert sum(sb.closed for sb in FakeSandbox.created) == 1
        assert all(sb.resets == 1 for sb in FakeSandbox.created if not sb.closed)
    assert all(sb.closed for sb in FakeSandbox.created)
    with pytest.raises(SandboxError):
        async with pool.acquire():
            pass


async def test_pool_closes_sandbox_whose_reset_fails() -> None:
    FakeSandbox.created.clear()
    pool = SandboxPool(lambda: FakeSandbox(fail_reset=True), size=1)
    await pool.start()
    async with pool.acquire() as sb:
        pass
    await asyncio.sleep(0.1)
    assert isinstance(sb, FakeSandbox) and sb.closed and pool.idle == 0
    await pool.close()


@pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap is not installed")
async def test_pool_with_bwrap_isolates_trajectories_and_leaks_nothing() -> None:
    pool = SandboxPool(lambda: BwrapSandbox(timeout_s=10), size=1)
    await pool.start()
    async with pool.acquire() as sb:
        await sb.run("leak = 'from trajectory 1'\nopen('f', 'w').write('x')")
        assert isinstance(sb, BwrapSandbox)
        bwrap_pid = sb._proc.pid if sb._proc else -1
    for _ in range(100):  # background reset
        if pool.idle:
            break
        await asyncio.sleep(0.05)
    async with pool.acquire() as sb2:
        assert sb2 is sb
        res = await sb2.run("import os\nprint(os.listdir('.'))\nleak")
        assert res.stdout == "[]\n" and res.error_name == "NameError"
        inner = sb2.inner_pid
    await pool.close()
    assert not Path(f"/proc/{bwrap_pid}").exists() and inner is not None and not Path(f"/proc/{inner}").exists()


# ----- backend selection and setup errors ------------------------------------------------------------------------
@pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap is not installed")
def test_default_backend_is_bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    monkeypatch.delenv("PEERSTEP_SANDBOX", raising=False)
    assert isinstance(make_sandbox(), BwrapSandbox)
    assert isinstance(make_sandbox("local-unsafe"), LocalUnsafeSandbox)
    sb = make_sandbox(timeout_s=3, memory_bytes=1 << 30)
    assert isinstance(sb, BwrapSandbox) and sb.limits.timeout_s == 3 and sb.limits.memory_bytes == 1 << 30


def test_e2b_chosen_when_key_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PEERSTEP_SANDBOX", raising=False)
    monkeypatch.setenv("E2B_API_KEY", "e2b_test")
    if HAS_E2B:
        assert isinstance(make_sandbox(), E2BSandbox)
    else:
        with pytest.raises(SandboxError, match=r"pip install 'peerstep\[e2b\]'"):
            make_sandbox()


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(SandboxError, match="unknown sandbox backend 'docker'"):
        make_sandbox("docker")


def test_missing_bwrap_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_bwrap.shutil, "which", lambda name: None)
    with pytest.raises(SandboxError, match=r"sudo apt-get install bubblewrap.*scripts/install_system\.sh"):
        BwrapSandbox()


@pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap is not installed")
async def test_bwrap_without_namespaces_is_explained(tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: Creating new namespace failed: Operation not permitted' >&2\nexit 1\n")
    fake.chmod(0o755)
    sb = BwrapSandbox()
    sb.bwrap = str(fake)
    with pytest.raises(SandboxError, match="cannot create namespaces"):
        await sb.start()
    await sb.close()


async def test_local_unsafe_warns_on_every_run() -> None:
    async with LocalUnsafeSandbox(timeout_s=10) as sb:
        for _ in range(2):
            with pytest.warns(RuntimeWarning, match="NOT isolated"):
                await sb.run("1")


# ----- E2B ---------------------------------------------------------------------------------------------------------
# Faithful stand-ins for e2b_code_interpreter.models (same attribute names), used when the package is absent.
@dataclass
class _Result:
    text: str | None = None
    is_main_result: bool = False


@dataclass
class _Logs:
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)


@dataclass
class _Error:
    name: str
    value: str
    traceback: str


@dataclass
class _Execution:
    results: list[Any] = field(default_factory=list)
    logs: Any = field(default_factory=_Logs)
    error: Any = None


def _models() -> list[tuple[str, Any, Any, Any, Any]]:
    kinds: list[tuple[str, Any, Any, Any, Any]] = [("stand-ins", _Execution, _Result, _Logs, _Error)]
    if HAS_E2B:
        from e2b_code_interpreter.models import Execution, ExecutionError, Logs, Result

        kinds.append(("real", Execution, Result, Logs, ExecutionError))
    return kinds


@pytest.mark.parametrize(("kind", "Execution", "Result", "Logs", "Error"), _models(), ids=[k[0] for k in _models()])
def test_e2b_execution_mapping(kind: str, Execution: Any, Result: Any, Logs: Any, Error: Any) -> None:
    execution = Execution(
        results=[Result(text="shown", is_main_result=False), Result(text="42", is_main_result=True)],
        logs=Logs(stdout=["a\n", "b\n"], stderr=["warn\n"]),
    )
    res = execution_to_result(execution, max_bytes=1024, duration_s=0.5, timeout_s=10)
    assert (res.stdout, res.stderr, res.value, res.ok) == ("a\nb\nshown\n", "warn\n", "42", True)
    failed = Execution(logs=Logs(stdout=["x" * 5000]), error=Error("ValueError", "bad", "\x1b[31mTraceback...\x1b[0m"))
    res = execution_to_result(failed, max_bytes=1024, duration_s=0.5, timeout_s=10)
    assert (res.error_name, res.error_message, res.traceback) == ("ValueError", "bad", "Traceback...")
    assert res.truncated and len(res.stdout) == 1024 and not res.ok


def test_e2b_requires_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    with pytest.raises(SandboxError, match="E2B_API_KEY"):
        E2BSandbox()


def test_e2b_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("E2B_API_KEY", "e2b_test")
    monkeypatch.setitem(sys.modules, "e2b_code_interpreter", None)
    with pytest.raises(SandboxError, match=r"pip install 'peerstep\[e2b\]'"):
        E2BSandbox()


class _FakeRemote:
    """Stands in for the remote ``AsyncSandbox``: the service itself cannot be reached from here."""

    created: ClassVar[list[dict[str, Any]]] = []
    killed = 0

    @classmethod
    async def create(cls, **kwargs: Any) -> _FakeRemote:
        cls.created.append(kwargs)
        return cls()

    async def run_code(self, code: str, timeout: float | None = None) -> Any:
        if code == "slow":
            raise type("TimeoutException", (Exception,), {})("Execution timed out — the 'timeout' option ...")
        if code == "down":
            raise ConnectionError("sandbox unreachable")
        return _Execution(results=[_Result(text=code, is_main_result=True)])

    async def kill(self) -> None:
        _FakeRemote.killed += 1


async def test_e2b_lifecycle_with_fake_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("E2B_API_KEY", "e2b_test")
    monkeypatch.setenv("E2B_DOMAIN", "e2b.example.internal")
    module = type(sys)("e2b_code_interpreter")
    module.AsyncSandbox = _FakeRemote  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "e2b_code_interpreter", module)
    _FakeRemote.created.clear()
    _FakeRemote.killed = 0
    sb = E2BSandbox(timeout_s=5)
    assert sb.create_kwargs()["domain"] == "e2b.example.internal" and sb.create_kwargs()["api_key"] == "e2b_test"
    async with sb:
        assert (await sb.run("1+1")).value == "1+1"
        slow = await sb.run("slow", timeout=2)
        assert slow.timed_out and "Timed out after 2 s" in slow.to_observation(500)
        with pytest.raises(SandboxError, match="unreachable"):
            await sb.run("down")
        await sb.reset()
    await sb.close()
    assert len(_FakeRemote.created) == 2 and _FakeRemote.killed == 2


# ----- capacity: pool size, uid range ------------------------------------------------------------------------------
def test_pool_larger_than_the_limit_is_refused_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_pool_size(MAX_POOL_SIZE) is None
    with pytest.raises(SandboxCapacityError, match=f"1000 sandboxes at once is more than the limit of {MAX_POOL_SIZE}"):
        SandboxPool(FakeSandbox, size=1000)
    monkeypatch.setenv("PEERSTEP_MAX_SANDBOXES", "4")
    with pytest.raises(SandboxCapacityError, match=r"more than the limit of 4.*PEERSTEP_MAX_SANDBOXES"):
        check_pool_size(5)
    assert issubclass(SandboxCapacityError, SandboxError)


async def test_pool_never_opens_more_than_max_open() -> None:
    async with SandboxPool(FakeSandbox, size=1, max_open=2) as pool:
        async with pool.acquire(), pool.acquire():
            with pytest.raises(SandboxCapacityError, match="already has 2 sandboxes open"):
                async with pool.acquire():
                    pass
        await asyncio.sleep(0.1)
        async with pool.acquire():  # released ones count no more
            pass


@pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap is not installed")
def test_uid_range_exhausted_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0:  # documented: as a user, bwrap maps the code to 65534 in a user namespace, no lease
        sb = BwrapSandbox()
        assert sb.uid == 65534 and sb._uid_lease is None
        return
    monkeypatch.setenv("PEERSTEP_SANDBOX_UIDS", "1900999990:2")
    first, second = _uids.UidLease(), _uids.UidLease()
    try:
        assert {first.uid, second.uid} == {1900999990, 1900999991}
        with pytest.raises(SandboxCapacityError, match=r"all 2 sandbox uids .* are in use"):
            _uids.UidLease()
        second.release()
        third = _uids.UidLease()  # a released uid is free again
        assert third.uid == second.uid
        third.release()
    finally:
        first.release()
        second.release()


# ----- seccomp filter and orphan cleanup, without a sandbox --------------------------------------------------------
def test_seccomp_filter_refuses_namespaces_in_a_child() -> None:
    """Load the filter into a forked child and try what the sandboxed code would (no bwrap involved)."""
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    prog = _seccomp.no_namespaces_filter()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:

            class SockFprog(ctypes.Structure):
                _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

            fprog = SockFprog(len(prog) // 8, prog)
            libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
            ok = libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) == 0  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
            user = libc.unshare(0x10000000)
            err = ctypes.get_errno()
            forked = os.fork()  # plain fork (clone without namespace flags) still works
            if forked == 0:
                os._exit(0)
            os.waitpid(forked, 0)
            os.write(write_fd, f"{ok} {user} {err}".encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    os.waitpid(pid, 0)
    assert os.read(read_fd, 100).decode() == f"True -1 {errno.EPERM}"
    os.close(read_fd)


def test_cleanup_removes_only_dirs_of_dead_owners(tmp_path: Path) -> None:
    dead = tmp_path / f"{_workspace.PREFIX}dead"
    live = tmp_path / f"{_workspace.PREFIX}live"
    unowned_new = tmp_path / f"{_workspace.PREFIX}new"
    for d in (dead, live, unowned_new):
        (d / "work").mkdir(parents=True)
    (dead / _workspace.OWNER_FILE).write_text(json.dumps({"pid": 2**22 + 12345, "start": 1, "cgroups": []}))
    me = {"pid": os.getpid(), "start": _host.start_ticks(os.getpid()), "cgroups": []}
    (live / _workspace.OWNER_FILE).write_text(json.dumps(me))
    assert _workspace.cleanup_orphans(tmp_path) == [dead]
    assert live.exists() and unowned_new.exists() and not dead.exists()
    # a reused pid (same number, another start time) is not the owner
    (live / _workspace.OWNER_FILE).write_text(json.dumps({**me, "start": me["start"] - 1}))
    assert _workspace.cleanup_orphans(tmp_path) == [live]


async def test_pool_whose_start_fails_closes_every_sandbox() -> None:
    FakeSandbox.created.clear()
    calls = 0

    def factory() -> Sandbox:
        nonlocal calls
        calls += 1
        sb = FakeSandbox()
        if calls == 2:

            async def fail() -> None:
                raise SandboxError("cannot start")

            sb.start = fail  # type: ignore[method-assign]
        return sb

    with pytest.raises(SandboxError, match="cannot start"):
        async with SandboxPool(factory, size=3):
            pass
    assert len(FakeSandbox.created) == 3 and all(sb.closed for sb in FakeSandbox.created)


@pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap is not installed")
async def test_bwrap_that_cannot_join_its_cgroup_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(paths: list[str]) -> None:
        raise PermissionError("cgroup.procs")

    monkeypatch.setattr(_bwrap._cgroup, "join_cgroup", refuse)
    sb = BwrapSandbox(timeout_s=10)
    with pytest.raises(SandboxError, match=r"could not confine the sandbox.*PEERSTEP_SANDBOX_CGROUP=off"):
        await sb.start()
    await sb.close()
