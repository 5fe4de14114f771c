"""Engine command lines, and the managed-server lifecycle with a real child process tree.

The lifecycle tests run a tiny fake OpenAI server (a Python script written to tmp_path) as the
engine. It spawns a grandchild that sleeps, so the tests can check that the whole process group
is stopped, and writes ``<leader pid> <grandchild pid>`` to a file so the tests know whom to look for.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from peerstep._errors import EngineError
from peerstep.engines import (
    EngineConfig,
    LlamaCppEngine,
    ManagedEngine,
    VllmEngine,
    default_vllm_python,
    make_engine,
    served_models,
)

REPO = Path(__file__).resolve().parents[1]

FAKE_SERVER = r'''
import argparse, json, os, subprocess, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--name", required=True)
parser.add_argument("--mode", default="ok")
parser.add_argument("--pidfile", required=True)
args = parser.parse_args()

grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
with open(args.pidfile + ".tmp", "w") as fh:
    fh.write(f"{os.getpid()} {grandchild.pid}")
os.replace(args.pidfile + ".tmp", args.pidfile)

if args.mode == "fail":
    print(f"fatal: cannot load weights for {args.name}", file=sys.stderr, flush=True)
    sys.exit(3)
if args.mode == "hang":
    time.sleep(300)
if args.mode == "impostor":
    args.name = "impostor-model"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/v1/models":
            self.send_error(404)
            return
        body = json.dumps({"object": "list", "data": [{"id": args.name, "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *a):
        pass


print(f"fake server for {args.name} on port {args.port}", flush=True)
ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
'''


class FakeEngine(ManagedEngine):
    """Runs the fake server script; ``mode`` is ok | fail (exits at once) | hang (never answers) | impostor."""

    name = "fake"
    _instances = itertools.count()

    def __init__(self, config: EngineConfig, state_dir: Path, script: Path, mode: str = "ok") -> None:
        self.script = script
        self.mode = mode
        self.instance = next(self._instances)
        super().__init__(config, state_dir)

    @property
    def pidfile(self) -> Path:
        return self.state_dir / f"pids-{self.slug}-{self.mode}-{os.getpid()}-{self.instance}.txt"

    def command(self, port: int) -> list[str]:
        return [sys.executable, str(self.script), "--port", str(port), "--name", self.served_name,
                "--mode", self.mode, "--pidfile", str(self.pidfile)]


# --- helpers ------------------------------------------------------------------------------------


def option(cmd: list[str], flag: str) -> str:
    """The value that follows ``flag`` in a command line."""
    assert cmd.count(flag) == 1, f"{flag} appears {cmd.count(flag)} times in {cmd}"
    return cmd[cmd.index(flag) + 1]


def gone(pid: int) -> bool:
    """True if ``pid`` has exited (a zombie counts: PID 1 here may not reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def wait_gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def read_pids(pidfile: Path, within: float = 5.0) -> tuple[int, int]:
    deadline = time.monotonic() + within
    while not pidfile.exists():
        assert time.monotonic() < deadline, f"{pidfile} was never written"
        time.sleep(0.05)
    leader, grandchild = pidfile.read_text().split()
    return int(leader), int(grandchild)


def kill_quietly(pid: int) -> None:
    if not gone(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "fake_server.py"
    path.write_text(FAKE_SERVER)
    return path


@pytest.fixture
def engines(tmp_path: Path, script: Path) -> Iterator[list[FakeEngine]]:
    """Engines a test creates; stopped, and their recorded processes killed, afterwards."""
    made: list[FakeEngine] = []
    yield made
    for engine in made:
        engine.stop(grace=1)
    for pidfile in tmp_path.glob("pids-*.txt"):
        for pid in pidfile.read_text().split():
            kill_quietly(int(pid))


def fake(engines: list[FakeEngine], tmp_path: Path, script: Path, mode: str = "ok", **config: object) -> FakeEngine:
    settings: dict[str, object] = {"model": "fake-model", "start_timeout": 15.0, **config}
    engine = FakeEngine(EngineConfig.model_validate(settings), state_dir=tmp_path, script=script, mode=mode)
    engines.append(engine)
    return engine


# --- llama.cpp ----------------------------------------------------------------------------------


def test_llamacpp_command(tmp_path: Path) -> None:
    gguf = tmp_path / "tiny-q4.gguf"
    config = EngineConfig(model=str(gguf), served_name="tiny", threads=3, context_length=4096, python="/some/python")
    cmd = LlamaCppEngine(config, state_dir=tmp_path).command(18123)
    assert cmd[:3] == ["/some/python", "-m", "peerstep.engines._llamacpp_server"]
    assert option(cmd, "--model") == str(gguf)
    assert option(cmd, "--model_alias") == "tiny"
    assert option(cmd, "--host") == "127.0.0.1"
    assert option(cmd, "--port") == "18123"
    assert option(cmd, "--n_ctx") == "4096"
    assert option(cmd, "--n_threads") == "3"
    assert option(cmd, "--n_threads_batch") == "3"
    # the server's default cuts off a running stream when another request arrives (issue 10, item 1)
    assert option(cmd, "--interrupt_requests") == "False"
    assert not any(part.startswith("--chat_format") for part in cmd)


def test_llamacpp_defaults_and_extra_args(tmp_path: Path) -> None:
    config = EngineConfig(model=str(tmp_path / "qwen-small.gguf"), extra_args=["--n_batch", "256"])
    engine = LlamaCppEngine(config, state_dir=tmp_path)
    cmd = engine.command(9000)
    assert cmd[0] == sys.executable
    assert engine.served_name == "qwen-small"  # the file name without .gguf
    assert option(cmd, "--model_alias") == "qwen-small"
    threads = str(os.cpu_count() or 1)
    assert option(cmd, "--n_threads") == threads
    assert option(cmd, "--n_threads_batch") == threads
    assert cmd[-2:] == ["--n_batch", "256"]


def test_llamacpp_missing_model_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    engine = LlamaCppEngine(EngineConfig(model=str(missing), python="/some/python"), state_dir=tmp_path)
    with pytest.raises(EngineError, match="does not exist") as info:
        engine.start(reuse=False)
    assert str(missing) in str(info.value)
    assert engine.process is None


# --- vLLM ---------------------------------------------------------------------------------------


def test_vllm_cpu_command_and_environment(tmp_path: Path) -> None:
    config = EngineConfig(model="org/some-model", device="cpu", threads=4, kv_cache_gib=6, context_length=2048,
                          parallel=3, python="/some/python")
    engine = VllmEngine(config, state_dir=tmp_path)
    cmd = engine.command(8100)
    assert cmd[:3] == ["/some/python", "-m", "vllm.entrypoints.openai.api_server"]
    assert option(cmd, "--model") == "org/some-model"
    assert option(cmd, "--served-model-name") == "some-model"
    assert option(cmd, "--port") == "8100"
    assert option(cmd, "--max-model-len") == "2048"
    assert option(cmd, "--max-num-seqs") == "3"
    assert option(cmd, "--dtype") == "bfloat16"
    assert "--enforce-eager" in cmd  # on CPU compiling costs minutes at every start for ~5% decode speed
    assert "--tensor-parallel-size" not in cmd
    assert "--gpu-memory-utilization" not in cmd
    env = engine.environment()
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "0-3"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "6"
    assert env["HF_HUB_OFFLINE"] == "1"


def test_vllm_gpu_command_and_environment(tmp_path: Path) -> None:
    config = EngineConfig(model="org/some-model", served_name="served", device="cuda", tensor_parallel_size=2,
                          gpu_memory_utilization=0.8, python="/some/python")
    engine = VllmEngine(config, state_dir=tmp_path)
    cmd = engine.command(8200)
    assert option(cmd, "--served-model-name") == "served"
    assert option(cmd, "--tensor-parallel-size") == "2"
    assert option(cmd, "--gpu-memory-utilization") == "0.8"
    assert "--enable-auto-tool-choice" in cmd
    assert option(cmd, "--tool-call-parser") == "hermes"
    assert "--dtype" not in cmd
    assert "--enforce-eager" not in cmd
    env = engine.environment()
    assert not any(key.startswith("VLLM_CPU_") for key in env)
    assert env["VLLM_NO_USAGE_STATS"] == "1"


def test_vllm_optional_flags(tmp_path: Path) -> None:
    config = EngineConfig(model="m", device="cuda", tool_call_parser=None, enforce_eager=True,
                          extra_args=["--seed", "7"], python="/some/python")
    cmd = VllmEngine(config, state_dir=tmp_path).command(8300)
    assert "--enable-auto-tool-choice" not in cmd
    assert "--tool-call-parser" not in cmd
    assert "--enforce-eager" in cmd
    assert cmd[-2:] == ["--seed", "7"]
    compiled = EngineConfig(model="m", device="cpu", enforce_eager=False, python="/some/python")
    assert "--enforce-eager" not in VllmEngine(compiled, state_dir=tmp_path).command(8300)


def test_vllm_python_missing_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEERSTEP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PEERSTEP_VLLM_PYTHON", str(tmp_path / "no-such-venv" / "bin" / "python"))
    engine = VllmEngine(EngineConfig(model="org/some-model", device="cpu"), state_dir=tmp_path)
    with pytest.raises(EngineError) as prepared:
        engine.prepare()
    with pytest.raises(EngineError) as started:
        engine.start()
    for info in (prepared, started):
        message = str(info.value)
        assert str(tmp_path / "no-such-venv" / "bin" / "python") in message
        assert "does not exist" in message
        assert "scripts/install_vllm_cpu.sh" in message
    assert engine.process is None


def test_vllm_not_installed_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEERSTEP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PEERSTEP_VLLM_PYTHON", raising=False)
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes importlib.util.find_spec("vllm") return None
    assert default_vllm_python() is None
    engine = VllmEngine(EngineConfig(model="org/some-model", device="cpu"), state_dir=tmp_path)
    with pytest.raises(EngineError) as info:
        engine.start()
    message = str(info.value)
    assert "vLLM is not installed" in message
    assert "pip install 'peerstep[vllm]'" in message
    assert "scripts/install_vllm_cpu.sh" in message
    assert "PEERSTEP_VLLM_PYTHON" in message


def test_vllm_python_found_in_the_cache_venv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEERSTEP_HOME", str(tmp_path))
    monkeypatch.delenv("PEERSTEP_VLLM_PYTHON", raising=False)
    python = tmp_path / "vllm-venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("")
    assert default_vllm_python() == str(python)
    monkeypatch.setenv("PEERSTEP_VLLM_PYTHON", "/opt/elsewhere/python")
    assert default_vllm_python() == "/opt/elsewhere/python"


def test_make_engine(tmp_path: Path) -> None:
    assert isinstance(make_engine("vllm", EngineConfig(model="m")), VllmEngine)
    assert isinstance(make_engine("llamacpp", EngineConfig(model="m")), LlamaCppEngine)
    with pytest.raises(ValueError, match="unknown engine 'tgi'; choose one of: llamacpp, vllm"):
        make_engine("tgi", EngineConfig(model="m"))


# --- lifecycle with a real child process --------------------------------------------------------


def test_start_serves_logs_and_records_state(engines: list[FakeEngine], tmp_path: Path, script: Path) -> None:
    engine = fake(engines, tmp_path, script)
    url = engine.start()
    assert engine.owned is True
    assert engine.process is not None
    assert url == f"http://127.0.0.1:{engine.port}/v1"
    resp = httpx.get(f"{url}/models", timeout=5)
    assert resp.status_code == 200
    assert [m["id"] for m in resp.json()["data"]] == ["fake-model"]
    assert served_models(url) == ["fake-model"]

    assert engine.log_path == tmp_path / "fake-fake-model.log"
    log_lines = engine.log_path.read_text().splitlines()
    assert log_lines[0] == "$ " + " ".join(engine.command(engine.port or 0))
    assert f"fake server for fake-model on port {engine.port}" in log_lines

    state = json.loads(engine.state_file.read_text())
    assert state["pid"] == engine.process.pid
    assert state["base_url"] == url
    assert state["model"] == "fake-model"
    assert state["log"] == str(engine.log_path)


def test_second_engine_reuses_the_running_server(engines: list[FakeEngine], tmp_path: Path, script: Path) -> None:
    first = fake(engines, tmp_path, script)
    url = first.start()
    second = fake(engines, tmp_path, script)
    assert second.start() == url
    assert second.owned is False
    assert second.process is None
    assert second.port == first.port
    second.stop()  # a reused server is left running
    assert first.process is not None
    assert first.process.poll() is None
    assert served_models(url) == ["fake-model"]
    # reuse=False starts a fresh server on another port
    third = fake(engines, tmp_path, script)
    third_url = third.start(reuse=False)
    assert third.owned is True
    assert third_url != url


def test_stop_kills_the_whole_process_group(engines: list[FakeEngine], tmp_path: Path, script: Path) -> None:
    engine = fake(engines, tmp_path, script)
    url = engine.start()
    leader, grandchild = read_pids(engine.pidfile)
    assert engine.process is not None
    assert engine.process.pid == leader
    assert os.getpgid(grandchild) == leader  # the grandchild is in the engine's own process group
    engine.stop()
    assert wait_gone(leader)
    assert wait_gone(grandchild)
    assert engine.process is None
    assert not engine.state_file.exists()
    assert served_models(url) is None
    engine.stop()  # idempotent
    assert engine.process is None
    assert fake(engines, tmp_path, script).find_running() is None


def test_context_manager_stops_on_exception(engines: list[FakeEngine], tmp_path: Path, script: Path) -> None:
    engine = fake(engines, tmp_path, script)
    with pytest.raises(RuntimeError, match="boom"), engine:
        leader, grandchild = read_pids(engine.pidfile)
        assert served_models(engine.base_url) == ["fake-model"]
        raise RuntimeError("boom")
    assert wait_gone(leader)
    assert wait_gone(grandchild)


def test_port_already_taken(engines: list[FakeEngine], tmp_path: Path, script: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = int(sock.getsockname()[1])
        engine = fake(engines, tmp_path, script, port=port)
        with pytest.raises(EngineError) as info:
            engine.start()
    message = str(info.value)
    assert f"port {port} on 127.0.0.1 is already taken" in message
    assert engine.process is None
    assert not engine.pidfile.exists()  # nothing was launched


def test_server_that_exits_at_once(engines: list[FakeEngine], tmp_path: Path, script: Path) -> None:
    engine = fake(engines, tmp_path, script, mode="fail")
    with pytest.raises(EngineError) as info:
        engine.start()
    message = str(info.value)
    assert "exited with code 3" in message
    assert str(engine.log_path) in message
    assert "fatal: cannot load weights for fake-model" in message  # the last log lines
    assert engine.process is None
    leader, grandchild = read_pids(engine.pidfile)
    assert wait_gone(leader)
    assert wait_gone(grandchild)  # what the dead leader spawned is not left behind


def test_server_that_never_becomes_healthy(engines: list[FakeEngine], tmp_path: Path, script: Path) -> None:
    engine = fake(engines, tmp_path, script, mode="hang", start_timeout=2)
    with pytest.raises(EngineError) as info:
        engine.start()
    message = str(info.value)
    assert "did not answer within 2 s" in message
    assert str(engine.log_path) in message
    assert engine.process is None
    leader, grandchild = read_pids(engine.pidfile)
    assert wait_gone(leader)
    assert wait_gone(grandchild)


def test_server_that_serves_another_model(engines: list[FakeEngine], tmp_path: Path, script: Path) -> None:
    engine = fake(engines, tmp_path, script, mode="impostor")
    with pytest.raises(EngineError) as info:
        engine.start()
    assert "serves ['impostor-model'], not 'fake-model'" in str(info.value)
    assert engine.process is None
    leader, grandchild = read_pids(engine.pidfile)
    assert wait_gone(leader)
    assert wait_gone(grandchild)
    assert not engine.state_file.exists()


def test_serving_server_killed_is_an_error_that_says_how(engines: list[FakeEngine], tmp_path: Path,
                                                          script: Path) -> None:
    """``peerstep serve`` blocks in ``serve_forever``: an engine SIGKILLed under it must not look like a clean end."""
    engine = fake(engines, tmp_path, script)
    engine.start()
    leader, grandchild = read_pids(engine.pidfile)
    os.kill(leader, signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(EngineError) as info:
        engine.serve_forever()
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert f"pid {leader}" in message
    assert "killed by SIGKILL" in message
    assert str(engine.log_path) in message
    assert "fake server for fake-model" in message  # the log's tail
    assert engine.process is None
    assert wait_gone(grandchild)  # serve_forever stopped what the dead leader left in its group
    assert not engine.state_file.exists()


def test_serving_server_that_exits_is_an_error_with_its_status(engines: list[FakeEngine], tmp_path: Path,
                                                                script: Path) -> None:
    engine = fake(engines, tmp_path, script)
    engine.start()
    leader, _ = read_pids(engine.pidfile)
    os.kill(leader, signal.SIGTERM)  # the fake server's default SIGTERM handling: exit by the signal
    with pytest.raises(EngineError, match="killed by SIGTERM"):
        engine.wait(timeout=10)


def test_wait_returns_quietly_when_stopped_from_elsewhere(engines: list[FakeEngine], tmp_path: Path,
                                                          script: Path) -> None:
    import threading

    engine = fake(engines, tmp_path, script)
    engine.start()
    engine.wait(timeout=0.2)  # still running: returns after the timeout, no error
    stopper = threading.Timer(0.3, engine.stop)
    stopper.start()
    try:
        engine.serve_forever()  # ended by stop(): a clean end, no exception
    finally:
        stopper.join()
    assert engine.process is None


def test_wait_on_a_server_started_elsewhere_is_refused(engines: list[FakeEngine], tmp_path: Path,
                                                       script: Path) -> None:
    first = fake(engines, tmp_path, script)
    first.start()
    second = fake(engines, tmp_path, script)
    second.start()  # reuses the first one's server
    assert second.owned is False
    with pytest.raises(EngineError, match="not started by this process"):
        second.wait()


PARENT = """
import sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
from peerstep.engines import EngineConfig
from tests.test_engines import FakeEngine

engine = FakeEngine(EngineConfig(model="orphan-model", start_timeout=15), state_dir=Path({state!r}),
                    script=Path({script!r}))
engine.start()
print(engine.process.pid, flush=True)
time.sleep(300)
"""


def test_no_orphan_when_the_parent_is_killed(tmp_path: Path, script: Path) -> None:
    code = PARENT.format(repo=str(REPO), state=str(tmp_path), script=str(script))
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pidfile = tmp_path / f"pids-orphan-model-ok-{parent.pid}-0.txt"
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line.strip().isdigit(), f"parent printed {line!r}"
        child = int(line)
        leader, _ = read_pids(pidfile)
        assert child == leader
        assert not gone(child)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=5)
        assert wait_gone(child)  # PR_SET_PDEATHSIG delivered SIGTERM to the server
    finally:
        kill_quietly(parent.pid)
        parent.wait(timeout=5)
        if pidfile.exists():
            for pid in pidfile.read_text().split():
                kill_quietly(int(pid))
