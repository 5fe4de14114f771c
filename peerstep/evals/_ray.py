"""Episodes on a Ray cluster: one Ray task per episode, orchestrated by the same ``run_eval`` as a local eval.

An episode (its N trajectories, their barriers and peer sharing) stays inside one task, so LeaP's barriers never
cross the network. The plan (dataset, agent settings, a ``ClientSpec``) goes to the object store once; each
worker builds its own client and writes the episode's step log in a temporary directory, whose files come back
with the outcome and land in the driver's runs folder (``shared_runs``: workers write straight to a folder all
nodes mount). A task whose worker or node dies is retried by Ray on another (``max_retries``); one that still
fails comes back as an outcome with the reason. Ray is optional (``peerstep[ray]``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from peerstep._errors import InputError, PeerstepError
from peerstep.evals import _raynode
from peerstep.evals._episode import ClientSpec, EpisodePlan, play
from peerstep.evals._pernode import NodeEngines
from peerstep.evals._raycall import ask_every_node
from peerstep.evals._report import EpisodeOutcome
from peerstep.steplog import runs_dir as default_runs_dir

NEEDED_ON_NODES = ["peerstep", "openai", "langgraph"]
Logs = dict[str, bytes]


class ClusterError(PeerstepError):
    """A task Ray gave up on after its retries (its node or worker kept dying)."""


def require_ray() -> None:
    """Fail in one line, before anything starts, when Ray is not installed."""
    _ray()


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError("the ray executor needs Ray: pip install 'peerstep[ray]'") from None
    return ray


def connect(address: str | None, timeout: float = 5.0) -> bool:
    """Join the cluster at ``address`` unless this process already has; whether it joined now (then it leaves)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    check_address(address, timeout)
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, configure_logging=False)
    except ConnectionError as exc:
        raise InputError(f"no Ray cluster at {address}: {str(exc).splitlines()[0]}") from None
    return True


async def check_nodes(timeout: float = 120.0, more: list[str] | None = None) -> list[dict[str, Any]]:
    """Ask every live node whether it can import what an episode needs (and ``more``), before the first episode
    goes there; the live nodes."""
    ray = _ray()
    ray.cloudpickle.register_pickle_by_value(_raynode)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    answers = await ask_every_node(_raynode.missing_modules, nodes, [*NEEDED_ON_NODES, *(more or [])],
                                   timeout=timeout, what="which packages they have")
    for node, (host, missing) in zip(nodes, answers, strict=True):
        if missing:
            raise InputError(f"Ray node {node['NodeManagerAddress']} ({host}) lacks the Python package "
                             f"{missing[0]!r}: install peerstep[ray] (the driver's version) on every node"
                             + (f" ({_EXTRA_OF.get(missing[0], '')})" if missing[0] in _EXTRA_OF else ""))
    return nodes


_EXTRA_OF = {"llama_cpp": "--engine llamacpp --per-node runs an engine on every node: pip install "
                          "'peerstep[llamacpp]' there"}


def lost_reason(exc: Exception, retries: int) -> str:
    """One line for a task Ray gave up on."""
    reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"lost on the Ray cluster after {retries} retries: {type(exc).__name__}: {reason[:300]}"


def land(files: Logs, folder: Path | None) -> None:
    """Step log files a worker sent back, written to this machine's runs folder."""
    if not files:
        return
    target = folder or default_runs_dir()
    target.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (target / name).write_bytes(data)


def _episode_on_worker(plan: EpisodePlan, strategy: str, index: int, shared: bool) -> tuple[EpisodeOutcome, Logs]:
    """The Ray task: the episode in a fresh event loop; its step log files as bytes unless the folder is shared."""
    if shared:
        return asyncio.run(play(plan, strategy, index, plan.runs_dir)), {}
    with tempfile.TemporaryDirectory(prefix="peerstep-episode-") as tmp:
        outcome = asyncio.run(play(plan, strategy, index, Path(tmp)))
        return outcome, {p.name: p.read_bytes() for p in Path(tmp).iterdir() if p.is_file()}


def check_address(address: str | None, timeout: float = 5.0) -> None:
    """``address`` well formed and, when it names a host, answering (``auto`` and ``None`` are left to Ray)."""
    if address not in (None, "auto"):
        _reachable(address, timeout)


def _reachable(address: str, timeout: float) -> None:
    """Fail in one line, within ``timeout``, when nothing listens at HOST:PORT (Ray itself waits a long time)."""
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--address {address!r} is not auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise InputError(f"no Ray cluster at {address} ({exc.strerror or exc}); start one with `ray start --head` "
                         "or pass --address auto on a node of a running cluster") from None


class RayExecutor:
    """Run each episode as a Ray task on the cluster at ``address``.

    ``address``: ``"auto"`` (the cluster this node belongs to), ``"HOST:PORT"`` (its head's GCS) or
    ``"ray://HOST:PORT"`` (Ray Client); ``None`` starts a Ray instance in this process's machine.
    ``num_cpus`` per episode: one, so that a node runs as many episodes at once as it declares CPUs, each in a
    worker process Ray keeps alive between episodes (Ray kills idle workers beyond that count, and starting one
    costs seconds). An episode mostly waits on the model server, so declare more logical CPUs than cores
    (``ray start --num-cpus 64``) for more episodes in flight per node. ``max_retries``: how often Ray reruns an
    episode whose worker or node died. ``engines``: start one managed engine on every node for this eval
    (``--per-node``); episodes then talk to their node's engine, and the plan's ``ClientSpec`` only says how.
    ``announce`` hears one line per engine started.
    """

    remote = True

    def __init__(self, address: str | None = "auto", *, max_retries: int = 3, num_cpus: float = 1.0,
                 shared_runs: bool = False, connect_timeout: float = 5.0, node_timeout: float = 120.0,
                 engines: NodeEngines | None = None, announce: Callable[[str], None] | None = None) -> None:
        self.address = address
        self.max_retries = max_retries
        self.num_cpus = num_cpus
        self.shared_runs = shared_runs
        self.connect_timeout = connect_timeout
        self.node_timeout = node_timeout
        self._plan: EpisodePlan | None = None
        self._plan_ref: Any = None
        self._task: Any = None
        self._connected_here = False
        self.engines = engines
        self.announce = announce

    async def open(self, plan: EpisodePlan) -> None:
        ray = _ray()
        self._connected_here = connect(self.address, self.connect_timeout)  # blocks once, before any episode
        nodes = await check_nodes(self.node_timeout, self.engines.modules if self.engines else None)
        if self.engines is not None:
            await self._start_engines(plan, nodes)
        self._plan = plan
        self._plan_ref = ray.put(plan)
        self._task = ray.remote(_episode_on_worker).options(
            max_retries=self.max_retries, retry_exceptions=False, num_cpus=self.num_cpus,
            scheduling_strategy="SPREAD")

    async def _start_engines(self, plan: EpisodePlan, nodes: list[dict[str, Any]]) -> None:
        """Check the nodes for the engine, start it on each, and point the plan's clients at them."""
        assert self.engines is not None
        if not isinstance(plan.clients, ClientSpec):
            raise InputError("engines on every node need the plan's clients as a ClientSpec (model and settings)")
        await self.engines.check(nodes, self.node_timeout)
        await self.engines.start(nodes)
        urls = self.engines.urls
        plan.clients = replace(plan.clients, base_urls=tuple(urls.values()), per_node=tuple(urls.items()))
        for node, url in urls.items():
            if self.announce is not None:
                self.announce(f"{self.engines.engine} engine on node {node[:12]}: {url} "
                              f"(pid {self.engines.pids[node]})")

    async def run(self, strategy: str, index: int) -> EpisodeOutcome:
        assert self._plan is not None, "open the executor first"
        ray = _ray()
        ref = self._task.remote(self._plan_ref, strategy, index, self.shared_runs)
        try:
            outcome, logs = await ref
        except asyncio.CancelledError:
            ray.cancel(ref, force=True)
            raise
        except ray.exceptions.RayError as exc:
            return self._lost(strategy, index, exc)
        land(logs, self._plan.runs_dir)
        return outcome

    def _lost(self, strategy: str, index: int, exc: Exception) -> EpisodeOutcome:
        """An episode Ray gave up on after its retries: reported once, with the reason."""
        assert self._plan is not None
        info = self._plan.dataset.info(index)
        from peerstep.strategies import strategy_width

        width = strategy_width(strategy, self._plan.n)
        return EpisodeOutcome(task_id=info.task_id, index=index, strategy=strategy, n=width, answer=None,
                              gold=info.gold, correct=False, tokens=0, tool_calls=0, seconds=0.0, run_id="",
                              error=lost_reason(exc, self.max_retries))

    async def close(self) -> None:
        self._plan = self._plan_ref = self._task = None
        if self.engines is not None:
            self.engines.stop()
        if self._connected_here:
            _ray().shutdown()
            self._connected_here = False
