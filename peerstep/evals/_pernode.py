"""One managed engine on every Ray node (``--engine llamacpp|vllm --per-node``), owned by the eval.

Each engine is started by a Ray actor pinned to its node (``NodeAffinitySchedulingStrategy``, hard) and serves on
that node's 127.0.0.1; episodes look up the node they run on and talk to its engine (``ClientSpec.per_node``), so
no model traffic crosses nodes. The actor takes no CPU, so it never holds an episode's slot. Engines stop when
the eval ends, aborts or is interrupted (``stop``: each actor stops its engine, then the actor is killed); an
actor that dies some other way takes its engine along (``PR_SET_PDEATHSIG``, see ``peerstep.engines``).

Before anything starts, every node is checked for what its engine needs: ``llama_cpp`` importable (llama.cpp), or
a GPU in Ray's resources and vLLM importable in the engine's Python there (vLLM); a missing one fails in one line
naming the node.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from peerstep._errors import EngineError, InputError, PeerstepError
from peerstep.engines import EngineConfig, make_engine
from peerstep.evals._episode import ClientSpec
from peerstep.evals._raycall import ask_every_node, on_node


def _vllm_python_missing() -> tuple[str, str | None]:
    """On a node: the Python its vLLM engine would run under, and what it lacks (None: nothing)."""
    import subprocess

    from peerstep.engines import default_vllm_python

    python = default_vllm_python()
    if python is None:
        return "", "vLLM (no Python on this node has it: pip install 'peerstep[vllm]' there)"
    probe = subprocess.run([python, "-c", "import vllm"], capture_output=True, timeout=120, check=False)
    return python, None if probe.returncode == 0 else f"vLLM (`import vllm` fails under {python})"


class _EngineHost:
    """The actor on one node: owns that node's engine."""

    def __init__(self, engine: str, config: dict[str, Any]) -> None:
        import ray

        from peerstep.engines._base import engine_state_dir

        self.node = ray.get_runtime_context().get_node_id()
        self.engine = make_engine(engine, EngineConfig(**config))
        # its own state folder: nodes of one machine (or a shared home) must not find each other's engine
        self.engine.state_dir = engine_state_dir() / "per-node" / self.node[:12]
        self.engine.log_path = self.engine.state_dir / self.engine.log_path.name

    def start(self) -> tuple[str, str, int]:
        """Start the engine (never reuse one: it is this eval's); its node id, base URL and pid."""
        url = self.engine.start(reuse=False)
        assert self.engine.process is not None
        return self.node, url, self.engine.process.pid

    def stop(self) -> None:
        self.engine.stop()


@dataclass
class NodeEngines:
    """The engines of one eval: which engine, how configured; after ``start``, node id → base URL and pid.

    In Python: ``engines = NodeEngines("llamacpp", EngineConfig(model="qwen2.5-coder-0.5b-instruct"))``, then
    ``run_eval(dataset, engines.client_spec(), ..., executor=RayExecutor("auto", engines=engines))``.
    """

    engine: str
    config: EngineConfig
    urls: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    _actors: list[Any] = field(default_factory=list)

    def client_spec(self, api_key: str | None = None) -> ClientSpec:
        """The clients of these engines, for ``run_eval``: model and what the engine accepts; where they are is
        filled in by the ``RayExecutor`` once the engines run."""
        probe = make_engine(self.engine, self.config)  # not started: it only says what it would serve and accept
        return ClientSpec((), probe.served_name, api_key, supports_continue=probe.supports_continue,
                          supports_seed=probe.supports_seed, tool_choice=probe.tool_choice,
                          context_tokens=probe.config.context_length)

    @property
    def modules(self) -> list[str]:
        """Modules every node's peerstep Python must import for this engine (vLLM is checked on its own)."""
        return ["llama_cpp"] if self.engine == "llamacpp" else []

    async def check(self, nodes: list[dict[str, Any]], timeout: float) -> None:
        """vLLM: every node has a GPU and vLLM importable in its engine's Python; fail naming the first that lacks."""
        if self.engine != "vllm":
            return
        for node in nodes:
            if not node.get("Resources", {}).get("GPU"):
                raise InputError(f"--engine vllm --per-node: Ray node {_name(node)} has no GPU (its resources list "
                                 "none); start every node with a GPU, or serve the model elsewhere and pass --base-url")
        answers = await ask_every_node(_vllm_python_missing, nodes, timeout=timeout, what="whether they have vLLM")
        for node, (_python, missing) in zip(nodes, answers, strict=True):
            if missing:
                raise InputError(f"--engine vllm --per-node: Ray node {_name(node)} lacks {missing}")

    async def start(self, nodes: list[dict[str, Any]]) -> None:
        """One engine per node, all starting at once; returns when every one answers (or raises, all stopped)."""
        import ray

        host = ray.remote(_EngineHost)
        config = self.config.model_dump(exclude={"host", "port"})
        self._actors = [host.options(num_cpus=0, max_restarts=0, scheduling_strategy=on_node(node))
                        .remote(self.engine, config) for node in nodes]
        try:
            started = await asyncio.gather(*(actor.start.remote() for actor in self._actors), return_exceptions=True)
        except BaseException:  # cancelled (Ctrl-C) while the engines were starting
            self.stop()
            raise
        for node, answer in zip(nodes, started, strict=True):
            if isinstance(answer, BaseException):
                self.stop()
                raise EngineError(f"the {self.engine} engine on Ray node {_name(node)} did not start: "
                                  f"{_reason(answer)}")
        for node_id, url, pid in started:  # type: ignore[misc]
            self.urls[node_id], self.pids[node_id] = url, pid

    def stop(self, grace: float = 30.0) -> None:
        """Stop every engine, then its actor. Blocking on purpose: it must finish also while the eval is being
        cancelled (Ctrl-C), where an await could be cut short."""
        import ray

        actors, self._actors = self._actors, []
        if not actors:
            return
        refs = [actor.stop.remote() for actor in actors]
        ray.wait(refs, num_returns=len(refs), timeout=grace)
        for actor in actors:  # an engine its actor could not stop dies with the actor (PR_SET_PDEATHSIG)
            ray.kill(actor)


def _reason(exc: BaseException) -> str:
    """Why an actor failed: the engine's own error in full (it names the log), else the first line of Ray's."""
    cause = getattr(exc, "cause", None) or exc
    if isinstance(cause, PeerstepError):
        return str(cause)
    return f"{type(cause).__name__}: {next(iter(str(cause).splitlines()), '')}"


def _name(node: dict[str, Any]) -> str:
    return f"{node.get('NodeManagerAddress', '?')} (id {node['NodeID'][:12]})"

