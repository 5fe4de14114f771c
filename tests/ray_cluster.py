"""A real two-node Ray cluster on this machine, for the executor tests and bench/scale.py.

``ray start --head`` plus ``ray start --address`` for a second node with its own resource (``worker2``), under a
private ``--temp-dir``. Ray's servers are not confined to loopback, and Ray 2.60 offers no supported way to do it:
``ray start`` rewrites ``--node-ip-address 127.0.0.1`` to the machine's reachable IP
(``services.resolve_ip_for_localhost``), its gRPC servers (GCS, raylets, workers) listen on every interface, and
the one switch that keeps a node on loopback (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) refuses a second node.

Stopping kills exactly the processes of this cluster (those whose command line names its temp dir, and their
children), not every Ray process of the machine as ``ray stop`` would, so that other Ray users of the machine are
left alone; it then checks that none is left.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))
FAST_FAILURE_DETECTION = {  # a killed node is declared dead in about 2 s instead of about 30
    "RAY_health_check_initial_delay_ms": "0", "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "500", "RAY_health_check_failure_threshold": "3",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalCluster:
    def __init__(self, nodes: int = 2, cpus: int = 2) -> None:
        self.temp = tempfile.mkdtemp(prefix="psray", dir="/tmp")  # short: Ray's socket paths must stay short
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.node2_port = free_port()
        self.nodes, self.cpus = nodes, cpus
        self.env = {**os.environ, **FAST_FAILURE_DETECTION, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}

    def _ray(self, *args: str) -> None:
        subprocess.run([RAY, "start", "--node-ip-address", "127.0.0.1", "--disable-usage-stats", *args], env=self.env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def start(self) -> LocalCluster:
        self._ray("--head", "--port", str(self.port), "--num-cpus", str(self.cpus), "--include-dashboard=false",
                  "--temp-dir", self.temp)
        if self.nodes > 1:
            self.add_node()
        return self

    def add_node(self) -> None:
        self._ray("--address", self.address, "--num-cpus", str(self.cpus), "--resources", '{"worker2": 1}',
                  "--node-manager-port", str(self.node2_port))

    def processes(self) -> list[psutil.Process]:
        """Every process of this cluster: those naming its temp dir, and all their children."""
        found: dict[int, psutil.Process] = {}
        me = psutil.Process()
        mine = {me.pid, *(p.pid for p in me.parents())}
        for proc in psutil.process_iter(["cmdline"]):
            if proc.pid not in mine and any(self.temp in part for part in proc.info["cmdline"] or []):
                found[proc.pid] = proc
                for child in _children(proc):
                    found[child.pid] = child
        return list(found.values())

    def node2_processes(self) -> list[psutil.Process]:
        """The second node's raylet and everything it started (its workers)."""
        raylets = [p for p in self.processes() if f"--node_manager_port={self.node2_port}" in " ".join(_cmdline(p))]
        return [q for p in raylets for q in [p, *_children(p)]]

    def node2_client_ports(self, server_port: int) -> set[int]:
        """The local ports of the second node's open TCP connections to ``server_port`` on this machine."""
        ports: set[int] = set()
        for proc in self.node2_processes():
            try:
                conns = proc.net_connections(kind="tcp")
                ports |= {c.laddr.port for c in conns if c.raddr and c.raddr.port == server_port}
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue  # a worker that ended while we looked has no connection left to count
        return ports

    def kill_node2(self) -> int:
        """SIGKILL the second node's raylet and everything it started (its workers); the count killed."""
        victims = self.node2_processes()
        for proc in victims:
            _kill(proc)
        return len(victims)

    def stop(self) -> list[str]:
        """Kill the cluster; what is still alive after that (nothing, or the test fails)."""
        for proc in self.processes():
            _kill(proc)
        deadline = time.monotonic() + 10
        while (left := [p for p in self.processes() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        if not left:  # its logs and sockets go with it
            shutil.rmtree(self.temp, ignore_errors=True)
        return [" ".join(_cmdline(p))[:200] for p in left]


def _children(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return list(proc.children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return list(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return []


def _kill(proc: psutil.Process) -> None:
    try:
        proc.send_signal(signal.SIGKILL)
    except psutil.NoSuchProcess:
        return
