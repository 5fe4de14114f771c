"""A conformance suite that any ``Sandbox`` backend can run: behaviour, timeouts, and attacks on its limits.

Like inspect_ai's sandbox self-check, it is typed on the interface only (``start``/``run``/``reset``/``close``):
every check makes its own sandboxes with your factory and judges what the code inside could do, measured from
inside (how much memory it held, how much it wrote, how many processes it got), so it runs on a remote backend as
well as a local one. Host-side checks (the host's files, network, processes) belong to the backend's own tests.

With pytest::

    from peerstep.testing.sandbox import Claims, SandboxConformance

    class TestMySandbox(SandboxConformance):
        claims = Claims(isolated=True, whole_sandbox_limits=True)

        def make_sandbox(self) -> Sandbox:
            return MySandbox(timeout_s=10, memory_bytes=1 << 30, processes=64, disk_bytes=256 << 20)

Without pytest: ``failures = asyncio.run(run_checks(factory, Claims(...)))`` (name -> message, empty if all pass).

What a check needs from the backend is in ``Claims``: ``isolated`` (attacks run at all), ``whole_sandbox_limits``
(memory, processes and disk hold for the sandbox as a whole, not per process). The limits themselves are read from
the sandbox's ``limits`` (``SandboxLimits``) when it has them, else from ``Claims``.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import textwrap
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from peerstep.tools.sandbox import ExecResult, Sandbox, SandboxError, SandboxLimits

MIB = 1 << 20
Factory = Callable[[], Sandbox]


@dataclass(frozen=True)
class Claims:
    """What the backend promises; checks that need more than it claims are not run for it."""

    isolated: bool = True
    whole_sandbox_limits: bool = True
    memory_bytes: int | None = None  # default: the sandbox's limits.memory_bytes
    processes: int | None = None  # default: the sandbox's limits.processes
    disk_bytes: int | None = None  # default: the sandbox's limits.disk_bytes
    cpu_cores: float | None = None  # default: the sandbox's limits.cpu_cores


@dataclass(frozen=True)
class _Limits:
    memory_bytes: int
    processes: int
    disk_bytes: int


def _limits_of(sb: Sandbox, claims: Claims) -> _Limits:
    lim = getattr(sb, "limits", None)
    lim = lim if isinstance(lim, SandboxLimits) else SandboxLimits.model_validate({})
    return _Limits(
        memory_bytes=claims.memory_bytes or lim.memory_bytes,
        processes=claims.processes or lim.processes,
        disk_bytes=claims.disk_bytes or lim.disk_bytes,
    )


async def _run(sb: Sandbox, code: str, timeout: float | None = None) -> ExecResult:
    return await sb.run(textwrap.dedent(code), timeout=timeout)


def _last_dict(res: ExecResult) -> dict[str, Any]:
    """The last line of stdout that is a Python dict literal (what an attack reports)."""
    for line in reversed(res.stdout.splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(ValueError, SyntaxError):
                value = ast.literal_eval(line)
                if isinstance(value, dict):
                    return value
    raise AssertionError(f"the attack reported nothing: {res.to_observation(3000)}")


# ----- behaviour: every backend ------------------------------------------------------------------------------------
async def check_state_persists(factory: Factory, claims: Claims) -> None:
    """Variables survive between runs; stdout and the last expression's value come back."""
    async with factory() as sb:
        assert (await sb.run("x = 20")).ok
        res = await sb.run("print('hello'); x + 22")
        assert res.ok and res.stdout == "hello\n" and res.value == "42", res


async def check_errors_are_results(factory: Factory, claims: Claims) -> None:
    """Syntax errors and exceptions are results (with a traceback), and the state is kept."""
    async with factory() as sb:
        await sb.run("y = 3")
        res = await sb.run("def f(:\n  pass")
        assert res.error_name == "SyntaxError" and not res.restarted, res
        res = await sb.run("def g():\n    raise ValueError('bad input')\ng()")
        assert res.error_name == "ValueError" and res.error_message == "bad input", res
        assert "[error] ValueError: bad input" in res.to_observation(4000)
        assert (await sb.run("y")).value == "3"


async def check_timeout_keeps_state(factory: Factory, claims: Claims) -> None:
    """An infinite loop times out, the interpreter is interrupted and keeps its variables."""
    async with factory() as sb:
        await sb.run("kept = 'yes'")
        started = time.monotonic()
        res = await sb.run("while True:\n    pass", timeout=1)
        assert res.timed_out and not res.restarted, res
        assert time.monotonic() - started < 10
        assert (await sb.run("kept")).value == "'yes'"


async def check_timeout_ends_what_the_cell_started(factory: Factory, claims: Claims) -> None:
    """After a timeout nothing the cell started still runs: no child process (even one in a new session), no
    thread. Each leaves a heartbeat file; the heartbeats must stop."""
    async with factory() as sb:
        code = """
            import os, subprocess, sys, threading, time
            beat = ("import os, time\\nwhile True:\\n    open(os.sys.argv[1], 'w').write(str(time.time()))\\n"
                    "    time.sleep(0.05)")
            subprocess.Popen([sys.executable, '-c', beat, 'beat_child'])
            subprocess.Popen([sys.executable, '-c', beat, 'beat_daemon'], start_new_session=True)
            def spin():
                while True:
                    open('beat_thread', 'w').write(str(time.time()))
                    time.sleep(0.05)
            threading.Thread(target=spin, daemon=True).start()
            while not all(os.path.exists(f) for f in ('beat_child', 'beat_daemon', 'beat_thread')):
                time.sleep(0.05)
            print('all beating', flush=True)
            while True:
                pass
        """
        res = await _run(sb, code, timeout=4)
        assert res.timed_out and "all beating" in res.stdout, res
        probe = """
            import os, time
            def beats():
                out = {}
                for f in ('beat_child', 'beat_daemon', 'beat_thread'):
                    try:
                        out[f] = os.stat(f).st_mtime_ns
                    except FileNotFoundError:
                        out[f] = None
                return out
            first = beats(); time.sleep(1.0); second = beats()
            print({f: first[f] != second[f] for f in first})
        """
        still = _last_dict(await _run(sb, probe))
        assert not any(still.values()), f"still running after the timeout: {[k for k, v in still.items() if v]}"


async def check_reset_clears_state_and_files(factory: Factory, claims: Claims) -> None:
    """``reset`` gives a fresh interpreter and an empty working directory."""
    async with factory() as sb:
        await sb.run("z = 5\nopen('f.txt', 'w').write('x')")
        await sb.reset()
        res = await sb.run("import os\nprint(sorted(os.listdir('.')))\nz")
        assert res.stdout == "[]\n" and res.error_name == "NameError", res


async def check_sandboxes_share_nothing(factory: Factory, claims: Claims) -> None:
    """Two sandboxes see neither each other's variables nor files."""
    async with factory() as a, factory() as b:
        await a.run("secret_var = 1\nopen('only_in_a.txt', 'w').write('a')")
        res = await b.run("import os\nprint(os.path.exists('only_in_a.txt'))\nsecret_var")
        assert res.stdout == "False\n" and res.error_name == "NameError", res


async def check_close_is_final(factory: Factory, claims: Claims) -> None:
    """``close`` is idempotent; a closed sandbox refuses to run code with ``SandboxError``."""
    sb = factory()
    await sb.run("1")
    await sb.close()
    await sb.close()
    try:
        await sb.run("1")
    except SandboxError:
        return
    raise AssertionError("a closed sandbox ran code")


# ----- attacks on the limits: backends that claim isolation -------------------------------------------------------
async def check_no_nested_namespaces(factory: Factory, claims: Claims) -> None:
    """The code cannot make namespaces of its own (``unshare -Urm`` then mounting a tmpfs fills host memory)."""
    attack = r"""
        import ctypes, os, sys
        libc = ctypes.CDLL(None, use_errno=True)
        name, flags = sys.argv[1], int(sys.argv[2])
        if name == 'clone3':  # struct clone_args {flags, pidfd, child_tid, parent_tid, exit_signal, ...}: 88 bytes
            args = (ctypes.c_uint64 * 11)(flags, 0, 0, 0, 17)
            pid = libc.syscall(435, ctypes.byref(args), 88)
            if pid == 0:
                os._exit(0)
            if pid > 0:
                os.waitpid(pid, 0)
            sys.exit(0 if pid > 0 else 1)
        sys.exit(0 if libc.unshare(flags) == 0 else 1)
    """
    code = f"""
        import subprocess, sys
        attack = {textwrap.dedent(attack)!r}
        made = {{}}
        for name, flags in [('user', 0x10000000), ('user+mount', 0x10020000), ('net', 0x40000000),
                            ('pid', 0x20000000), ('mount', 0x20000), ('clone3', 0x10000000)]:
            made[name] = subprocess.run([sys.executable, '-c', attack, name, str(flags)]).returncode == 0
        try:
            out = subprocess.run(['unshare', '-Urm', 'sh', '-c', 'mount -t tmpfs none /tmp && echo MOUNTED'],
                                 capture_output=True, text=True, timeout=20).stdout
        except FileNotFoundError:
            out = ''
        made['unshare -Urm + mount tmpfs'] = 'MOUNTED' in out
        print(made)
    """
    async with factory() as sb:
        made = _last_dict(await _run(sb, code, timeout=60))
    assert not any(made.values()), f"the sandboxed code created namespaces: {[k for k, v in made.items() if v]}"


# A child that allocates and touches ``step`` bytes at a time up to a target, reporting its running total; it makes
# itself the OOM killer's first choice so that the parent (the interpreter) survives to report.
_HOG = r"""
import os, sys, time
with open('/proc/self/oom_score_adj', 'w') as f:
    f.write('1000')
kind, target, step = sys.argv[1], int(sys.argv[2]), 32 << 20
held, got = [], 0
chunk = b'\x01' * step
while got < target:
    try:
        if kind == 'heap':
            held.append(bytearray(chunk))
        else:  # a new memfd every 128 MiB: one file is capped by RLIMIT_FSIZE, many are not
            if got % (128 << 20) == 0:
                held.append(os.memfd_create('hog'))
            os.write(held[-1], chunk)
    except (MemoryError, OSError) as e:
        print('STOP', type(e).__name__, flush=True)
        break
    got += step
    print(got, flush=True)
print('HELD', flush=True)
time.sleep(120)
"""

_WATCH = r"""
import os, selectors, subprocess, sys, time
def watch(jobs, seconds):
    # start the children, follow what each reports holding; the most held at one time by live ones
    procs = [subprocess.Popen([sys.executable, '-c', HOG, kind, str(target)], stdout=subprocess.PIPE, bufsize=0)
             for kind, target in jobs]
    sel = selectors.DefaultSelector()
    for i, p in enumerate(procs):
        sel.register(p.stdout, selectors.EVENT_READ, i)
    held, done, peak, stops, partial = [0] * len(procs), set(), 0, [], [b''] * len(procs)
    end = time.monotonic() + seconds
    while time.monotonic() < end and len(done) < len(procs):
        for key, _ in sel.select(0.2):
            i, data = key.data, os.read(key.fileobj.fileno(), 65536)
            if not data:
                sel.unregister(key.fileobj); done.add(i); held[i] = 0
                continue
            *lines, partial[i] = (partial[i] + data).split(b'\n')
            for line in lines:
                if line.startswith(b'HELD'):
                    done.add(i)
                elif line.startswith(b'STOP'):
                    stops.append(line.split()[1].decode())
                elif line:
                    held[i] = int(line)
            for j, p in enumerate(procs):
                if p.poll() is not None:
                    held[j] = 0; done.add(j)
            peak = max(peak, sum(held))
    killed = sum(1 for p in procs if p.poll() is not None and p.returncode < 0)
    for p in procs:
        p.kill(); p.wait()
    return {'peak': peak, 'oom_killed': killed, 'refused': stops}
"""


_DISK_FILL = """
import errno, os
total, error, i = 0, None, 0
chunk = b'\\x01' * (16 << 20)
while total < __N__ and error is None:
    path = ('/tmp' if i % 2 else '.') + f'/fill{i}'
    i += 1
    try:
        with open(path, 'wb') as f:
            for _ in range(4):
                f.write(chunk); f.flush(); total += len(chunk)
    except OSError as e:
        error = errno.errorcode.get(e.errno, str(e.errno))
print({'total': total, 'error': error})
"""

_SPAWN = """
import os, subprocess, threading, time
threading.stack_size(256 << 10)  # so that the address-space limit is not what stops the threads
procs, threads, ev = [], [], threading.Event()
for _ in range(__N__):
    try:
        procs.append(subprocess.Popen(['sleep', '300']))
        t = threading.Thread(target=ev.wait); t.start(); threads.append(t)
    except (OSError, RuntimeError):
        break
tasks = sum(len(os.listdir(f'/proc/{p}/task')) for p in os.listdir('/proc') if p.isdigit()
            and os.path.exists(f'/proc/{p}/task'))
print({'processes': len(procs), 'threads': len(threads), 'tasks': tasks})
"""


async def _hog(sb: Sandbox, jobs: list[tuple[str, int]], seconds: float = 60) -> dict[str, Any]:
    code = f"HOG = {_HOG!r}\n{_WATCH}\nprint(watch({jobs!r}, {seconds}))\n"
    res = await sb.run(code, timeout=seconds + 30)
    assert not res.restarted, f"the interpreter itself was killed: {res.to_observation(3000)}"
    return _last_dict(res)


async def check_memory_of_all_processes_is_capped(factory: Factory, claims: Claims) -> None:
    """Three processes, each under the per-process cap, cannot together hold more than the sandbox's memory."""
    async with factory() as sb:
        limit = _limits_of(sb, claims).memory_bytes
        report = await _hog(sb, [("heap", int(limit * 0.6))] * 3)
        # what live children held at one time; the interpreter itself needs some too, so this stays below limit
        assert report["peak"] <= limit, f"the processes of one sandbox held {report['peak']} bytes > {limit}"
        assert (await sb.run("print('alive')")).stdout == "alive\n"


async def check_shared_memory_is_capped(factory: Factory, claims: Claims) -> None:
    """Memory that belongs to no process's address space (memfd / tmpfs pages) still counts against the sandbox,
    and /dev/shm is no way around it."""
    async with factory() as sb:
        limit = _limits_of(sb, claims).memory_bytes
        report = await _hog(sb, [("memfd", int(limit * 1.5))])
        assert report["peak"] <= limit, f"one sandbox put {report['peak']} bytes in shared memory > {limit}"
        shm = await _run(
            sb,
            """
            import os
            total = 0
            try:
                for i in range(__N__):
                    with open(f'/dev/shm/fill{i}', 'wb') as f:
                        for _ in range(4):
                            f.write(b'\\x01' * (16 << 20)); f.flush(); total += 16 << 20
                print({'wrote': 'all'})
            except OSError as e:
                print({'wrote': total})
        """.replace("__N__", str(int(limit * 1.5) // (64 * MIB) + 1)),
            timeout=60,
        )
        wrote = _last_dict(shm)["wrote"]
        assert wrote != "all" and wrote <= limit, f"/dev/shm took {wrote} bytes"


async def check_disk_is_capped(factory: Factory, claims: Claims) -> None:
    """/work and /tmp together cannot take more than the disk quota; the code gets a clear "no space" error."""
    async with factory() as sb:
        quota = _limits_of(sb, claims).disk_bytes
        code = _DISK_FILL.replace("__N__", str(quota + 256 * MIB))
        report = _last_dict(await _run(sb, code, timeout=120))
        assert report["total"] <= quota, f"wrote {report['total']} bytes into /work + /tmp > quota {quota}"
        assert report["error"] in ("ENOSPC", "EDQUOT"), report
        cleaned = await _run(sb, "import glob, os\nfor p in glob.glob('fill*') + glob.glob('/tmp/fill*'): os.remove(p)")
        assert cleaned.ok, cleaned
        assert (await _run(sb, "open('after', 'w').write('ok')")).ok


async def check_process_limit_is_per_sandbox(factory: Factory, claims: Claims) -> None:
    """Processes and threads together stay under the sandbox's limit (a fork bomb is bounded), and the whole
    budget is the sandbox's own: half of another sandbox's budget in use takes nothing from it."""
    async with factory() as other, factory() as sb:
        limit = _limits_of(sb, claims).processes
        half = _last_dict(await _run(other, _SPAWN.replace("__N__", str(limit // 4)), timeout=120))
        assert half["processes"] == limit // 4, half
        report = _last_dict(await _run(sb, _SPAWN.replace("__N__", str(limit)), timeout=120))
        assert report["tasks"] <= limit, f"{report['tasks']} tasks in one sandbox > limit {limit}"
        assert report["tasks"] >= limit * 3 // 4, f"only {report['tasks']} of {limit} tasks: the budget is shared"


async def check_cpu_is_capped(factory: Factory, claims: Claims) -> None:
    """Several busy processes together get no more CPU time than the sandbox's share (``cpu_cores``)."""
    async with factory() as sb:
        cores = claims.cpu_cores or float(getattr(getattr(sb, "limits", None), "cpu_cores", None) or 1.0)
        code = """
            import os, resource, subprocess, sys, time
            n = (os.cpu_count() or 1) + 1
            started = time.monotonic()
            burners = [subprocess.Popen([sys.executable, '-c', 'import time\\nend = time.monotonic() + 3\\n'
                                         'while time.monotonic() < end: pass']) for _ in range(n)]
            for p in burners:
                p.wait()
            wall = time.monotonic() - started
            used = resource.getrusage(resource.RUSAGE_CHILDREN)
            print({'burners': n, 'cpu_per_wall_second': (used.ru_utime + used.ru_stime) / wall})
        """
        report = _last_dict(await _run(sb, code, timeout=60))
        rate = report["cpu_per_wall_second"]
        assert rate <= cores * 1.15 + 0.05, f"{report['burners']} processes used {rate:.2f} cores > {cores:g}"


async def check_no_starvation_across_sandboxes(factory: Factory, claims: Claims) -> None:
    """A sandbox holding all the processes it may have does not stop another from starting and forking."""
    async with factory() as hog:
        limit = _limits_of(hog, claims).processes
        held = await _run(
            hog,
            """
            import subprocess
            kids = []
            for _ in range(__N__):
                try:
                    kids.append(subprocess.Popen(['sleep', '300']))
                except OSError:
                    break
            print({'held': len(kids)})
        """.replace("__N__", str(limit)),
            timeout=120,
        )
        assert _last_dict(held)["held"] >= limit // 2, held
        async with factory() as other:
            res = await _run(
                other,
                """
                import subprocess, threading
                ok = [subprocess.run(['true']).returncode == 0 for _ in range(8)]
                ts = [threading.Thread(target=lambda: None) for _ in range(8)]
                for t in ts: t.start()
                for t in ts: t.join()
                print({'forks': sum(ok)})
            """,
            )
            assert _last_dict(res)["forks"] == 8, res


async def measure_hostile(sb: Sandbox, claims: Claims | None = None) -> dict[str, int]:
    """What hostile code reached in a started sandbox, measured from inside (for benchmarks and reports).

    ``memory_bytes``: most held at once by three processes that each try 0.6 x the memory limit;
    ``shared_memory_bytes``: most held in memfds (no address space) trying 1.5 x the limit;
    ``disk_bytes``: written into /work + /tmp trying the quota + 256 MiB; ``tasks``: processes + threads at once
    trying twice the process limit. Leaves the sandbox usable (it may restart its interpreter).
    """
    limits = _limits_of(sb, claims or Claims())
    heap = await _hog(sb, [("heap", int(limits.memory_bytes * 0.6))] * 3)
    shared = await _hog(sb, [("memfd", int(limits.memory_bytes * 1.5))])
    disk = _last_dict(await _run(sb, _DISK_FILL.replace("__N__", str(limits.disk_bytes + 256 * MIB)), timeout=300))
    await _run(sb, "import glob, os\nfor p in glob.glob('fill*') + glob.glob('/tmp/fill*'): os.remove(p)")
    tasks = _last_dict(await _run(sb, _SPAWN.replace("__N__", str(2 * limits.processes)), timeout=300))
    return {
        "memory_bytes": heap["peak"],
        "shared_memory_bytes": shared["peak"],
        "disk_bytes": disk["total"],
        "tasks": tasks["tasks"],
    }


Check = Callable[[Factory, Claims], Awaitable[None]]
BEHAVIOUR: dict[str, Check] = {
    "state_persists": check_state_persists,
    "errors_are_results": check_errors_are_results,
    "timeout_keeps_state": check_timeout_keeps_state,
    "timeout_ends_what_the_cell_started": check_timeout_ends_what_the_cell_started,
    "reset_clears_state_and_files": check_reset_clears_state_and_files,
    "sandboxes_share_nothing": check_sandboxes_share_nothing,
    "close_is_final": check_close_is_final,
}
ATTACKS: dict[str, Check] = {  # need Claims.isolated
    "no_nested_namespaces": check_no_nested_namespaces,
    "no_starvation_across_sandboxes": check_no_starvation_across_sandboxes,
}
WHOLE_SANDBOX: dict[str, Check] = {  # need Claims.isolated and Claims.whole_sandbox_limits
    "memory_of_all_processes_is_capped": check_memory_of_all_processes_is_capped,
    "shared_memory_is_capped": check_shared_memory_is_capped,
    "disk_is_capped": check_disk_is_capped,
    "process_limit_is_per_sandbox": check_process_limit_is_per_sandbox,
    "cpu_is_capped": check_cpu_is_capped,
}
CHECKS: dict[str, Check] = {**BEHAVIOUR, **ATTACKS, **WHOLE_SANDBOX}


def checks_for(claims: Claims) -> list[str]:
    """The names of the checks that apply to a backend with these claims."""
    names = list(BEHAVIOUR)
    if claims.isolated:
        names += list(ATTACKS)
        if claims.whole_sandbox_limits:
            names += list(WHOLE_SANDBOX)
    return names


async def run_check(name: str, factory: Factory, claims: Claims) -> None:
    """Run one check; raises ``AssertionError`` (or the sandbox's error) when the backend fails it."""
    await CHECKS[name](factory, claims)


async def run_checks(factory: Factory, claims: Claims) -> dict[str, str]:
    """Run every applicable check in turn; returns the failures (name -> message), empty when all pass."""
    failures: dict[str, str] = {}
    for name in checks_for(claims):
        try:
            await run_check(name, factory, claims)
        except Exception as err:  # a conformance report lists every failure, it does not stop at the first
            failures[name] = f"{type(err).__name__}: {err}"
    return failures


class SandboxConformance:
    """Subclass as ``TestSomething`` in a pytest module and define ``make_sandbox`` (and ``claims``).

    Every check becomes one test method; a check the backend does not claim is skipped with a reason. The test
    methods are synchronous (``asyncio.run``), so no pytest plugin is needed.
    """

    claims: ClassVar[Claims] = Claims()

    def make_sandbox(self) -> Sandbox:
        raise NotImplementedError("return a new, unstarted Sandbox")

    def _check(self, name: str) -> None:
        if name not in checks_for(self.claims):
            import pytest

            pytest.skip(f"{name}: not claimed by this backend ({self.claims})")
        asyncio.run(run_check(name, self.make_sandbox, self.claims))


def _method(name: str) -> Callable[[SandboxConformance], None]:
    def test(self: SandboxConformance) -> None:
        self._check(name)

    test.__name__ = f"test_{name}"
    test.__doc__ = CHECKS[name].__doc__
    return test


for _name in CHECKS:
    setattr(SandboxConformance, f"test_{_name}", _method(_name))
del _name
