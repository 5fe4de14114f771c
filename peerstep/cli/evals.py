"""``peerstep eval DATASET`` and ``peerstep run TASKS.yaml``: the eval runner on the command line."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from peerstep._errors import InputError, PeerstepError
from peerstep.cli._trace import TraceToOpt, tracing
from peerstep.registry import strategy_label
from peerstep.tools.sandbox import SandboxCapacityError

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)

def _strategies(option: str, n: int | None, python: bool) -> list[str]:
    """The comma-separated strategies, each checked (name, -n, sandboxes) before any engine starts."""
    from peerstep._runner import check_run
    from peerstep.evals._baselines import BASELINES

    chosen = [s.strip() for s in option.split(",") if s.strip()]
    if not chosen:
        raise InputError("--strategy names no strategy")
    for s in chosen:
        if s not in BASELINES:
            check_run(s, n, python=python)
    return chosen


def _build_dataset(name: str, seed: int, python: bool) -> Any:
    from peerstep.environments import load_dataset

    return load_dataset(name, seed=seed, python=python)


def run_and_report(dataset: Any, strategies: list[str], n: int | None, limit: int | None, concurrency: int, seed: int,
                   engine: str, model: str | None, base_url: str | list[str] | None, api_key: str | None,
                   out: Path | None, price_per_mtok: float | None, max_steps: int, answer_policy: str = "accept",
                   resume: bool = False, report_html: Path | None = None,
                   where: ExecutorChoice | None = None, verifiers: list[str] | None = None,
                   rounds: Any = None, answer_from_output: bool | None = None) -> None:
    from peerstep import Endpoint
    from peerstep.agent import AgentConfig, Budget
    from peerstep.evals import EpisodeOutcome, EvalAborted, EvalReport, load_finished, run_eval, summarize
    from peerstep.strategies import verifier_factory

    where = where or ExecutorChoice()
    urls = [base_url] if isinstance(base_url, str) else list(base_url or [])
    executor = where.build(urls, announce=lambda line: err.print(f"[dim]{escape(line)}[/dim]"))

    scorers = verifier_factory(verifiers) if verifiers else None  # checked before any engine starts
    count = len(dataset) if limit is None else min(limit, len(dataset))
    if count == 0:
        raise InputError(f"dataset {dataset.name!r} has no tasks")
    agent = AgentConfig(budget=Budget(max_steps=max_steps), answer_policy=answer_policy)  # type: ignore[arg-type]
    if answer_from_output is not None:
        agent.answer_from_output = answer_from_output
    outcomes: list[EpisodeOutcome] = []
    wall: dict[str, float] = {}
    jsonl = out.with_suffix(".jsonl") if out else None
    skip: set[tuple[str, int]] = set()
    if resume and jsonl is not None:  # the episodes the interrupted eval finished stand; the rest run
        finished = load_finished(jsonl, dataset, count)
        outcomes = [o for o in finished if o.strategy in strategies]
        skip = {(o.strategy, o.index) for o in outcomes}
        # every finished episode stays in the file, those of strategies this run does not run too (a resume with
        # other strategies than the first run once emptied the file of them); only a half-written last line goes
        jsonl.write_text("".join(o.model_dump_json() + "\n" for o in finished))
        others = len(finished) - len(outcomes)
        err.print(f"[dim]resuming: {len(outcomes)} finished episodes kept from {jsonl}"
                  + (f" (and {others} of other strategies, left in the file but not in this table)" if others else "")
                  + "[/dim]")
    elif jsonl is not None:
        jsonl.parent.mkdir(parents=True, exist_ok=True)
        jsonl.write_text("")
    # --per-node: the engines are the executor's, started on the nodes; nothing is served from here
    endpoint = None if where.per_node else Endpoint(base_url=urls[0] if urls else None, model=model, api_key=api_key,
                                                    engine=engine)
    interrupted = False
    aborted: str | None = None
    started = time.perf_counter()
    opened: Any = endpoint or contextlib.nullcontext()
    with opened as probe, Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                   TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), console=err) as progress:
        def label(s: str) -> str:
            from peerstep.strategies import strategy_width

            return strategy_label(s, strategy_width(s, n))

        bars: dict[str, TaskID] = {s: progress.add_task(label(s), total=count, stats="",
                                                        completed=sum(o.strategy == s for o in outcomes))
                                   for s in strategies}

        def on_outcome(o: EpisodeOutcome) -> None:
            mine = [x for x in outcomes if x.strategy == o.strategy]
            rate = sum(x.tokens for x in outcomes) / max(time.perf_counter() - started, 1e-9)
            progress.update(bars[o.strategy], advance=1, stats=f"acc {sum(x.correct for x in mine)}/{len(mine)}  "
                                                             f"{rate:.0f} tok/s")

        async def main() -> None:
            if endpoint is None:
                clients: Any = where.client_spec(api_key)
            else:
                await probe.check()
                await probe.close()
                clients = await replicas(probe, urls[1:]) if urls else endpoint.client
            await run_eval(dataset, clients, strategies, n=n, limit=count, concurrency=concurrency,
                           agent=agent, outcomes=outcomes, jsonl=jsonl, on_outcome=on_outcome, wall=wall,
                           skip=skip, executor=executor, verifiers=scorers, rounds=rounds)

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            interrupted = True
        except EvalAborted as exc:
            aborted = str(exc)
    for s in strategies:  # strategies cut short by Ctrl-C are timed up to the interruption
        wall.setdefault(s, time.perf_counter() - started)
    done = [s for s in strategies if any(o.strategy == s for o in outcomes)]
    served = where.client_spec(api_key).model if endpoint is None else endpoint.model
    report = EvalReport(dataset=dataset.name, model=served or "?", seed=seed, limit=count,
                        interrupted=interrupted, aborted=aborted,
                        summaries=[summarize(outcomes, s, wall[s], price_per_mtok) for s in done], outcomes=outcomes)
    console.print(report.markdown())
    if out is not None:
        out.write_text(report.model_dump_json(indent=1))
        console.print(f"[dim]results: {out} (per episode: {jsonl})[/dim]")
    if report_html is not None and outcomes:
        from peerstep.cli._report import write_outputs
        from peerstep.evals import pool

        write_outputs(pool([report], [str(out) if out else "this eval"]), report_html, None)
    if interrupted:
        err.print("[bold red]interrupted[/bold red]: the table covers the episodes that finished")
        raise typer.Exit(130)
    if aborted:
        err.print(f"[bold red]aborted[/bold red]: {aborted}")
        raise typer.Exit(1)


@dataclass(frozen=True)
class ExecutorChoice:
    """Where episodes run, as the command line says: ``--executor``, ``--address``, ``--shared-runs``."""

    executor: str = "local"
    address: str = "auto"
    shared_runs: bool = False
    per_node: bool = False
    engine: str = "llamacpp"
    model: str | None = None
    engine_threads: int | None = None

    def build(self, urls: list[str], announce: Callable[[str], None] | None = None) -> Any:
        """The executor, checked before any engine starts (None: the default, local)."""
        if self.per_node:
            from peerstep.engines import ENGINES

            if self.executor != "ray":
                raise InputError("--per-node starts an engine on every Ray node: it needs --executor ray")
            if urls:
                raise InputError("--per-node serves the model from an engine on every node; --base-url names a server "
                                 "instead: give one or the other")
            if self.engine not in ENGINES:
                raise InputError(f"unknown --engine {self.engine!r} for --per-node; one of: {', '.join(ENGINES)}")
        if self.executor == "local":
            return None
        if self.executor != "ray":
            raise InputError(f"unknown --executor {self.executor!r}; one of: local, ray")
        if not urls and not self.per_node:
            raise InputError("--executor ray needs --base-url: a model server every node of the cluster can reach "
                             "(a vLLM fleet, Ray Serve LLM, or a router in front of them), or --per-node: an engine "
                             "on every node")
        from peerstep.evals import NodeEngines, RayExecutor
        from peerstep.evals._ray import check_address, require_ray

        require_ray()
        check_address(self.address)
        engines = NodeEngines(self.engine, self.engine_config()) if self.per_node else None
        return RayExecutor(address=self.address, shared_runs=self.shared_runs, engines=engines, announce=announce)

    def engine_config(self) -> Any:
        from peerstep.engines import EngineConfig
        from peerstep.models import DEFAULT_MODEL

        return EngineConfig(model=self.model or DEFAULT_MODEL, threads=self.engine_threads)

    def client_spec(self, api_key: str | None) -> Any:
        """What the clients of the per-node engines are (the executor fills in where they are, once started)."""
        from peerstep.evals import NodeEngines

        return NodeEngines(self.engine, self.engine_config()).client_spec(api_key)


def round_shape(round_steps: int | None, rounds: int | None) -> Any:
    """``--round-steps``/``--rounds`` as the eval runner takes them (None: every strategy's own)."""
    if round_steps is None and rounds is None:
        return None
    from peerstep.evals import RoundShape

    return RoundShape(round_steps=round_steps, max_rounds=rounds)


async def replicas(first: Any, more: list[str]) -> Any:
    """A ``ClientSpec`` over every ``--base-url`` (each asked for its models first, so a missing one fails here)."""
    from peerstep.client import ModelClient
    from peerstep.evals import ClientSpec

    for url in more:
        other = ModelClient(url, first.model, first.api_key, max_retries=1)
        try:
            await other.list_models()
        finally:
            await other.close()
    return ClientSpec.of(first, tuple(more))


ExecutorOpt = Annotated[str, typer.Option(
    help="local: episodes run in this process; ray: each episode is a Ray task on the cluster at --address.")]
AddressOpt = Annotated[str, typer.Option(
    envvar="RAY_ADDRESS", help="The Ray cluster for --executor ray: auto (the one this node is in), HOST:PORT "
                               "(its head) or ray://HOST:PORT (Ray Client).")]
SharedRunsOpt = Annotated[bool, typer.Option(
    help="With --executor ray: workers write step logs straight to the runs folder, which every node mounts at "
         "the same path (default: each log is written on its worker and sent back when its episode ends).")]
PerNodeOpt = Annotated[bool, typer.Option(
    help="With --executor ray: start a managed --engine (llamacpp, or vllm on GPU nodes) on every Ray node for this "
         "eval; each episode talks to the engine of its own node, so no model traffic crosses the network.")]
EngineThreadsOpt = Annotated[int | None, typer.Option(
    help="CPU threads of each engine --per-node starts (default: every core of its node).")]
BaseUrlsOpt = Annotated[list[str] | None, typer.Option(
    "--base-url", help="The model server (default: $PEERSTEP_BASE_URL, else $OPENAI_BASE_URL). Repeat it for "
                       "replicas of one model: each episode sticks to one, chosen by a hash of its id.")]
AnswerPolicyOpt = Annotated[str, typer.Option(
    help="What a reply that states a final answer without calling submit_answer does: accept (submit it), confirm "
         "(ask once, quoting it), check (ask once for a tool check when no tool was used).")]
AnswerFromOutputOpt = Annotated[bool | None, typer.Option(
    "--answer-from-output/--no-answer-from-output",
    help="When the opening program prints one number and nothing else, submit it without asking the model to "
         "restate it (default: AgentConfig's).")]
ResumeOpt = Annotated[Path | None, typer.Option(
    help="Continue an interrupted eval whose --out was this file: episodes in its .jsonl are kept, the rest run "
         "(start it with the same dataset, seed, limit and strategies).")]
VerifierOpt = Annotated[list[str] | None, typer.Option(
    "--verifier", help="Score trajectories with these verifiers instead of the strategy's own (repeatable): "
    "llm-judge, peer-agreement, answer-checker (an oracle), prm:DIR (a PRM checkpoint from `peerstep prm train`, "
    "in-process on CPU), prm:URL#MODEL (a PRM served by vLLM's pooling API). best-of-n and leap+verify decide "
    "by these scores.")]
RoundStepsOpt = Annotated[int | None, typer.Option(
    help="Model calls per trajectory between barriers (where LeaP shares and verifiers score) for the strategies "
         "that run in rounds (leap, leap+verify; default 3); single, majority, listwise and best-of-n run in one "
         "round, adaptive in waves of whole trajectories.",
    min=1)]
RoundsOpt = Annotated[int | None, typer.Option(
    help="Rounds of leap and leap+verify before unfinished trajectories are forced to answer (default 4).", min=1)]
ReportOpt = Annotated[Path | None, typer.Option(
    "--report", help="Also write the results as one self-contained HTML page with plots (see `peerstep report`).")]
Strategies = Annotated[str, typer.Option("--strategy", help="Comma-separated: single,majority,adaptive,listwise,"
                                                            "best-of-n,leap,leap+verify, and the bare-model baselines "
                                                            "bare-cot,bare-program (one request, no framework).")]


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_command(
        dataset: Annotated[str, typer.Argument(help="A dataset name, e.g. math, wiki-qa, science, aviary-calculator.")],
        strategy: Strategies = "single",
        n: Annotated[int | None, typer.Option("-n", help="Trajectories for the parallel strategies (default: each "
                                                         "strategy's own: 8 for adaptive, 4 for the others).")] = None,
        limit: Annotated[int | None, typer.Option(help="Run the first K tasks.")] = None,
        concurrency: Annotated[int, typer.Option(help="Episodes in flight at once.")] = 2,
        seed: Annotated[int, typer.Option(help="Dataset seed: the same seed gives the same tasks.")] = 0,
        engine: Annotated[str, typer.Option(envvar="PEERSTEP_ENGINE")] = "llamacpp",
        model: Annotated[str | None, typer.Option(envvar="PEERSTEP_MODEL")] = None,
        base_url: BaseUrlsOpt = None,
        api_key: Annotated[str | None, typer.Option(envvar="PEERSTEP_API_KEY")] = None,
        python: Annotated[bool, typer.Option(help="Offer the sandboxed Python tool where the dataset allows.")]
        = True,
        max_steps: Annotated[int, typer.Option(help="Model calls per trajectory before the answer is forced.")] = 8,
        answer_policy: AnswerPolicyOpt = "accept",
        answer_from_output: AnswerFromOutputOpt = None,
        out: Annotated[Path | None, typer.Option(help="Write results as JSON here (and per episode as JSONL).")]
        = None,
        price_per_mtok: Annotated[float | None, typer.Option(help="Dollars per million generated tokens.")] = None,
        resume: ResumeOpt = None,
        report: ReportOpt = None,
        trace_to: TraceToOpt = None,
        executor: ExecutorOpt = "local",
        address: AddressOpt = "auto",
        shared_runs: SharedRunsOpt = False,
        per_node: PerNodeOpt = False,
        engine_threads: EngineThreadsOpt = None,
        verifier: VerifierOpt = None,
        round_steps: RoundStepsOpt = None,
        rounds: RoundsOpt = None,
    ) -> None:
        """Evaluate strategies on a dataset: accuracy with a 95% interval, tokens, tool calls, cost-of-pass."""
        try:
            chosen = _strategies(strategy, n, python)
            where = ExecutorChoice(executor, address, shared_runs, per_node, engine, model, engine_threads)
            where.build(base_url or [])
            if report is not None:
                from peerstep.evals._plots import require_matplotlib

                require_matplotlib()
            ds = _build_dataset(dataset, seed, python)
            with tracing(trace_to):
                run_and_report(ds, chosen, n, limit, concurrency, seed, engine, model, base_url, api_key,
                               resume or out, price_per_mtok, max_steps, answer_policy, resume=resume is not None,
                               report_html=report, where=where, verifiers=verifier,
                               rounds=round_shape(round_steps, rounds), answer_from_output=answer_from_output)
        except (PeerstepError, ValueError, KeyError) as exc:
            err.print(f"[bold red]error:[/bold red] {escape(str(exc))}")
            raise typer.Exit(2 if isinstance(exc, InputError | ValueError | KeyError | SandboxCapacityError)
                             else 1) from None

    @app.command("run")
    def run_command(
        tasks: Annotated[Path, typer.Argument(help="A YAML or JSONL file of tasks.")],
        strategy: Strategies = "single",
        n: Annotated[int | None, typer.Option("-n", help="Trajectories for the parallel strategies (default: each "
                                                         "strategy's own).")] = None,
        concurrency: Annotated[int, typer.Option()] = 2,
        engine: Annotated[str, typer.Option(envvar="PEERSTEP_ENGINE")] = "llamacpp",
        model: Annotated[str | None, typer.Option(envvar="PEERSTEP_MODEL")] = None,
        base_url: BaseUrlsOpt = None,
        api_key: Annotated[str | None, typer.Option(envvar="PEERSTEP_API_KEY")] = None,
        max_steps: Annotated[int, typer.Option()] = 8,
        answer_policy: AnswerPolicyOpt = "accept",
        answer_from_output: AnswerFromOutputOpt = None,
        out: Annotated[Path | None, typer.Option()] = None,
        resume: ResumeOpt = None,
        report: ReportOpt = None,
        trace_to: TraceToOpt = None,
        executor: ExecutorOpt = "local",
        address: AddressOpt = "auto",
        shared_runs: SharedRunsOpt = False,
        per_node: PerNodeOpt = False,
        engine_threads: EngineThreadsOpt = None,
        verifier: VerifierOpt = None,
        round_steps: RoundStepsOpt = None,
        rounds: RoundsOpt = None,
    ) -> None:
        """Run a scripted task file (questions, allowed tools, answer checkers) and report the results."""
        try:
            from peerstep.environments.taskfile import TaskFileDataset

            chosen = _strategies(strategy, n, True)
            where = ExecutorChoice(executor, address, shared_runs, per_node, engine, model, engine_threads)
            where.build(base_url or [])
            if report is not None:
                from peerstep.evals._plots import require_matplotlib

                require_matplotlib()
            ds = TaskFileDataset(tasks)
            if ds.python_checkers:  # a task file is code: say so before any of it runs
                err.print(f"[yellow]note:[/yellow] {tasks} grades answers with Python code that runs with your "
                          f"rights, outside the sandbox: {', '.join(ds.python_checkers)} (a task file is code, like "
                          "a conftest.py)")
            with tracing(trace_to):
                run_and_report(ds, chosen, n, None, concurrency, 0, engine, model, base_url, api_key, resume or out,
                               None, max_steps, answer_policy, resume=resume is not None, report_html=report,
                               where=where, verifiers=verifier, rounds=round_shape(round_steps, rounds),
                               answer_from_output=answer_from_output)
        except (PeerstepError, ValueError) as exc:
            err.print(f"[bold red]error:[/bold red] {escape(str(exc))}")
            raise typer.Exit(2 if isinstance(exc, InputError | ValueError | SandboxCapacityError) else 1) from None
