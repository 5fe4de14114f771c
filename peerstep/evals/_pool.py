"""Several eval reports as one: outcomes paired by (dataset, task id), summaries per dataset and pooled, and
paired comparisons between strategies with an exact McNemar test.

This is the one place results are pooled; ``peerstep report`` (table, plots, HTML) and ``bench/heldout.py``
read it. Strategies are named by their label (``leap@4``; ``single`` and the baselines have n = 1), so a
``majority@4`` and a ``majority@8`` from two files stay two rows.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from peerstep._errors import InputError
from peerstep.evals._load import load_eval
from peerstep.evals._report import EpisodeOutcome, EvalReport, StrategySummary, summarize
from peerstep.registry import strategy_label

Status = Literal["correct", "wrong", "error", "missing"]
TaskKey = tuple[str, str]  # (dataset, task id)
BASELINES = ("bare-cot", "bare-program")  # the same names as _baselines.BASELINES, without importing the runner


def label(o: EpisodeOutcome | StrategySummary) -> str:
    """``strategy@n`` for the parallel strategies, the bare name for n = 1."""
    return strategy_label(o.strategy, o.n)


def is_baseline(name: str) -> bool:
    return name.split("@")[0] in BASELINES


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: under "neither strategy is better", each of the b + c discordant tasks
    (one right, the other wrong) is a fair coin; p is twice the smaller binomial tail, at most 1."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class PairedComparison:
    """``a`` against ``b`` on the tasks both ran: ``wins`` = a right and b wrong, ``losses`` the reverse."""

    a: str
    b: str
    tasks: int
    both: int
    wins: int
    losses: int
    neither: int

    @property
    def p_value(self) -> float:
        return mcnemar_exact(self.wins, self.losses)


@dataclass(frozen=True)
class SummaryRow:
    """One table row: a strategy on one dataset, or pooled over ``datasets`` (``dataset`` is then ``"all"``)."""

    dataset: str
    datasets: tuple[str, ...]
    label: str
    summary: StrategySummary

    @property
    def baseline(self) -> bool:
        return is_baseline(self.label)


@dataclass
class Source:
    """Where a report came from, as the page's header lists it."""

    path: str
    dataset: str
    model: str
    seed: int
    limit: int
    note: str = ""


@dataclass
class PooledReport:
    sources: list[Source]
    outcomes: dict[tuple[str, str, str], EpisodeOutcome]  # (dataset, task id, label) → outcome
    prices: dict[str, float | None]  # dataset → dollars per million tokens, when its eval was given one
    replaced: int = 0  # outcomes a later file replaced (same dataset, task and strategy)
    wall: dict[tuple[str, str], float] = field(default_factory=dict)  # (dataset, label) → wall seconds

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(d for d, _, _ in self.outcomes))

    @property
    def labels(self) -> list[str]:
        """Baselines first (the rows every strategy is judged against), then strategies in the order first seen."""
        seen = list(dict.fromkeys(k[2] for k in self.outcomes))
        return [s for s in seen if is_baseline(s)] + [s for s in seen if not is_baseline(s)]

    @property
    def tasks(self) -> list[TaskKey]:
        """Every (dataset, task id), by dataset in order and by the task's index within it."""
        index = {(d, t): o.index for (d, t, _), o in self.outcomes.items()}
        order = {d: i for i, d in enumerate(self.datasets)}
        return sorted(index, key=lambda k: (order[k[0]], index[k], k[1]))

    def outcome(self, task: TaskKey, name: str) -> EpisodeOutcome | None:
        return self.outcomes.get((task[0], task[1], name))

    def status(self, task: TaskKey, name: str) -> Status:
        o = self.outcome(task, name)
        if o is None:
            return "missing"
        if o.error is not None:
            return "error"
        return "correct" if o.correct else "wrong"

    def of(self, name: str, dataset: str | None = None) -> list[EpisodeOutcome]:
        return [o for (d, _, s), o in self.outcomes.items() if s == name and dataset in (None, d)]

    def rows(self) -> list[SummaryRow]:
        """A row per dataset and strategy; with several datasets, then a pooled row per strategy."""
        out = []
        for dataset in self.datasets:
            for name in self.labels:
                mine = self.of(name, dataset)
                if mine:
                    out.append(SummaryRow(dataset, (dataset,), name, summarize(
                        mine, mine[0].strategy, self.wall.get((dataset, name), 0.0), self.prices.get(dataset))))
        if len(self.datasets) > 1:
            for name in self.labels:
                mine = self.of(name)
                present = tuple(d for d in self.datasets if self.of(name, d))
                prices = {self.prices.get(d) for d in present}
                out.append(SummaryRow("all", present, name, summarize(
                    mine, mine[0].strategy, sum(self.wall.get((d, name), 0.0) for d in present),
                    prices.pop() if len(prices) == 1 else None)))
        return out

    def pooled(self) -> list[SummaryRow]:
        """One row per strategy over everything it ran (the per-dataset row when there is one dataset)."""
        rows = self.rows()
        key = "all" if len(self.datasets) > 1 else self.datasets[0]
        return [r for r in rows if r.dataset == key]

    def compare(self, a: str, b: str) -> PairedComparison:
        pairs = [(self.outcome(t, a), self.outcome(t, b)) for t in self.tasks]
        both = [(x.correct, y.correct) for x, y in pairs if x is not None and y is not None]
        return PairedComparison(a, b, len(both), sum(x and y for x, y in both), sum(x and not y for x, y in both),
                                sum(y and not x for x, y in both), sum(not x and not y for x, y in both))

    def comparisons(self) -> list[PairedComparison]:
        """Every pair of strategies that share tasks; a baseline is always the second (the one beaten or not)."""
        out = []
        for a, b in itertools.combinations(self.labels, 2):
            if is_baseline(a) and not is_baseline(b):
                a, b = b, a
            c = self.compare(a, b)
            if c.tasks:
                out.append(c)
        return out

    def markdown(self) -> str:
        lines = [f"{s.dataset}: {s.model}, {s.limit} tasks, seed {s.seed}{s.note} ({s.path})" for s in self.sources]
        lines += ["", "| dataset | strategy | accuracy (95% CI) | tokens / episode | tool calls / episode "
                  "| s / episode | tokens per correct |", "|---|---|---|---|---|---|---|"]
        for r in self.rows():
            s = r.summary
            where = f"all ({'+'.join(r.datasets)})" if r.dataset == "all" else r.dataset
            per = f"{s.tokens_per_correct:,.0f}" if s.tokens_per_correct is not None else "—"
            if s.dollars_per_correct is not None:
                per += f" (${s.dollars_per_correct:.4f})"
            lines.append(f"| {where} | {r.label} | {s.correct}/{s.episodes} = {s.accuracy:.0%} "
                         f"({s.ci_low:.0%}–{s.ci_high:.0%}) | {s.mean_tokens:,.0f} | {s.mean_tool_calls:.1f} "
                         f"| {s.mean_seconds:.0f} | {per} |")
        comparisons = self.comparisons()
        if comparisons:
            lines += ["", "| A | B | paired tasks | A right, B wrong | B right, A wrong | exact McNemar p |",
                      "|---|---|---|---|---|---|"]
            lines += [f"| {c.a} | {c.b} | {c.tasks} | {c.wins} | {c.losses} | {c.p_value:.3g} |" for c in comparisons]
        return "\n".join(lines)


def _price(report: EvalReport) -> float | None:
    """The eval's dollars per million tokens, recovered from its summaries (the report keeps no price field)."""
    for s in report.summaries:
        if s.dollars_per_correct is not None and s.tokens_per_correct:
            return s.dollars_per_correct / s.tokens_per_correct * 1e6
    return None


def pool(reports: list[EvalReport], paths: list[str] | None = None) -> PooledReport:
    """Pool reports; an outcome of the same (dataset, task, strategy) in a later report replaces the earlier one."""
    paths = paths or [f"report {i + 1}" for i in range(len(reports))]
    outcomes: dict[tuple[str, str, str], EpisodeOutcome] = {}
    replaced = 0
    wall: dict[tuple[str, str], float] = {}
    prices: dict[str, float | None] = {}
    sources = []
    for path, report in zip(paths, reports, strict=True):
        note = " (interrupted)" if report.interrupted else f" (aborted: {report.aborted})" if report.aborted else ""
        sources.append(Source(path, report.dataset, report.model, report.seed, report.limit, note))
        prices.setdefault(report.dataset, _price(report))
        for o in report.outcomes:
            key = (report.dataset, o.task_id, label(o))
            replaced += key in outcomes
            outcomes[key] = o
        for s in report.summaries:
            wall[(report.dataset, label(s))] = wall.get((report.dataset, label(s)), 0.0) + s.wall_seconds
    return PooledReport(sources, outcomes, prices, replaced, wall)


def load_report(path: Path) -> EvalReport:
    """One ``peerstep eval --out`` file, or an InputError saying in one line why it is not one."""
    report, _ = load_eval(path, report_only=True)
    assert report is not None  # report_only refuses the per-episode file
    if not report.outcomes:
        raise InputError(f"{path}: the eval report has no finished episodes")
    return report


def load_reports(paths: list[Path]) -> PooledReport:
    if not paths:
        raise InputError("no report given: peerstep report OUT.json [OUT2.json …]")
    return pool([load_report(p) for p in paths], [str(p) for p in paths])
