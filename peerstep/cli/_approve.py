"""Approvals at the terminal: the inline approver ``solve`` uses on a TTY, and how a paused run's requests are shown.

Several trajectories may ask at once; a lock asks the person one request at a time, each on its own, while the
trajectories that need no decision keep running. Input is read on a daemon thread so the event loop is never
blocked and Ctrl-C is not held up by a pending ``input()`` (a thread pool would join it at exit).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax

from peerstep._errors import InputError
from peerstep.agent import ApprovalDecision, ApprovalRequest

Reader = Callable[[str], str]
AsyncReader = Callable[[str], Awaitable["str | None"]]  # None: end of input
CHOICES = "[a]pprove / [e]dit / [r]eject / [s]top"


async def read_line(prompt: str, reader: Reader = input) -> str:
    """``reader(prompt)`` on a daemon thread, awaited without blocking the loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def settle(line: str | None, exc: BaseException | None) -> None:
        if future.done():  # cancelled meanwhile
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(line or "")

    def work() -> None:
        line: str | None = None
        error: BaseException | None = None
        try:
            line = reader(prompt)
        except StopIteration as exc:  # a future refuses StopIteration: it would be lost, and the await hang
            error = RuntimeError(f"the input reader raised StopIteration: {exc}")
        except BaseException as exc:  # EOF (Ctrl-D) and the rest: handed to the awaiting side, which decides
            error = exc
        try:
            loop.call_soon_threadsafe(settle, line, error)
        except RuntimeError:  # the loop closed while the person was typing (Ctrl-C): nobody waits for the line
            return

    threading.Thread(target=work, daemon=True, name="peerstep-approval-input").start()
    return await future


class TerminalApprover:
    """Shows each request (code highlighted, other arguments as JSON) and reads the person's decision.

    ``solve`` reads with ``input`` on a thread; ``peerstep chat`` passes ``read``, its own line editor's async
    prompt, so the same questions are asked the same way in both."""

    def __init__(self, console: Console, reader: Reader = input, read: AsyncReader | None = None) -> None:
        self.console = console
        self.reader = reader
        self.read = read
        self._lock: asyncio.Lock | None = None

    async def _line(self, prompt: str) -> str:
        if self.read is None:
            return await read_line(prompt, self.reader)
        line = await self.read(prompt)
        if line is None:
            raise EOFError
        return line

    async def __call__(self, request: ApprovalRequest) -> ApprovalDecision:
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            show_request(self.console, request)
            try:
                return await self._ask(request)
            except EOFError:
                return ApprovalDecision(action="end", reason="no answer at the terminal (end of input)")

    async def _ask(self, request: ApprovalRequest) -> ApprovalDecision:
        while True:
            choice = (await self._line(f"t{request.trajectory_id} {CHOICES}: ")).strip().lower()
            if choice in ("a", "approve", "y", "yes"):
                return ApprovalDecision(action="approve")
            if choice in ("s", "stop", "end"):
                return ApprovalDecision(action="end")
            if choice in ("r", "reject", "n", "no"):
                reason = await self._line("reason (shown to the model): ")
                return ApprovalDecision(action="reject", reason=reason.strip())
            if choice in ("e", "edit"):
                arguments = await self._edited(request)
                if arguments is not None:
                    return ApprovalDecision(action="edit", arguments=arguments)
                continue
            self.console.print("[yellow]answer a, e, r or s[/yellow]")

    async def _edited(self, request: ApprovalRequest) -> dict[str, Any] | None:
        """New arguments: replacement code for a call with code (lines up to one holding only '.'), else JSON."""
        if isinstance(request.arguments, dict) and isinstance(request.arguments.get("code"), str):
            self.console.print("[dim]type the new code; end with a line holding only '.'[/dim]")
            lines: list[str] = []
            while (line := await self._line("")) != ".":
                lines.append(line)
            return {**request.arguments, "code": "\n".join(lines)}
        text = await self._line("new arguments as a JSON object: ")
        try:
            return ApprovalDecision.coerce(f"edit:{text}").arguments
        except InputError as exc:
            self.console.print(f"[red]{escape(str(exc))}[/red]")
            return None


def show_request(console: Console, request: ApprovalRequest | dict[str, Any], *, ident: str | None = None) -> None:
    """The exact call waiting for a decision: which trajectory, tool and rule, then its code or arguments."""
    req = request if isinstance(request, ApprovalRequest) else ApprovalRequest.model_validate(request)
    label = f" [dim]{ident}[/dim]" if ident else ""
    console.print(f"[bold yellow]t{req.trajectory_id} asks to run {escape(req.tool)}[/bold yellow]{label} "
                  f"[dim](rule {escape(req.rule)})[/dim]")
    code = req.arguments.get("code") if isinstance(req.arguments, dict) else None
    if isinstance(code, str):
        console.print(Syntax(code, "python", line_numbers=True, word_wrap=True))
        rest = {k: v for k, v in req.arguments.items() if k != "code"} if isinstance(req.arguments, dict) else {}
        if rest:
            console.print(escape(json.dumps(rest, indent=2, ensure_ascii=False)))
    elif isinstance(req.arguments, dict):
        console.print(Syntax(json.dumps(req.arguments, indent=2, ensure_ascii=False), "json", word_wrap=True))
    else:
        console.print(escape(req.arguments))


def show_pending(console: Console, run_id: str, pending: list[Any]) -> None:
    """A paused run's requests and the command that answers them."""
    for item in pending:
        value = item.value if hasattr(item, "value") else item.get("value")
        ident = item.id if hasattr(item, "id") else item.get("id")
        if isinstance(value, dict) and value.get("kind") == "approve_tool_call":
            show_request(console, value, ident=ident)
        else:
            console.print(f"[bold yellow]decision {ident}[/bold yellow]: {escape(json.dumps(value, default=str))}")
    console.print(f"answer with: peerstep resume {run_id} --decide ID=approve (or ID=reject:REASON, "
                  "ID=edit:{JSON arguments}, ID=stop), one --decide per request; an ID prefix will do", soft_wrap=True)
