"""``peerstep chat``: a terminal front end on ``peerstep.Session``.

A real line editor (prompt_toolkit: history, completion of slash commands, bracketed paste) when standard input is
a terminal; plain lines otherwise, so the chat also runs from a pipe. The turn's tokens stream as they come, tool
calls and their (folded) outputs appear as they happen, and the turn's answer stands out at its end. Ctrl-C stops
the turn in progress (the session goes on), Ctrl-D leaves. Everything that happens is in the session's runs, so
the view can be plain printing.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from peerstep._errors import InputError, PeerstepError
from peerstep.cli._approve import TerminalApprover
from peerstep.cli._live import LiveView
from peerstep.registry import STRATEGIES, strategy_label
from peerstep.session import (
    AnswerEvent,
    Event,
    NoticeEvent,
    Session,
    SessionRecord,
    StepEvent,
    TokenEvent,
    Turn,
    list_sessions,
)
from peerstep.steplog import StepKind

COMMANDS = {
    "/help": "this list",
    "/tools": "the tools the agent may call",
    "/strategy": "NAME [N]: how the next questions run (single, majority, leap 4, ...)",
    "/model": "[NAME]: the model (switch among those a --base-url server serves)",
    "/approve": "[SPEC]: the approval policy, e.g. /approve python=ask or /approve python=auto",
    "/retry": "re-sample the last turn",
    "/undo": "drop the last turn (the Python session is rebuilt to match)",
    "/save": "[PATH]: where the session is saved; with PATH, also write the conversation there as Markdown",
    "/sessions": "the saved sessions",
    "/exit": "leave (Ctrl-D too); `peerstep chat --resume` comes back",
}


class ChatUI:
    """The REPL: reads a line, runs it as a command or a turn, prints what happens."""

    def __init__(self, session: Session, console: Console, interactive: bool) -> None:
        self.session = session
        self.console = console
        self.interactive = interactive
        self._prompt: Any = None
        self._turn_task: asyncio.Task[None] | None = None
        if interactive:
            from prompt_toolkit import PromptSession
            from prompt_toolkit.completion import NestedCompleter
            from prompt_toolkit.history import FileHistory

            from peerstep._paths import cache_dir

            history = cache_dir() / "chat_history"
            history.parent.mkdir(parents=True, exist_ok=True)
            nested: dict[str, Any] = {cmd: None for cmd in COMMANDS}
            nested["/strategy"] = {name: None for name in STRATEGIES}
            self._prompt = PromptSession(history=FileHistory(str(history)), reserve_space_for_menu=3,
                                         completer=NestedCompleter.from_nested_dict(nested))

    # --- input -------------------------------------------------------------------------------
    async def read(self, message: str, default: str = "") -> str | None:
        """One line from the person; None at end of input (Ctrl-D)."""
        if self._prompt is not None:
            try:
                return str(await self._prompt.prompt_async(message, default=default))
            except EOFError:
                return None
        self.console.print(message, end="")
        line = await asyncio.to_thread(sys.stdin.buffer.readline)
        if not line:
            return None
        return line.decode("utf-8", errors="replace").rstrip("\r\n")

    # --- the loop ----------------------------------------------------------------------------
    async def run(self) -> int:
        s = self.session
        self.console.print(f"[bold]peerstep chat[/bold] — session [cyan]{s.id}[/cyan], model {s.client.model}, "
                           f"strategy {self._strategy()}; /help lists commands, Ctrl-C stops a turn, Ctrl-D leaves")
        for turn in s.turns:
            self._print_past(turn)
        for note in s.notices:
            self.console.print(f"[yellow]{escape(note)}[/yellow]")
        self._check_policy()
        while True:
            try:
                line = await self.read("you> ")
            except KeyboardInterrupt:
                continue  # Ctrl-C at the prompt clears the line, as in a shell
            if line is None:
                break
            if not line.strip():
                self.console.print("[dim]empty line: type a question, or /help[/dim]")
                continue
            if line.strip().startswith("/"):
                if not await self.command(line.strip()):
                    break
                continue
            await self.ask(line)
        self.console.print(f"[dim]session {s.id} saved; `peerstep chat --resume {s.id}` continues it[/dim]")
        return 0

    async def ask(self, text: str, *, retry: bool = False) -> None:
        """One turn, stoppable with Ctrl-C."""
        try:
            from peerstep.session import check_text

            check_text(text, self.session.max_chars)
        except InputError as exc:
            self.console.print(f"[red]{escape(str(exc))}[/red]")
            return
        self._turn_task = asyncio.create_task(self._show(text, retry))
        loop = asyncio.get_running_loop()
        handled = False
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, self._turn_task.cancel)
            handled = True
        try:
            await self._turn_task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            self.console.print("\n[yellow]interrupted: the reply so far is kept and logged; the session goes on"
                               "[/yellow]")
        except PeerstepError as exc:
            self.console.print(f"[red]{escape(str(exc))}[/red]")
        finally:
            if handled:
                loop.remove_signal_handler(signal.SIGINT)
            self._turn_task = None

    async def _show(self, text: str, retry: bool) -> None:
        parallel = self.session.record.strategy != "single"
        view = LiveView(self.console, parallel=parallel)
        events = self.session.retry() if retry else self.session.stream(text)
        async for event in events:
            self.render(event, view)

    def render(self, event: Event, view: LiveView) -> None:
        if isinstance(event, TokenEvent):
            view.on_token(event.trajectory_id, event.text)
        elif isinstance(event, StepEvent):
            kind = event.record.kind
            # the question was just typed, and with one trajectory the round and the vote say nothing
            if kind == StepKind.RUN_START and event.record.trajectory_id == 0 and not view.parallel:
                return
            if kind in (StepKind.BARRIER, StepKind.AGGREGATE) and not view.parallel:
                return
            view.on_record(event.record)
        elif isinstance(event, NoticeEvent):
            self.console.print(f"[yellow]{escape(event.text)}[/yellow]")
        elif isinstance(event, AnswerEvent):
            self._print_end(event.turn)

    def _print_end(self, turn: Turn) -> None:
        if turn.status == "done":
            self.console.print(Panel(escape(turn.answer or ""), title=f"answer (turn {turn.index})",
                                     title_align="left", border_style="magenta", expand=False))
            self.console.print(f"[dim]{turn.steps} model calls, {turn.tokens} tokens; run {turn.run_id}[/dim]")
        elif turn.status == "interrupted":
            self.console.print(f"[yellow]turn {turn.index} interrupted; run {turn.run_id}[/yellow]")
        else:
            self.console.print(f"[red]turn {turn.index}: no answer: {escape(turn.error or turn.status)}[/red]")

    def _print_past(self, turn: Turn) -> None:
        mark = {"done": "", "interrupted": " [yellow](interrupted)[/yellow]", "lost": " [red](lost)[/red]",
                "undone": " [dim](undone)[/dim]", "error": " [red](no answer)[/red]"}.get(turn.status, "")
        self.console.print(f"[dim]turn {turn.index}[/dim]{mark} [bold]›[/bold] {escape(_short(turn.question))}")
        if turn.answer is not None:
            self.console.print(f"      [magenta]answer: {escape(turn.answer)}[/magenta]")

    def _check_policy(self) -> None:
        names = [t.name for t in self.session.offered_tools()]
        for pattern in self.session.policy.unmatched(names):
            self.console.print(f"[yellow]approval rule {escape(pattern)!r} matches no tool; the tools are "
                               f"{', '.join(names)}[/yellow]")

    def _strategy(self) -> str:
        rec = self.session.record
        return strategy_label(rec.strategy, rec.n)

    # --- approvals ---------------------------------------------------------------------------
    async def read_decision(self, message: str) -> str | None:
        """A line for an approval question: Ctrl-C there counts as end of input (the turn's trajectory ends)."""
        try:
            return await self.read(message)
        except KeyboardInterrupt:
            return None

    # --- commands ----------------------------------------------------------------------------
    async def command(self, line: str) -> bool:
        """Run a slash command; False to leave."""
        name, _, rest = line.partition(" ")
        rest = rest.strip()
        s = self.session
        try:
            if name in ("/exit", "/quit"):
                return False
            if name == "/help":
                table = Table(box=None, show_header=False)
                for cmd, what in COMMANDS.items():
                    table.add_row(f"[cyan]{cmd}[/cyan]", escape(what))
                self.console.print(table)
            elif name == "/tools":
                for tool in s.offered_tools():
                    self.console.print(f"[cyan]{tool.name}[/cyan] {escape(tool.description.splitlines()[0])}")
            elif name == "/strategy":
                if rest:
                    parts = rest.split()
                    s.set_strategy(parts[0], int(parts[1]) if len(parts) > 1 else None)
                self.console.print(f"strategy: {self._strategy()}")
            elif name == "/model":
                if rest:
                    served = await s.client.list_models()
                    if rest not in served:
                        raise InputError(f"the server serves {', '.join(served) or 'no models'}; not {rest!r}")
                    s.set_model(rest)
                self.console.print(f"model: {s.client.model}")
            elif name == "/approve":
                if rest:
                    s.set_approval(rest)
                self.console.print(f"approval: {escape(s.policy.spec())}")
                self._check_policy()
            elif name == "/retry":
                await self.ask(s._last_kept().question, retry=True)
            elif name == "/undo":
                turn = await s.undo()
                self.console.print(f"turn {turn.index} undone ({escape(_short(turn.question))}); the Python session "
                                   "will be rebuilt without it")
            elif name == "/save":
                from peerstep.session import sessions_dir

                self.console.print(f"the session is saved after every step: {sessions_dir(s.runs_dir)}/{s.id}.json")
                if rest:
                    path = Path(rest).expanduser()
                    path.write_text(transcript(s.record), encoding="utf-8")
                    self.console.print(f"conversation written to {path}")
            elif name == "/sessions":
                self.console.print(sessions_table(list_sessions(s.runs_dir)))
            else:
                self.console.print(f"[red]unknown command {escape(name)}; /help lists the commands[/red]")
        except (InputError, ValueError, OSError) as exc:
            self.console.print(f"[red]{escape(str(exc))}[/red]")
        except PeerstepError as exc:
            self.console.print(f"[red]{escape(str(exc))}[/red]")
        return True


def transcript(record: SessionRecord) -> str:
    """The conversation as Markdown: questions, answers, and the Python each turn ran."""
    out = [f"# peerstep session {record.id}\n", f"model: {record.model}\n"]
    for turn in record.turns:
        out.append(f"\n## Turn {turn.index} ({turn.status}, {turn.strategy})\n\n**You:** {turn.question}\n")
        for cell in turn.cells:
            out.append(f"\n```python\n{cell.code}\n```\n\n```\n{cell.output.strip()}\n```\n")
        if turn.answer is not None:
            out.append(f"\n**Answer:** {turn.answer}\n")
    return "".join(out)


def sessions_table(found: list[SessionRecord | tuple[Path, str]]) -> Table:
    import time

    table = Table("session", "started", "turns", "last question", "model", box=None)
    for item in found:
        if isinstance(item, tuple):
            table.add_row(item[0].stem, "?", "?", f"[red]{escape(item[1])}[/red]", "")
            continue
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(item.created_at))
        last = item.turns[-1].question if item.turns else ""
        table.add_row(item.id, started, str(len(item.kept)), escape(_short(last)), escape(item.model or ""))
    return table


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


async def chat(session: Session, console: Console, interactive: bool) -> int:
    """Open the session (starting the engine once for it) and run the REPL until the person leaves."""
    ui = ChatUI(session, console, interactive)
    if session.approver is None:  # the same questions as ``solve --approve`` asks, through the chat's line editor
        session.approver = TerminalApprover(console, read=ui.read_decision)
    async with session:
        return await ui.run()
