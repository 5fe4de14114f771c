"""One conformance suite for every sandbox backend that runs here.

Functional tests apply to all backends. Attack tests apply to backends that claim isolation (``isolated = True``);
each one checks three things: the attack failed, the host is unchanged, and the result tells the model clearly
what happened. Isolation is proven by probing from inside, never by reading our own configuration.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import signal
import socket
import textwrap
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from peerstep.tools.sandbox import BwrapSandbox, LocalUnsafeSandbox, Sandbox, SandboxError
from peerstep.tools.sandbox._kernel import KernelSandbox

pytestmark = [pytest.mark.timeout(120), pytest.mark.filterwarnings("ignore:LocalUnsafeSandbox is NOT isolated")]

LIMITS: dict[str, Any] = {"timeout_s": 10.0, "memory_bytes": 1 << 30, "processes": 64, "interrupt_grace_s": 1.5}


def _available() -> list[type[KernelSandbox]]:
    backends: list[type[KernelSandbox]] = [LocalUnsafeSandbox]
    if shutil.which("bwrap"):
        backends.insert(0, BwrapSandbox)
    return backends


@pytest.fixture(params=_available(), ids=lambda cls: cls.name)
def backend(request: pytest.FixtureRequest) -> type[KernelSandbox]:
    cls: type[KernelSandbox] = request.param
    return cls


@pytest.fixture
async def sb(backend: type[KernelSandbox]) -> AsyncIterator[KernelSandbox]:
    sandbox = backend(**LIMITS)
    await sandbox.start()
    try:
        yield sandbox
    finally:
        await sandbox.close()


# Attack tests run only on backends that claim isolation: the backend parameter is narrowed, not skipped.
isolated_only = pytest.mark.parametrize(
    "backend", [cls for cls in _available() if cls.isolated], indirect=True, ids=lambda cls: cls.name
)


# ----- host-side helpers -------------------------------------------------------------------------------------------
def _ppid_map() -> dict[int, int]:
    out: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            out[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def _tree(root: int) -> set[int]:
    """``root`` and all its live descendants on the host."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _ppid_map().items():
        children.setdefault(ppid, []).append(pid)
    seen, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _sandbox_pids(sb: KernelSandbox) -> set[int]:
    assert sb._proc is not None
    return {p for p in _tree(sb._proc.pid) if _alive(p)}


def _kernel_pid(sb: KernelSandbox) -> int:
    for pid in sorted(_sandbox_pids(sb)):
        if Path(f"/proc/{pid}/comm").read_text().startswith("python"):
            return pid
    raise AssertionError("kernel process not found")


def _cmdlines_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmd and _alive(int(entry)):
                found.append(int(entry))
    return found


async def _wait_until(cond: object, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if callable(cond) and cond():
            return True
        await asyncio.sleep(0.05)
    return bool(callable(cond) and cond())


# ----- functional: every backend -----------------------------------------------------------------------------------
async def test_state_persists_and_value_is_reported(sb: Sandbox) -> None:
    assert (await sb.run("x = 20")).ok
    res = await sb.run("print('hello'); x + 22")
    assert res.ok and res.stdout == "hello\n" and res.value == "42"
    assert res.to_observation(1000) == "hello\n[value]\n42"


async def test_syntax_error_is_a_result(sb: Sandbox) -> None:
    res = await sb.run("def f(:\n  pass")
    assert not res.ok and res.error_name == "SyntaxError" and not res.restarted
    assert "SyntaxError" in res.to_observation(2000)
    assert (await sb.run("1 + 1")).value == "2"


async def test_exception_keeps_state_and_reports_traceback(sb: Sandbox) -> None:
    await sb.run("y = 3")
    res = await sb.run("def g():\n    raise ValueError('bad input')\ng()")
    assert res.error_name == "ValueError" and res.error_message == "bad input"
    obs = res.to_observation(4000)
    assert "[error] ValueError: bad input" in obs and "\x1b[" not in obs and "g()" in obs
    assert (await sb.run("y")).value == "3"


async def test_non_utf8_output_is_replaced(sb: Sandbox) -> None:
    res = await sb.run(
        "import sys, os\nsys.stdout.buffer.write(b'a\\xff\\xfeb\\n'); sys.stdout.flush()\nos.write(2, b'\\xc3(\\n')"
    )
    await asyncio.sleep(0)
    assert res.ok, res
    assert "a\ufffd\ufffdb" in res.stdout
    assert res.to_observation(1000)  # renders without error


async def test_infinite_loop_times_out_and_keeps_state(sb: Sandbox) -> None:
    await sb.run("kept = 'yes'")
    t0 = time.monotonic()
    res = await sb.run("while True:\n    pass", timeout=1)
    assert res.timed_out and not res.restarted and time.monotonic() - t0 < 1 + LIMITS["interrupt_grace_s"]
    assert "Timed out after 1 s; the interpreter was interrupted (state kept)" in res.to_observation(2000)
    assert (await sb.run("kept")).value == "'yes'"


async def test_uninterruptible_code_is_restarted(sb: Sandbox) -> None:
    await sb.run("lost = 1")
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.01)"
    res = await sb.run(code, timeout=1)
    assert res.timed_out and res.restarted and not res.ok
    assert "restarted: variables and imports are lost" in res.to_observation(2000)
    after = await sb.run("lost")
    assert after.error_name == "NameError"
    assert (await sb.run("print('alive')")).stdout == "alive\n"


async def test_output_flood_is_capped(sb: KernelSandbox) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = await sb.run("import sys\nsys.stdout.write('x' * 100_000_000)\nfor i in range(200_000):\n    print(i)")
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert res.ok and res.truncated
    assert len(res.stdout.encode()) <= sb.limits.max_output_bytes
    assert grown_kib < 50 * 1024, f"host process grew by {grown_kib} KiB"
    assert "truncated" in res.to_observation(2000)
    big_value = await sb.run("'y' * 10_000_000")
    assert big_value.truncated and big_value.value is not None and len(big_value.value) <= sb.limits.max_output_bytes


async def test_kernel_killing_itself_is_restarted(sb: Sandbox) -> None:
    await sb.run("gone = 1")
    res = await sb.run("import os\nprint('before', flush=True)\nos.kill(os.getpid(), 9)")
    assert res.restarted and res.error_name == "KernelDied" and not res.timed_out
    assert "restarted: variables and imports are lost" in res.to_observation(2000)
    assert (await sb.run("gone")).error_name == "NameError"
    assert (await sb.run("print('ok')")).stdout == "ok\n"


async def test_kernel_killed_from_host_mid_run(sb: KernelSandbox) -> None:
    task = asyncio.create_task(sb.run("import time\ntime.sleep(30)"))
    await asyncio.sleep(0.5)
    os.kill(_kernel_pid(sb), signal.SIGKILL)
    res = await asyncio.wait_for(task, 15)
    assert res.restarted and res.error_name == "KernelDied"
    assert "killed by signal 9" in (res.error_message or "")
    assert (await sb.run("1")).value == "1"


async def test_memory_bomb_is_refused(sb: KernelSandbox) -> None:
    res = await sb.run("block = bytearray(10 * 1024**3)")
    assert res.error_name == "MemoryError" and not res.restarted
    assert "MemoryError" in res.to_observation(2000)
    assert (await sb.run("print('still here')")).stdout == "still here\n"


async def test_two_sandboxes_share_nothing(backend: type[KernelSandbox]) -> None:
    async with backend(**LIMITS) as a, backend(**LIMITS) as b:
        await a.run("secret_var = 1\nopen('only_in_a.txt', 'w').write('a')")
        res = await b.run("import os\nprint(os.path.exists('only_in_a.txt'))\nsecret_var")
        assert res.stdout == "False\n" and res.error_name == "NameError"


async def test_reset_clears_state_and_files(sb: KernelSandbox) -> None:
    await sb.run("import json\nz = 5\nopen('f.txt', 'w').write('x')\nimport os\nos.mkdir('d')")
    await sb.reset()
    res = await sb.run("import os\nprint(sorted(os.listdir('.')))\nz")
    assert res.stdout == "[]\n" and res.error_name == "NameError"
    assert (await sb.run("'json' in globals()")).value == "False"


async def test_scientific_stack_imports(sb: Sandbox) -> None:
    code = "import numpy, scipy, sympy\nfrom scipy import integrate\n"
    code += "float(integrate.quad(numpy.sin, 0, numpy.pi)[0]), str(sympy.factor(sympy.S('x**2-1')))"
    res = await sb.run(code)
    assert res.ok, res.to_observation(2000)
    assert res.value == "(2.0, '(x - 1)*(x + 1)')"


async def test_close_is_idempotent_and_final(backend: type[KernelSandbox]) -> None:
    sb = backend(**LIMITS)
    await sb.run("1")
    pids = _sandbox_pids(sb)
    await sb.close()
    await sb.close()
    assert not [p for p in pids if _alive(p)]
    with pytest.raises(SandboxError):
        await sb.run("1")


async def test_child_process_does_not_survive_close(backend: type[KernelSandbox]) -> None:
    marker = f"1000.{uuid.uuid4().int % 10**6}"
    sb = backend(**LIMITS)
    res = await sb.run(f"import subprocess\np = subprocess.Popen(['sleep', '{marker}'])\nprint(p.pid)")
    assert res.ok, res
    assert await _wait_until(lambda: _cmdlines_with(marker))
    await sb.close()
    assert await _wait_until(lambda: not _cmdlines_with(marker), 3.0), "a child process outlived close()"


# ----- attacks: backends that claim isolation ----------------------------------------------------------------------
@pytest.fixture
def root_secret() -> Iterator[Path]:
    path = Path("/root") / f"peerstep-probe-{uuid.uuid4().hex}.txt"
    path.write_text("ROOT-SECRET")
    yield path
    path.unlink(missing_ok=True)


@isolated_only
async def test_attack_read_host_secrets(sb: KernelSandbox, tmp_path: Path, root_secret: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TMP-SECRET")
    paths = [str(secret), str(root_secret), "/root", "/etc/shadow", "/proc/1/environ", "/home"]
    code = textwrap.dedent(f"""
        import os
        for p in {paths!r}:
            try:
                print(p, 'READ', os.listdir(p) if os.path.isdir(p) else open(p).read()[:100])
            except Exception as e:
                print(p, 'BLOCKED', type(e).__name__)
    """)
    res = await sb.run(code)
    assert res.ok, res
    assert "SECRET" not in res.stdout and "READ" not in res.stdout.replace("/proc/1/environ READ", ""), res.stdout
    env_line = next(line for line in res.stdout.splitlines() if line.startswith("/proc/1/environ"))
    assert "ROOT" not in env_line and "KEY" not in env_line and "TOKEN" not in env_line
    assert res.stdout.count("BLOCKED") >= len(paths) - 1
    assert secret.read_text() == "TMP-SECRET" and root_secret.read_text() == "ROOT-SECRET"


@isolated_only
async def test_attack_write_outside_workdir(sb: KernelSandbox) -> None:
    name = f"peerstep-probe-{uuid.uuid4().hex}"
    targets = [f"/usr/{name}", f"/tmp/{name}", f"/etc/{name}", f"/opt/python/{name}", f"/{name}", f"/root/{name}"]
    code = textwrap.dedent(f"""
        for p in {targets!r}:
            try:
                open(p, 'w').write('pwned'); print(p, 'WROTE')
            except Exception as e:
                print(p, 'BLOCKED', type(e).__name__)
    """)
    res = await sb.run(code)
    assert res.ok, res
    for target in targets:
        assert not Path(target).exists(), f"{target} appeared on the host"
    assert not list(Path("/tmp").glob(f"*{name}*"))
    # the sandbox's own /tmp is private and writable; every other target must be refused inside
    assert res.stdout.count("BLOCKED") == len(targets) - 1 and f"/tmp/{name} WROTE" in res.stdout
    wrote = await sb.run("open('inside.txt', 'w').write('ok')")
    assert wrote.ok and (sb.workdir / "inside.txt").read_text() == "ok"


@isolated_only
async def test_attack_network_to_host_loopback(sb: KernelSandbox) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    server.settimeout(0.2)
    accepted: list[object] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, addr = server.accept()
            except OSError:
                continue
            accepted.append(addr)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        code = textwrap.dedent(f"""
            import socket
            for host, port in [('127.0.0.1', {port}), ('1.1.1.1', 53), ('example.com', 80)]:
                try:
                    socket.create_connection((host, port), timeout=2).close(); print(host, 'CONNECTED')
                except Exception as e:
                    print(host, 'BLOCKED', type(e).__name__, e)
        """)
        res = await sb.run(code)
    finally:
        stop.set()
        thread.join()
        server.close()
    assert res.ok, res
    assert "CONNECTED" not in res.stdout and res.stdout.count("BLOCKED") == 3, res.stdout
    assert accepted == [], "the host server received a connection from the sandbox"


@isolated_only
async def test_attack_fork_bomb(sb: KernelSandbox) -> None:
    limit = sb.limits.processes
    code = textwrap.dedent("""
        import os
        if os.fork() == 0:
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
        print('bomb started')
    """)
    res = await sb.run(code)
    assert res.ok and "bomb started" in res.stdout
    await asyncio.sleep(1.0)
    count = len(_sandbox_pids(sb))
    assert count <= limit + 3, f"{count} processes: RLIMIT_NPROC did not hold"
    assert os.system("true") == 0  # the host can still start processes
    listing = await sb.run("import os\nlen([p for p in os.listdir('/proc') if p.isdigit()])", timeout=30)
    assert listing.ok and int(listing.value or 0) <= limit + 3
    pids = _sandbox_pids(sb)
    await sb.close()
    assert await _wait_until(lambda: not [p for p in pids if _alive(p)]), "fork-bomb processes outlived close()"


@isolated_only
async def test_attack_memory_bomb_grows_slowly(sb: KernelSandbox) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = await sb.run("chunks = []\nwhile True:\n    chunks.append(bytearray(64 * 1024**2))", timeout=30)
    assert res.error_name == "MemoryError" and not res.restarted, res
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024
    assert (await sb.run("del chunks\nimport gc; gc.collect()\n'freed'")).value == "'freed'"


@isolated_only
async def test_attack_escaped_daemon_does_not_survive_close(sb: KernelSandbox) -> None:
    marker = f"1000.{uuid.uuid4().int % 10**6}"
    code = textwrap.dedent(f"""
        import os, subprocess
        subprocess.Popen(['sleep', '{marker}'], start_new_session=True)
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv('/usr/bin/sleep', ['sleep', '{marker}'])
            os._exit(0)
        print(os.getuid(), sorted(int(p) for p in os.listdir('/proc') if p.isdigit())[:3])
    """)
    res = await sb.run(code)
    assert res.ok, res
    uid, pids = res.stdout.split(" ", 1)
    assert int(uid) not in (0, os.getuid()) and pids.startswith("[1, 2"), res.stdout  # unprivileged, own PID ns
    assert await _wait_until(lambda: len(_cmdlines_with(marker)) == 2)
    await sb.close()
    assert await _wait_until(lambda: not _cmdlines_with(marker), 3.0), "a daemonized process outlived close()"


@isolated_only
async def test_attack_host_processes_invisible(sb: KernelSandbox) -> None:
    res = await sb.run(f"import os\nprint(os.path.exists('/proc/{os.getpid()}'), len(os.listdir('/proc')) < 80)")
    assert res.stdout == "False True\n", res.stdout
    res = await sb.run(f"import os\nos.kill({os.getpid()}, 0)")
    assert res.error_name == "ProcessLookupError"
