"""Rendering of step records in the terminal, live and after the fact (``peerstep show``)."""

from __future__ import annotations

import json
import time

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from peerstep.steplog import RunSummary, StepKind, StepRecord

_STYLE = {
    StepKind.REASON: "white",
    StepKind.TOOL_CALL: "bold cyan",
    StepKind.OBSERVATION: "green",
    StepKind.BUDGET: "bold yellow",
    StepKind.FINAL: "bold magenta",
    StepKind.ERROR: "bold red",
}


def _short(text: str | None, limit: int) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else text[:limit] + f" … [{len(text) - limit} more characters]"


def render_record(console: Console, rec: StepRecord, *, streamed: bool = False, limit: int = 1500,
                  parallel: bool = False) -> None:
    """Print one record. ``streamed`` skips reasoning text already shown token by token."""
    prefix = f"[dim]t{rec.trajectory_id}[/dim] " if rec.trajectory_id > 0 or (rec.trajectory_id == 0 and parallel) \
        else ""
    style = _STYLE.get(rec.kind, "dim")
    if rec.kind == StepKind.RUN_START:
        console.print(f"{prefix}[bold]Question:[/bold] {escape(_short(rec.text, limit))}")
    elif rec.kind == StepKind.REASON:
        if streamed:
            console.print()
        else:
            console.print(f"{prefix}[{style}]{escape(_short(rec.text, limit))}[/{style}]")
        usage = rec.usage.completion_tokens if rec.usage else 0
        console.print(f"{prefix}[dim]· {usage} tokens, {rec.latency_s or 0:.1f} s, finish={rec.finish_reason}[/dim]")
    elif rec.kind == StepKind.TOOL_CALL and rec.tool is not None:
        args = rec.tool.arguments if isinstance(rec.tool.arguments, str) else json.dumps(rec.tool.arguments)
        console.print(f"{prefix}[{style}]→ {escape(rec.tool.name)}({escape(_short(args, 400))})[/{style}]"
                      f" [dim]{rec.tool.source or ''}[/dim]")
    elif rec.kind == StepKind.OBSERVATION:
        ok = rec.tool.ok if rec.tool is not None else None
        mark = "←" if ok is not False else "✗"
        console.print(f"{prefix}[{style if ok is not False else 'red'}]{mark} {escape(_short(rec.text, 600))}[/]")
    elif rec.kind == StepKind.FINAL:
        reward = "" if rec.data.get("gold") is None else f"  (gold {rec.data['gold']}, reward {rec.reward})"
        console.print(f"{prefix}[{style}]Final answer: {escape(rec.text or '(none)')}[/{style}]{escape(reward)}")
    elif rec.kind in (StepKind.BUDGET, StepKind.ERROR):
        label = "Budget" if rec.kind == StepKind.BUDGET else "Error"
        console.print(f"{prefix}[{style}]{label}: {escape(rec.text or '')}[/{style}]")
    elif rec.kind == StepKind.SUMMARY:
        console.print(f"{prefix}[blue]summary: {escape(_short(rec.text, 400))}[/blue]")
    elif rec.kind == StepKind.PEER_INJECT:
        sources = ", ".join(f"t{s} (sim {sim:.2f})" for s, sim in zip(rec.data.get("sources", []),
                                                                      rec.data.get("similarities", []),
                                                                      strict=False))
        console.print(f"{prefix}[blue]← peers {sources or 'none'} via {rec.data.get('router')}[/blue]")
    elif rec.kind == StepKind.VERIFY:
        console.print(f"{prefix}[yellow]{rec.data.get('verifier')}: {rec.data.get('score', 0):.2f}[/yellow] "
                      f"[dim]{escape(_short(rec.text, 200))}[/dim]")
    elif rec.kind == StepKind.PRUNE:
        console.print(f"{prefix}[bold yellow]pruned[/bold yellow] (score {rec.data.get('score', 0):.2f})")
    elif rec.kind == StepKind.BARRIER:
        stop = f" — {rec.text}" if rec.text else ""
        console.print(f"[bold]── round {rec.data.get('round')} ended: active {rec.data.get('active')}, "
                      f"finished {rec.data.get('finished')}{escape(stop)}[/bold]")
    elif rec.kind == StepKind.AGGREGATE:
        decision = rec.data.get("decision", {})
        groups = "; ".join(f"{escape(str(g[0]))} ← t{g[1]} ({g[2]:.2f})" for g in decision.get("groups", []))
        verdict = "" if rec.data.get("correct") is None else f"  correct={rec.data['correct']}"
        console.print(f"[bold magenta]Decision ({decision.get('method')}): {escape(rec.text or '(none)')}"
                      f"[/bold magenta]  [dim]{groups}{verdict}[/dim]")
    elif rec.kind == StepKind.LABEL and rec.data.get("peer"):
        console.print(f"{prefix}[yellow]peer label of {rec.parent_id}: {escape(rec.text or '')}[/yellow]")
    elif rec.kind == StepKind.LABEL:
        flag = "  [bold red]first error[/bold red]" if rec.data.get("first_error") else ""
        console.print(f"{prefix}[yellow]label of {rec.parent_id}: {rec.data.get('mc_k')}/{rec.data.get('mc_n')} "
                      f"correct (value {rec.data.get('value', 0):.2f})[/yellow]{flag}")
    elif rec.kind == StepKind.RUN_END:
        pass
    else:
        console.print(f"{prefix}[dim]{rec.kind.value}: {escape(_short(rec.text, limit))}[/dim]")


class LiveView:
    """Listener + token sink for a run in progress.

    One trajectory streams token by token. Several trajectories stream line by line, each line
    prefixed with its trajectory (their tokens arrive interleaved; whole lines stay readable).
    """

    def __init__(self, console: Console, stream_tokens: bool = True, parallel: bool = False) -> None:
        self.console = console
        self.parallel = parallel
        self.stream_tokens = stream_tokens
        self._streaming = False
        self._lines: dict[int, str] = {}
        self._streamed: set[int] = set()

    def on_token(self, trajectory_id: int, delta: str) -> None:
        if not self.parallel:
            self._streaming = True
            self.console.print(escape(delta), end="", style="white", highlight=False)
            return
        self._streamed.add(trajectory_id)
        buffer = self._lines.get(trajectory_id, "") + delta
        *done, rest = buffer.split("\n")
        for line in done:
            self.console.print(f"[dim]t{trajectory_id}[/dim] {escape(line)}", highlight=False)
        self._lines[trajectory_id] = rest

    def on_record(self, rec: StepRecord) -> None:
        if self.parallel:
            rest = self._lines.pop(rec.trajectory_id, "")
            if rest and rec.kind == StepKind.REASON:
                self.console.print(f"[dim]t{rec.trajectory_id}[/dim] {escape(rest)}", highlight=False)
            streamed = rec.kind == StepKind.REASON and rec.trajectory_id in self._streamed
            self._streamed.discard(rec.trajectory_id)
        else:
            streamed = self._streaming and rec.kind == StepKind.REASON
            self._streaming = False
        render_record(self.console, rec, streamed=streamed, parallel=self.parallel)


def runs_table(runs: list[RunSummary]) -> Table:
    table = Table("run", "created", "steps", "status", "answer", "question", box=None)
    for r in runs:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at)) if r.created_at else "?"
        table.add_row(r.run_id, created, str(r.steps), str(r.meta.get("status", r.meta.get("error", "running?"))),
                      _short(str(r.meta.get("answer") or ""), 30), _short(str(r.meta.get("question") or ""), 60))
    return table
