"""``peerstep label RUN_ID… | --eval OUT.json``: Monte-Carlo step labels (``peerstep._label``)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from peerstep._errors import PeerstepError
from peerstep.steplog._steps import PEER_EFFECT_THRESHOLD

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("label")(label)


def _fail(message: str, code: int) -> None:
    err.print(f"[bold red]error:[/bold red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def label(
    runs: Annotated[list[str] | None, typer.Argument(help="Run ids (or unique prefixes) to label.")] = None,
    eval_path: Annotated[Path | None, typer.Option("--eval", help="Label every episode's run of this eval "
                                                                  "(its OUT.json).")] = None,
    rollouts: Annotated[int, typer.Option("--rollouts", "-k", help="Continuations sampled per labelled step.")]
    = 4,
    search: Annotated[str, typer.Option(help="full: label every step; binary: search a wrong trajectory for its "
                                             "first error (OmegaPRM), labelling only the probed steps.")] = "full",
    concurrency: Annotated[int, typer.Option(help="Trajectories labelled at once.", min=1)] = 1,
    directory: Annotated[Path | None, typer.Option("--dir", help="Runs directory.")] = None,
    engine: Annotated[str, typer.Option("--engine", envvar="PEERSTEP_ENGINE", help="llamacpp or vllm.")] = "llamacpp",
    model: Annotated[str | None, typer.Option("--model", envvar="PEERSTEP_MODEL", help="Model name.")] = None,
    base_url: Annotated[str | None, typer.Option(
        "--base-url", help="Use this OpenAI-compatible server instead of starting one (default: "
                           "$PEERSTEP_BASE_URL, else $OPENAI_BASE_URL).")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="PEERSTEP_API_KEY")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port for a started engine.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    executor: Annotated[str, typer.Option(help="local: rollouts run in this process; ray: each step's K rollouts "
                                               "are a Ray task on the cluster at --address (labels are written "
                                               "here).")] = "local",
    address: Annotated[str, typer.Option(envvar="RAY_ADDRESS", help="The Ray cluster for --executor ray: auto, "
                                                                   "HOST:PORT or ray://HOST:PORT.")] = "auto",
    peers: Annotated[bool, typer.Option("--peers", help="Label the LeaP peer injections instead of the steps: K "
                                                        "continuations with the peer comment and K without; then "
                                                        "print how often sharing helped, hurt or did nothing.")]
    = False,
    summary_only: Annotated[bool, typer.Option("--summary", help="Only print the peer-effect summary of the peer "
                                                                 "labels already written (implies --peers; no model "
                                                                 "is started).")] = False,
    threshold: Annotated[float, typer.Option(help="--peers: an effect (value with - value without) above +T helped, "
                                                  "below -T hurt, else no effect. 0.25 = one continuation at K=4.")]
    = PEER_EFFECT_THRESHOLD,
) -> None:
    """Label each step of finished trajectories by how often K continuations from it reach the gold answer
    (--peers: each peer injection by the difference its comment makes)."""
    from peerstep import Endpoint
    from peerstep._endpoint import base_url_setting
    from peerstep._label import SEARCHES, alabel, eval_targets, open_target
    from peerstep._label_peers import alabel_peers, peer_effects
    from peerstep._runner import on_endpoint
    from peerstep.engines import EngineConfig
    from peerstep.models import DEFAULT_MODEL

    peers = peers or summary_only
    if search not in SEARCHES:
        _fail(f"unknown --search {search!r}; one of: {', '.join(SEARCHES)}", 2)
    if peers and search != "full":
        _fail("--search chooses which steps to label; --peers labels every injection", 2)
    if rollouts < 1:
        _fail(f"--rollouts must be at least 1, got {rollouts}", 2)
    if executor not in ("local", "ray"):
        _fail(f"unknown --executor {executor!r}; one of: local, ray", 2)
    if executor == "ray" and peers:
        _fail("--peers labels on this machine only; --executor ray spreads step labels", 2)
    if executor == "ray":
        from peerstep.evals._ray import check_address, require_ray

        if base_url_setting(base_url)[0] is None:
            _fail("--executor ray needs --base-url: a model server every node of the cluster can reach", 2)
        try:
            require_ray()
            check_address(address)
        except PeerstepError as exc:
            _fail(str(exc), 2)
    if not 0 <= threshold < 1:
        _fail(f"--threshold must be in [0, 1), got {threshold}", 2)
    try:  # unknown or unreadable runs stop the command before any engine starts
        items: list[str | tuple[str, dict[str, Any]]] = list(runs or [])
        if eval_path is not None:
            items.extend(eval_targets(eval_path))
        if not items:
            _fail("nothing to label: give run ids or --eval OUT.json", 2)
        if summary_only:
            effects = peer_effects(items, directory, threshold=threshold)
            _print_effects(effects, json_out)
            return
        for item in items:
            open_target(item if isinstance(item, str) else item[0], directory,
                        None if isinstance(item, str) else item[1])
    except PeerstepError as exc:
        _fail(str(exc), 2)
    named = base_url_setting(base_url)[0]
    endpoint = Endpoint(base_url=base_url, model=model, api_key=api_key, engine=engine,
                        engine_config=None if named else EngineConfig(model=model or DEFAULT_MODEL, port=port))
    unit = "injections" if peers else "steps"
    progress = Progress(TextColumn("[bold]labelling[/bold]"), BarColumn(), TaskProgressColumn(),
                        TextColumn("{task.completed:.0f}/{task.total:.0f} " + unit + " · {task.fields[rollouts]} "
                                   "rollouts · "
                                   "{task.fields[rate]} tok/s"), TimeRemainingColumn(), console=err, transient=False)
    task = progress.add_task("label", total=0, rollouts=0, rate="0")
    started = time.perf_counter()
    counts = {"rollouts": 0, "tokens": 0}

    def on_progress(event: str, info: dict[str, Any]) -> None:
        if event == "plan":
            progress.update(task, total=info["steps"])
            return
        counts["rollouts"] += info["rollouts"]
        counts["tokens"] += info["tokens"]
        rate = counts["tokens"] / max(time.perf_counter() - started, 1e-6)
        progress.update(task, advance=info["labelled"], rollouts=counts["rollouts"], rate=f"{rate:.1f}")

    try:
        with progress:
            if peers:
                summary = asyncio.run(on_endpoint(endpoint, lambda client: alabel_peers(
                    items, client, k=rollouts, runs_dir=directory, concurrency=concurrency, progress=on_progress)))
            else:
                summary = asyncio.run(on_endpoint(endpoint, lambda client: alabel(
                    items, client, k=rollouts, search=search, runs_dir=directory, concurrency=concurrency,
                    progress=on_progress, ray_address=address if executor == "ray" else None)))
    except KeyboardInterrupt:
        _fail("interrupted; every label written so far is in the runs' logs, and the same command again "
              "labels the steps still unlabelled", 130)
    except PeerstepError as exc:
        _fail(str(exc), 1)
    if peers:
        try:
            effects = peer_effects(items, directory, threshold=threshold)
        except PeerstepError as exc:
            _fail(str(exc), 1)
    if json_out:
        payload = summary.model_dump(mode="json")
        if peers:
            payload["effects"] = effects.model_dump(mode="json")
        console.print_json(data=payload)
        return
    for run_id, why in summary.skipped.items():
        err.print(f"[yellow]skipped[/yellow] run {escape(run_id)}: {escape(why)}", soft_wrap=True)
    if peers:
        console.print(f"labelled {summary.labelled} peer injections of {summary.trajectories} trajectories in "
                      f"{summary.runs} runs ({summary.already} labelled before, {summary.no_comment} carried no "
                      f"comment); {summary.rollouts} rollouts, {summary.tokens} tokens, {summary.seconds:.1f} s; "
                      f"skipped {len(summary.skipped)} runs", soft_wrap=True)
        _print_effects(effects, False, skipped=False)  # the runs left out were just listed
        return
    saved = "" if search == "full" else f" (rolling out from every step: {summary.full_rollouts})"
    console.print(f"labelled {summary.labelled} steps of {summary.trajectories} trajectories in {summary.runs} runs "
                  f"({summary.already} labelled before); {summary.rollouts} rollouts{saved}, {summary.tokens} "
                  f"tokens, {summary.seconds:.1f} s; skipped {len(summary.skipped)} runs and "
                  f"{summary.skipped_trajectories} unfinished trajectories", soft_wrap=True)


def _print_effects(effects: Any, json_out: bool, *, skipped: bool = True) -> None:
    """The peer-effect summary (``peerstep._label_peers.PeerEffects``), as text or JSON."""
    from peerstep._label_peers import effects_text

    if json_out:
        console.print_json(effects.model_dump_json())
        return
    for run_id, why in effects.skipped.items() if skipped else ():
        err.print(f"[yellow]not counted[/yellow] run {escape(run_id)}: {escape(why)}", soft_wrap=True)
    for line in effects_text(effects):
        console.print(escape(line), soft_wrap=True)
