"""Evals on a real two-node Ray cluster on this machine (tests/ray_cluster.py) against a scripted HTTP model.

The same eval through the local and the Ray executor gives the same outcomes; killing the second node mid-eval
loses no episode and counts none twice; bad addresses and nodes without the package fail in one line. Sticky
routing over several replicas needs no cluster.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from typer.testing import CliRunner

from peerstep._errors import InputError
from peerstep.cli import app
from peerstep.environments.taskfile import TaskFileDataset
from peerstep.evals import ClientSpec, EpisodeOutcome, RayExecutor, run_eval
from peerstep.evals import _ray as ray_module
from peerstep.steplog import StepLog
from peerstep.testing.server import ScriptedServer
from tests.ray_cluster import LocalCluster, _cmdline

pytestmark = pytest.mark.slow  # a Ray cluster takes ~15 s to start on two cores; the module shares one

QUESTIONS = [(12, 7), (13, 9), (21, 4), (8, 8), (25, 3), (17, 6)]


def task_file(tmp: Path, count: int = len(QUESTIONS)) -> Path:
    lines = ["tasks:"] + [f'  - {{id: q{i}, question: "What is {a}*{b}?", tools: [calculator], checker: exact, '
                          f'gold: "{a * b}"}}' for i, (a, b) in enumerate(QUESTIONS[:count])]
    path = tmp / "tasks.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def content(outcomes: list[EpisodeOutcome]) -> list[tuple[Any, ...]]:
    return sorted((o.strategy, o.index, o.task_id, o.answer, o.correct, o.steps, o.tokens, o.tool_calls, o.error)
                  for o in outcomes)


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """The cluster, and this process joined to it once: every eval of the module then reuses the connection and
    the workers (a new driver would be a new Ray job, whose workers start afresh, ~3 s each on two cores)."""
    import ray

    c = LocalCluster().start()
    try:
        ray.init(address=c.address, logging_level="ERROR", log_to_driver=False, configure_logging=False)
        yield c
    finally:
        ray.shutdown()
        assert c.stop() == [], "processes of the test cluster were left running"


def test_ray_eval_gives_the_local_outcomes_and_ships_step_logs(cluster: LocalCluster, tmp_path: Path) -> None:
    dataset = TaskFileDataset(task_file(tmp_path, 4))
    results = {}
    for name, executor in (("local", None), ("ray", RayExecutor(address=cluster.address))):
        with ScriptedServer() as server:
            runs = tmp_path / f"runs-{name}"
            results[name] = (asyncio.run(run_eval(dataset, ClientSpec((server.base_url,), "scripted"),
                                                  ["single", "leap"], n=3, concurrency=4, runs_dir=runs,
                                                  executor=executor)), dict(server.episodes), runs)
    local, ray = results["local"], results["ray"]
    assert content(ray[0]) == content(local[0])
    assert {o.answer for o in ray[0] if o.index == 0} == {"84"} and all(o.correct for o in ray[0])
    assert ray[1] == local[1]  # every episode made the same requests, each tagged with its id
    for o in ray[0]:  # the worker's step log came back to the driver's runs folder, whole
        log = StepLog.open(o.run_id, ray[2])
        assert log.meta()["task_id"] == o.task_id
        assert sum(r.kind == "final" for r in log.records()) == (1 if o.strategy == "single" else 3)


def test_bad_addresses_and_nodes_without_the_package(cluster: LocalCluster, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    tasks = task_file(tmp_path, 1)
    for address, says in (("127.0.0.1:1", "no Ray cluster at 127.0.0.1:1"), ("nohost", "is not auto, HOST:PORT")):
        result = CliRunner().invoke(app, ["run", str(tasks), "--base-url", "http://127.0.0.1:9/v1",
                                          "--executor", "ray", "--address", address])
        assert result.exit_code == 2 and says in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["label", "someRun", "--base-url", "http://127.0.0.1:9/v1", "--executor", "ray",
                                      "--address", "127.0.0.1:1"])
    assert result.exit_code == 2 and "no Ray cluster at 127.0.0.1:1" in result.output
    monkeypatch.setattr(ray_module, "NEEDED_ON_NODES", ["peerstep", "no_such_package_on_nodes"])
    with ScriptedServer() as server, pytest.raises(InputError, match=r"Ray node \S+ \(\S+\) lacks the Python "
                                                                    r"package 'no_such_package_on_nodes'"):
        asyncio.run(run_eval(TaskFileDataset(tasks), ClientSpec((server.base_url,), "scripted"), ["single"],
                             executor=RayExecutor(address=cluster.address)))


def test_resume_through_ray_runs_only_the_unfinished_episodes(cluster: LocalCluster, tmp_path: Path) -> None:
    tasks, out = task_file(tmp_path, 4), tmp_path / "out.json"
    with ScriptedServer() as server:
        args = ["run", str(tasks), "--base-url", server.base_url, "--executor", "ray", "--address", cluster.address]
        assert CliRunner().invoke(app, [*args, "--out", str(out)]).exit_code == 0
        jsonl = out.with_suffix(".jsonl")
        jsonl.write_text("".join(jsonl.read_text().splitlines(keepends=True)[:2]))  # as if killed after two
        before = server.requests
        result = CliRunner().invoke(app, [*args, "--resume", str(out)])
        assert result.exit_code == 0, result.output
        assert server.requests - before == 2 * 2  # two episodes of two requests each
    report = json.loads(out.read_text())
    assert sorted(o["index"] for o in report["outcomes"]) == [0, 1, 2, 3]


def test_an_episode_sticks_to_one_replica_and_replicas_share_the_episodes(tmp_path: Path) -> None:
    dataset = TaskFileDataset(task_file(tmp_path))
    with ScriptedServer() as a, ScriptedServer() as b:
        spec = ClientSpec((a.base_url, b.base_url), "scripted")
        outcomes = asyncio.run(run_eval(dataset, spec, ["single", "leap"], n=3, runs_dir=tmp_path))
        seen_a, seen_b = set(a.episodes), set(b.episodes)
    assert all(o.correct for o in outcomes)
    assert seen_a and seen_b and not seen_a & seen_b  # both used; no episode's requests were split
    assert seen_a | seen_b == {f"tasks/{s}/{i}" for s in ("single", "leap") for i in range(len(QUESTIONS))}
    assert all(spec.replica(e) == a.base_url for e in seen_a)
    with pytest.raises(InputError, match="not a model served over HTTP"):
        from peerstep.testing.model import ScriptedClient

        asyncio.run(run_eval(dataset, lambda: ScriptedClient(["x"]), ["single"], executor=RayExecutor("127.0.0.1:1")))


def test_labels_with_rollouts_on_ray_are_the_local_labels(cluster: LocalCluster, tmp_path: Path) -> None:
    from peerstep._label import alabel
    from peerstep._runner import arun
    from peerstep.client import ModelClient
    from peerstep.steplog import StepKind
    from tests.label_script import EXPECTED_K, GOLD, QUESTION, ContinuationServer, ParentClient

    run_id = asyncio.run(arun(QUESTION, ParentClient(), gold=GOLD, python=False, runs_dir=tmp_path)).run_id
    with ContinuationServer() as server:
        summary = asyncio.run(alabel([run_id], ModelClient(server.base_url, "scripted"), k=4, runs_dir=tmp_path,
                                     ray_address=cluster.address))
    with StepLog.open(run_id, tmp_path) as log:
        got = list(log.records(kind=StepKind.LABEL))
    assert [r.data["mc_k"] for r in got] == [*EXPECTED_K, 0] and summary.rollouts == 12
    for label in got[:3]:  # each label's evidence, forked on a worker, is in the driver's runs folder
        with StepLog.open(label.data["fork_run"], tmp_path) as fork:
            assert fork.meta()["fork"]["run"] == run_id


def test_a_dead_model_fleet_aborts_a_ray_eval_as_locally(cluster: LocalCluster, tmp_path: Path) -> None:
    from peerstep.evals import EvalAborted
    from tests.ray_cluster import free_port

    dead = ClientSpec((f"http://127.0.0.1:{free_port()}/v1",), "scripted", max_retries=0)
    with pytest.raises(EvalAborted, match="the model server stopped answering"):
        asyncio.run(run_eval(TaskFileDataset(task_file(tmp_path, 2)), dead, ["single"], runs_dir=tmp_path,
                             executor=RayExecutor(address=cluster.address)))


def test_shared_runs_are_written_by_the_workers_themselves(cluster: LocalCluster, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    landed: list[dict[str, bytes]] = []
    monkeypatch.setattr(ray_module, "land", lambda files, folder: landed.append(files))
    with ScriptedServer() as server:
        outcomes = asyncio.run(run_eval(TaskFileDataset(task_file(tmp_path, 2)), ClientSpec((server.base_url,),
                                        "scripted"), ["single"], runs_dir=tmp_path / "shared",
                                        executor=RayExecutor(address=cluster.address, shared_runs=True)))
    assert landed == [{}, {}]  # nothing shipped back: the workers wrote to the shared folder
    for o in outcomes:
        assert StepLog.open(o.run_id, tmp_path / "shared").meta()["task_id"] == o.task_id


def test_per_node_needs_the_ray_executor_and_no_base_url(tmp_path: Path) -> None:
    tasks = task_file(tmp_path, 1)
    for extra, says in ((["--executor", "local"], "--per-node starts an engine on every Ray node: it needs --executor "
                                                  "ray"),
                        (["--executor", "ray", "--base-url", "http://127.0.0.1:9/v1"], "give one or the other")):
        result = CliRunner().invoke(app, ["run", str(tasks), "--per-node", *extra])
        assert result.exit_code == 2 and says in result.output and "Traceback" not in result.output, result.output


def test_vllm_per_node_is_refused_on_nodes_without_a_gpu(cluster: LocalCluster, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(task_file(tmp_path, 1)), "--engine", "vllm", "--per-node",
                                      "--executor", "ray", "--address", cluster.address])
    assert result.exit_code == 2, result.output
    line = " ".join(result.output.split())  # rich wraps long lines
    assert re.search(r"--engine vllm --per-node: Ray node [0-9.]+ \(id [0-9a-f]{12}\) has no GPU", line), line
    assert "Traceback" not in result.output and not engines_running(cluster)


def test_a_per_node_engine_that_cannot_start_fails_in_one_line_naming_its_node(cluster: LocalCluster,
                                                                             tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(task_file(tmp_path, 1)), "--engine", "llamacpp", "--per-node",
                                      "--model", str(tmp_path / "missing.gguf"), "--executor", "ray",
                                      "--address", cluster.address])
    line = " ".join(result.output.split())
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert re.search(r"the llamacpp engine on Ray node [0-9.]+ \(id [0-9a-f]{12}\) did not start: model file "
                     r"\S+missing\.gguf does not exist", line), line
    assert not engines_running(cluster)


def engines_running(cluster: LocalCluster) -> list[int]:
    return [p.pid for p in cluster.processes() if any("peerstep.engines." in part for part in _cmdline(p))]


def test_per_node_llamacpp_engines_serve_the_episodes_of_their_nodes(cluster: LocalCluster, tmp_path: Path) -> None:
    """A real engine on each of the two nodes (the small model, one thread each), two episodes, engines gone after.
    Tool-less questions and one model call each: a prompt with tool schemas takes ~40 s per episode to prefill on
    one thread of a busy two-core machine, and what is tested here is where the engines run, not the answers."""
    out, runs, tasks = tmp_path / "out.json", tmp_path / "runs", tmp_path / "tasks.yaml"
    tasks.write_text("tasks:\n" + "".join(f'  - {{id: q{i}, question: "What is {a}*{b}?", tools: [], checker: exact, '
                                          f'gold: "{a * b}"}}\n' for i, (a, b) in enumerate(QUESTIONS[:2])))
    result = CliRunner(env={"PEERSTEP_RUNS": str(runs)}).invoke(app, [
        "run", str(tasks), "--engine", "llamacpp", "--model", "qwen2.5-coder-0.5b-instruct", "--per-node",
        "--engine-threads", "1", "--executor", "ray", "--address", cluster.address, "--max-steps", "1",
        "--out", str(out)])
    assert result.exit_code == 0, result.output
    said = re.findall(r"llamacpp engine on node ([0-9a-f]{12}): (http://127\.0\.0\.1:\d+/v1) \(pid (\d+)\)",
                      " ".join(result.output.split()))
    started = {node: url for node, url, _ in said}
    assert set(started) == {n["NodeID"][:12] for n in ray_nodes()}  # one engine on each node,
    assert len(set(started.values())) == 2  # each its own
    report = json.loads(out.read_text())
    assert report["model"] == "qwen2.5-coder-0.5b-instruct" and len(report["outcomes"]) == 2
    for o in report["outcomes"]:
        log = StepLog.open(o["run_id"], runs)
        assert log.meta()["base_url"] == started[log.meta()["ray_node"][:12]]  # its own node's engine
        reasons = [r for r in log.records() if r.kind == "reason"]
        assert reasons and {r.model for r in reasons} == {"qwen2.5-coder-0.5b-instruct"}
    assert engines_running(cluster) == [] and not any(psutil.pid_exists(int(pid)) for _, _, pid in said)


def ray_nodes() -> list[dict[str, Any]]:
    import ray

    return [n for n in ray.nodes() if n.get("Alive")]


# last: it leaves the cluster one node short
def test_a_node_killed_mid_eval_loses_no_episode_and_counts_none_twice(cluster: LocalCluster, tmp_path: Path) -> None:
    dataset = TaskFileDataset(task_file(tmp_path))
    reported: list[tuple[str, int]] = []

    async def main(server: ScriptedServer) -> list[EpisodeOutcome]:
        eval_task = asyncio.ensure_future(run_eval(
            dataset, ClientSpec((server.base_url,), "scripted"), ["single"], concurrency=4, runs_dir=tmp_path,
            executor=RayExecutor(address=cluster.address), on_outcome=lambda o: reported.append((o.strategy, o.index))))
        # Kill only once an episode on node 2 has a request at the server: counting episodes under way is not
        # enough, node 1 can begin four of them before node 2's worker has started.
        port = int(server.httpd.server_address[1])
        while not (cluster.node2_client_ports(port) & set(server.client_ports)) and not eval_task.done():
            await asyncio.sleep(0.05)
        assert not eval_task.done(), "no episode ran on node 2"
        assert cluster.kill_node2() > 0
        return await eval_task

    with ScriptedServer(delay=0.4) as server:
        outcomes = asyncio.run(main(server))
        requests = server.requests
    assert sorted(reported) == [("single", i) for i in range(len(QUESTIONS))]  # each reported exactly once
    assert [o.error for o in outcomes] == [None] * len(QUESTIONS) and all(o.correct for o in outcomes)
    assert requests > 2 * len(QUESTIONS)  # episodes on the killed node had begun, and ran again elsewhere
